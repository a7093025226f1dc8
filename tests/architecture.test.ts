// The architecture as a test (STYLE.md, "A layout that shows the architecture"): imports flow one
// way, toward the IR. Every .ts file under src/ and cli/ is parsed with the TypeScript compiler,
// each import is resolved to the folder it lands in, and an edge outside the table fails the test.
// The heavy dependencies have one owner each.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Module: a folder of src/ ('ir', 'analysis', ...), 'errors' (src/errors.ts), 'index'
 * (src/index.ts) or 'cli'. Each may import itself and the modules listed; `typeOnly` may be
 * imported for types alone (`import type`), which the compiler erases.
 */
const ALLOWED: Record<string, { imports: string[]; typeOnly?: string[] }> = {
  errors: { imports: [] },
  numeric: { imports: ['errors'] },
  ir: { imports: ['numeric', 'errors'] },
  onnx: { imports: ['ir', 'numeric', 'errors'] },
  // Files: reading user JSON with typed errors, writing reports atomically (through the codec's
  // writeAtomically, which saveModel shares).
  files: { imports: ['onnx', 'errors'] },
  // Runtime opens sessions on models, so it may encode them (and stage big ones through a file).
  runtime: { imports: ['onnx', 'ir', 'numeric', 'errors'] },
  // A sub-room: the clusterers see distance matrices only, no IR, no rest of analysis.
  'analysis/cluster': { imports: ['numeric', 'errors'] },
  analysis: { imports: ['analysis/cluster', 'ir', 'numeric', 'errors'] },
  rewrite: { imports: ['analysis', 'ir', 'numeric', 'errors'] },
  report: { imports: ['analysis', 'ir', 'numeric', 'errors', 'files'], typeOnly: ['pipeline', 'rewrite', 'runtime'] },
  pipeline: { imports: ['analysis', 'rewrite', 'runtime', 'onnx', 'ir', 'numeric', 'errors', 'files'] },
  // The public API re-exports from every part of the library.
  index: { imports: ['errors', 'numeric', 'ir', 'onnx', 'files', 'runtime', 'analysis', 'analysis/cluster', 'rewrite', 'report', 'pipeline'] },
  cli: { imports: ['index'] },
};

/** Packages with a single owner: the path prefixes of the only files that may import them. */
const PACKAGE_OWNERS: { pattern: RegExp; owners: string[] }[] = [
  { pattern: /^onnx-proto(\/|$)/, owners: ['src/onnx/'] },
  { pattern: /^protobufjs(\/|$)/, owners: ['src/onnx/'] },
  { pattern: /^onnxruntime-node(\/|$)/, owners: ['src/runtime/model-session.ts'] },
  // cli/ is commander only, and only cli/ uses commander.
  { pattern: /^commander(\/|$)/, owners: ['cli/'] },
  // .npz archives (zip): fflate, or the streaming reader that may replace it, in the npy files only.
  { pattern: /^(fflate|yauzl)(\/|$)/, owners: ['src/runtime/npy.ts', 'src/runtime/npy-file.ts'] },
  // PNG output: pngjs (or an SVG rasteriser replacing it) in the report room only.
  { pattern: /^(pngjs|@resvg\/resvg-js)(\/|$)/, owners: ['src/report/', 'src/runtime/image-probes.ts'] },
  // Image decoding for probe data: the image-probe module only.
  { pattern: /^jpeg-js(\/|$)/, owners: ['src/runtime/image-probes.ts'] },
  // Average linkage: ml-hclust behind the agnes clusterer only (the nn-chain clusterer is ours).
  { pattern: /^ml-hclust(\/|$)/, owners: ['src/analysis/cluster/agnes-clusterer.ts'] },
  // Config and report validation.
  { pattern: /^zod(\/|$)/, owners: ['src/files/', 'src/pipeline/check-config.ts', 'src/report/read-audit-report.ts'] },
  // Node's file system: only these rooms touch files (the CLI through the library).
  { pattern: /^(node:)?fs(\/|$)/, owners: ['src/onnx/', 'src/files/', 'src/runtime/', 'src/pipeline/', 'src/report/', 'cli/'] },
];

interface ImportEdge {
  specifier: string;
  typeOnly: boolean;
  line: number;
}

