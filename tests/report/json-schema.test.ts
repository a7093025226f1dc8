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

/** Every key of an object, nested, as "key" strings (array elements contribute their keys). */
function keys(value: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const v of value) keys(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      out.add(k);
      // The embedded audit report is documented in its own section.
      if (k !== 'audit') keys(v, out);
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

  for (const [kind, args] of cases) {
    it(`documents every field of the ${kind} report, which carries schemaVersion 1`, async () => {
      const run = await condense(await args());
      expect(run.code).toBe(0);
      const report = JSON.parse(run.stdout);
      expect(report.schemaVersion).toBe(1);
      expect(report.kind).toBe(kind);
      const doc = section(kind);
      const missing = [...keys(report)].filter((k) => !doc.includes(`"${k}"`) && !doc.includes(`${k}:`) && !doc.includes(`\`${k}\``));
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
