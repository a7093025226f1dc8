import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffAuditReports } from '../../src/report/diff-audit-reports.js';
import type { AuditReport, LayerReport } from '../../src/report/audit-report.js';
import { condense, fixturePath, scratchDir } from './run-condense.js';

const dir = scratchDir('diff');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// Minimal reports, as an older version might have written them: diff reads only these fields.
function layer(name: string, width: number, effective: number, output: number | null = null): LayerReport {
  const l: Partial<LayerReport> = {
    name, op: 'Gemm', activation: 'Relu', width, static: 0,
    clusters: { weight: effective, output }, effectiveWidth: { weight: effective, output },
    redundancy: { weight: 1 - effective / width, output: output === null ? null : 1 - output / width },
    clusterSizes: { weight: [], output: null }, mergeable: true, reason: null,
  };
  return l as LayerReport;
}

function report(layers: LayerReport[], params = 100): AuditReport {
  const r: Partial<AuditReport> = { schemaVersion: 1, kind: 'audit', model: { path: 'm.onnx', params }, probe: null, options: { similarityThreshold: 0.95, staticThreshold: 0.01 }, layers, notes: [] };
  return r as AuditReport;
}

describe('diffAuditReports', () => {
  it('matches layers by name and reports added and removed ones', () => {
    const d = diffAuditReports(report([layer('fc1', 10, 8), layer('old', 4, 4)]), report([layer('fc1', 10, 5), layer('new', 6, 6)], 90));
    expect(d.layers.map((l) => [l.name, l.status])).toEqual([['fc1', 'changed'], ['old', 'removed'], ['new', 'added']]);
    expect(d.added).toEqual(['new']);
    expect(d.removed).toEqual(['old']);
    expect(d.params).toEqual({ a: 100, b: 90, delta: -10 });
    const fc1 = d.layers[0]!;
    expect(fc1.effectiveWidth).toEqual({ a: 8, b: 5, delta: -3 });
    expect(fc1.redundancy.delta).toBeCloseTo(0.3, 12);
    expect(d.layers[1]!.width).toEqual({ a: 4, b: null, delta: null });
  });

  it('compares outputs only when both reports measured them', () => {
    const both = diffAuditReports(report([layer('fc1', 10, 8, 7)]), report([layer('fc1', 10, 8, 5)]));
    expect(both.layers[0]).toMatchObject({ basis: 'outputs', status: 'changed', effectiveWidth: { a: 7, b: 5, delta: -2 } });
    const one = diffAuditReports(report([layer('fc1', 10, 8, 7)]), report([layer('fc1', 10, 8)]));
    expect(one.layers[0]).toMatchObject({ basis: 'weights', status: 'unchanged', effectiveWidth: { a: 8, b: 8, delta: 0 } });
  });
});

describe('condense diff', () => {
  let standard: string;
  let small: string;
  beforeAll(async () => {
    standard = path.join(dir, 'standard.json');
    small = path.join(dir, 'small.json');
    fs.writeFileSync(standard, (await condense(['audit', fixturePath('two-layer-standard-init.onnx'), '--json'])).stdout);
    fs.writeFileSync(small, (await condense(['audit', fixturePath('two-layer-small-init.onnx'), '--json'])).stdout);
  });

  it('prints a table of width, effective width and redundancy changes', async () => {
    const run = await condense(['diff', standard, small]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^fc1\s+changed\s+64\s+\d+ -> 44 \(\+\d+\)\s+12 -> 3 \(-9\)\s+81% -> 95% \(\+14%\)\s+weights$/m);
    expect(run.stdout).toMatch(/^fc2\s+unchanged\s+1\s/m);
  });

  it('prints JSON with the schema version', async () => {
    const run = await condense(['diff', standard, small, '--json']);
    expect(run.code).toBe(0);
    const d = JSON.parse(run.stdout);
    expect(d).toMatchObject({ schemaVersion: 1, kind: 'diff', a: { file: standard }, b: { file: small }, added: [], removed: [] });
    expect(d.layers[0]).toMatchObject({ name: 'fc1', effectiveWidth: { a: 12, b: 3, delta: -9 } });
  });

  it('exits 2 for a file that is not an audit report, or is missing', async () => {
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ schemaVersion: 9, kind: 'audit', model: { path: 'x' }, layers: [{ name: 'fc1' }] }));
    let run = await condense(['diff', standard, bad]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/bad\.json: \d problems: "schemaVersion" is 9, expected 1; "layers\[0\]\.width" is not a number/);
    run = await condense(['diff', standard, path.join(dir, 'none.json')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('none.json: no such file');
  });
});