/** Every module specifier a file imports or re-exports, statically or dynamically. */
function readImports(fileName: string, source: string): ImportEdge[] {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const edges: ImportEdge[] = [];
  const add = (literal: ts.Node, typeOnly: boolean): void => {
    if (!ts.isStringLiteralLike(literal)) return;
    edges.push({ specifier: literal.text, typeOnly, line: file.getLineAndCharacterOfPosition(literal.getStart()).line + 1 });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      // `import type {..}` or `import { type A, type B }` with nothing else: erased at compile time.
      const allTypes = !!clause && (clause.isTypeOnly || (!clause.name && !!clause.namedBindings && ts.isNamedImports(clause.namedBindings) && clause.namedBindings.elements.length > 0 && clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier, allTypes);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      const allTypes = node.isTypeOnly || (!!node.exportClause && ts.isNamedExports(node.exportClause) && node.exportClause.elements.length > 0 && node.exportClause.elements.every((e) => e.isTypeOnly));
      add(node.moduleSpecifier, allTypes);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, node.isTypeOnly);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, true);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0]) {
      add(node.arguments[0], false);
    } else if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'require' && node.arguments[0]) {
      add(node.arguments[0], false);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return edges;
}

/** The module a repository path belongs to, or undefined outside src/ and cli/. */
function moduleOf(relative: string): string | undefined {
  const parts = relative.split('/');
  if (parts[0] === 'cli') return 'cli';
  if (parts[0] !== 'src') return undefined;
  if (parts.length === 2) return parts[1]!.replace(/\.(ts|js)$/, '');
  // Sub-rooms with their own rule.
  if (parts[1] === 'analysis' && parts[2] === 'cluster' && parts.length > 3) return 'analysis/cluster';
  return parts[1];
}

/** Checks the imports of files (repository-relative path -> source); returns the violations. */
function checkImports(files: Record<string, string>): string[] {
  const violations: string[] = [];
  for (const [relative, source] of Object.entries(files)) {
    const from = moduleOf(relative);
    const rule = from !== undefined ? ALLOWED[from] : undefined;
    if (!rule) {
      violations.push(`${relative}: module "${from ?? relative}" is not in the architecture table`);
      continue;
    }
    for (const edge of readImports(relative, source)) {
      const where = `${relative}:${edge.line}`;
      if (edge.specifier.startsWith('.')) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(relative), edge.specifier));
        const to = moduleOf(target);
        if (to === undefined) {
          violations.push(`${where}: imports "${edge.specifier}", outside src/ and cli/`);
        } else if (to !== from && !rule.imports.includes(to) && !(edge.typeOnly && rule.typeOnly?.includes(to))) {
          const typeNote = rule.typeOnly?.includes(to) ? ' (only `import type` is allowed there)' : '';
          violations.push(`${where}: ${from} imports ${to} ("${edge.specifier}")${typeNote}; ${from} may import ${[...rule.imports, ...(rule.typeOnly ?? []).map((t) => `${t} (types)`)].join(', ') || 'nothing of ours'}`);
        }
        continue;
      }
      for (const { pattern, owners } of PACKAGE_OWNERS) {
        if (pattern.test(edge.specifier) && !owners.some((o) => relative === o || (o.endsWith('/') && relative.startsWith(o)))) {
          violations.push(`${where}: imports "${edge.specifier}", which only ${owners.join(', ')} may import`);
        }
      }
    }
  }
  return violations;
}

function sourceFiles(folder: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ts')) out.push(path.relative(ROOT, full).split(path.sep).join('/'));
    }
  };
  walk(path.join(ROOT, folder));
  return out.sort();
}

