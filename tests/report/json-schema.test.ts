import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { condense, fixturePath, repoRoot } from './run-condense.js';

const schemaDoc = fs.readFileSync(path.join(repoRoot, 'docs', 'json-schema.md'), 'utf8');

/** The part of docs/json-schema.md under "## <kind> (`condense <kind> ...`)". */
function section(kind: string): string {
  const parts = schemaDoc.split(/^## /m);
  const found = parts.find((p) => p.startsWith(`${kind} (\`condense ${kind}`));
  if (!found) throw new Error(`docs/json-schema.md has no section for ${kind}`);
  return found;
}

/** The section's example report: its jsonc block with the comments taken out. */
function example(kind: string): unknown {
  const block = /```jsonc\n([\s\S]*?)```/.exec(section(kind));
  if (!block) throw new Error(`docs/json-schema.md: the ${kind} section has no jsonc example`);
  return JSON.parse(block[1]!.replace(/\/\/[^\n]*/g, ''));
}

/**
 * Every field of a report as a path ("layers[].merges[].scale"): a field counts as documented
 * only where the example has it, not because its name appears somewhere in the section.
 */
function paths(value: unknown, at = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const v of value) paths(v, `${at}[]`, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const p = at ? `${at}.${k}` : k;
      out.add(p);
      // The embedded audit report is documented in its own section.
      if (k !== 'audit') paths(v, p, out);
    }
  }
  return out;
}

describe('the JSON reports match docs/json-schema.md', () => {
  const series = [0, 4].map((i) => fixturePath(`series/two-layer-small-init-ckpt-${i}.onnx`));
  it('gives the audit report schemaVersion 1 and kind "audit"', async () => {
    const run = await condense(['audit', fixturePath('two-layer-small-init.onnx'), '--json']);
    expect(JSON.parse(run.stdout)).toMatchObject({ schemaVersion: 1, kind: 'audit' });
    expect(section('audit')).toContain('"schemaVersion": 1');
  });

  const cases: [string, () => Promise<string[]>][] = [
    ['audit', async () => ['audit', fixturePath('resnet-planted.onnx'), '--random', '16', '--shape', 'input=1x3x16x16', '--json']],
    ['prune', async () => ['prune', fixturePath('mlp-relu-planted.onnx'), '--random', '64', '--approximate', '--max-error', '1', '--dry-run', '--json']],
    ['series', async () => ['series', ...series, '--json']],
    ['check', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-schema-'));
      const config = path.join(dir, 'c.json');
      fs.writeFileSync(config, JSON.stringify({ rules: { maxRedundancy: 0.99, prune: { maxParameterShare: 1, maxRelativeError: 1e-4 } } }));
      const audit = path.join(dir, 'a.json');
      fs.writeFileSync(audit, (await condense(['audit', fixturePath('mlp-relu-planted.onnx'), '--json'])).stdout);
      return ['check', fixturePath('mlp-relu-planted.onnx'), '--config', config, '--baseline', audit, '--json'];
    }],
    ['diff', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-schema-'));
      const a = path.join(dir, 'a.json');
      fs.writeFileSync(a, (await condense(['audit', fixturePath('two-layer-small-init.onnx'), '--json'])).stdout);
      return ['diff', a, a, '--json'];
    }],
  ];

  it('counts a field as documented only at its own path, not because its name appears elsewhere', () => {
    const documented = paths(example('audit'));
    expect(documented.has('layers[].name')).toBe(true);
    expect(documented.has('groups[].members')).toBe(true);
    // "name" and "width" are in the section, but not at the top level of a report.
    expect(documented.has('name')).toBe(false);
    expect(documented.has('width')).toBe(false);
  });

  for (const [kind, args] of cases) {
    it(`documents every field of the ${kind} report, which carries schemaVersion 1`, async () => {
      const run = await condense(await args());
      expect(run.code).toBe(0);
      const report = JSON.parse(run.stdout);
      expect(report.schemaVersion).toBe(1);
      expect(report.kind).toBe(kind);
      const documented = paths(example(kind));
      const missing = [...paths(report)].filter((p) => !documented.has(p));
      expect(missing).toEqual([]);
    });
  }
});

describe('README picture', () => {
  it('is the feature map `condense audit --png-dir` draws for fixtures/two-layer-small-init.onnx', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-readme-'));
    const run = await condense(['audit', fixturePath('two-layer-small-init.onnx'), '--png-dir', dir]);
    expect(run.code).toBe(0);
    const fresh = PNG.sync.read(fs.readFileSync(path.join(dir, 'fc1-feature-map.png')));
    const committed = PNG.sync.read(fs.readFileSync(path.join(repoRoot, 'docs', 'images', 'two-layer-small-init.png')));
    expect([committed.width, committed.height]).toEqual([fresh.width, fresh.height]);
    expect(Buffer.compare(committed.data, fresh.data)).toBe(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