describe('architecture', () => {
  const files = Object.fromEntries([...sourceFiles('src'), ...sourceFiles('cli')].map((f) => [f, fs.readFileSync(path.join(ROOT, f), 'utf8')]));

  it('finds the files of every module in the table', () => {
    const modules = new Set(Object.keys(files).map(moduleOf));
    expect([...modules].sort()).toEqual(Object.keys(ALLOWED).sort());
    expect(Object.keys(files).length).toBeGreaterThan(40);
  });

  it('has no import edge outside the table, and each heavy package has its one owner', () => {
    expect(checkImports(files)).toEqual([]);
  });

  it('sees every kind of import, and catches edges the table forbids', () => {
    const violations = checkImports({
      'src/runtime/bad-session.ts': [
        "import { loadModel } from '../onnx/model-file.js';",
        "import type { Model } from '../ir/model.js';",
        "const lazy = await import('../analysis/find-layers.js');",
        "export { x } from '../pipeline/prune.js';",
        "let t: import('../rewrite/plan-merges.js').MergePlan;",
      ].join('\n'),
      'src/report/bad-report.ts': [
        "import { prune } from '../pipeline/prune.js';",
        "import type { PruneResult } from '../pipeline/prune.js';",
        "import { type MergePlan } from '../rewrite/plan-merges.js';",
        "import { findLayers } from '../analysis/find-layers.js';",
      ].join('\n'),
      'src/errors.ts': "import { Tensor } from './ir/tensor.js';",
      'src/analysis/bad-proto.ts': "import onnxProto from 'onnx-proto';\nimport * as ort from 'onnxruntime-node';",
      'src/runtime/probe-data.ts': "import * as ort from 'onnxruntime-node';",
      'src/onnx/ok.ts': "import * as pb from 'protobufjs/minimal.js';\nimport { Model } from '../ir/model.js';",
      'cli/program.ts': "import { Command } from 'commander';\nimport { prune } from '../src/pipeline/prune.js';\nimport { audit } from '../src/index.js';",
      'src/widgets/thing.ts': "export const x = 1;",
      'src/analysis/cluster/bad-cluster.ts': "import { Model } from '../../ir/model.js';\nimport { findLayers } from '../find-layers.js';\nimport { agnes } from 'ml-hclust';\nimport { cosine } from '../../numeric/cosine.js';",
      'src/analysis/uses-cluster.ts': "import { clusterNeurons } from './cluster/cluster-neurons.js';\nimport { PNG } from 'pngjs';\nimport { unzipSync } from 'fflate';",
      'src/report/bad-zip.ts': "import { unzipSync } from 'fflate';\nimport { PNG } from 'pngjs';\nimport { z } from 'zod';",
      'src/analysis/cluster/agnes-clusterer.ts': "import { agnes } from 'ml-hclust';",
      'src/numeric/bad-fs.ts': "import * as fs from 'node:fs';",
    });
    expect(violations).toEqual([
      'src/runtime/bad-session.ts:3: runtime imports analysis ("../analysis/find-layers.js"); runtime may import onnx, ir, numeric, errors',
      'src/runtime/bad-session.ts:4: runtime imports pipeline ("../pipeline/prune.js"); runtime may import onnx, ir, numeric, errors',
      'src/runtime/bad-session.ts:5: runtime imports rewrite ("../rewrite/plan-merges.js"); runtime may import onnx, ir, numeric, errors',
      'src/report/bad-report.ts:1: report imports pipeline ("../pipeline/prune.js") (only `import type` is allowed there); report may import analysis, ir, numeric, errors, files, pipeline (types), rewrite (types), runtime (types)',
      'src/errors.ts:1: errors imports ir ("./ir/tensor.js"); errors may import nothing of ours',
      'src/analysis/bad-proto.ts:1: imports "onnx-proto", which only src/onnx/ may import',
      'src/analysis/bad-proto.ts:2: imports "onnxruntime-node", which only src/runtime/model-session.ts may import',
      'src/runtime/probe-data.ts:1: imports "onnxruntime-node", which only src/runtime/model-session.ts may import',
      'cli/program.ts:2: cli imports pipeline ("../src/pipeline/prune.js"); cli may import index',
      'src/widgets/thing.ts: module "widgets" is not in the architecture table',
      'src/analysis/cluster/bad-cluster.ts:1: analysis/cluster imports ir ("../../ir/model.js"); analysis/cluster may import numeric, errors',
      'src/analysis/cluster/bad-cluster.ts:2: analysis/cluster imports analysis ("../find-layers.js"); analysis/cluster may import numeric, errors',
      'src/analysis/cluster/bad-cluster.ts:3: imports "ml-hclust", which only src/analysis/cluster/agnes-clusterer.ts may import',
      'src/analysis/uses-cluster.ts:2: imports "pngjs", which only src/report/, src/runtime/image-probes.ts may import',
      'src/analysis/uses-cluster.ts:3: imports "fflate", which only src/runtime/npy.ts, src/runtime/npy-file.ts may import',
      'src/report/bad-zip.ts:1: imports "fflate", which only src/runtime/npy.ts, src/runtime/npy-file.ts may import',
      'src/report/bad-zip.ts:3: imports "zod", which only src/files/, src/pipeline/check-config.ts, src/report/read-audit-report.ts may import',
      'src/numeric/bad-fs.ts:1: imports "node:fs", which only src/onnx/, src/files/, src/runtime/, src/pipeline/, src/report/, cli/ may import',
    ]);
  });
});
