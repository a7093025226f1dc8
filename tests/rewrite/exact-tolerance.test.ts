// The tolerance an exact merge accepts is one option (MergeOptions.exactTolerance, CLI
// --exact-tolerance): it alone decides which near-multiples merge; --threshold does not.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataType } from '../../src/ir/data-type.js';
import { Tensor } from '../../src/ir/tensor.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { saveModel } from '../../src/onnx/model-file.js';
import { prune } from '../../src/pipeline/prune.js';
import { cosineScreen, DEFAULT_EXACT_TOLERANCE } from '../../src/rewrite/plan-merges.js';
import { runCliInProcess } from '../helpers/cli-runner.js';
import { GraphBuilder, int } from '../helpers/graph-builder.js';

/** fc1 (6 neurons, Relu) -> fc2; neuron 5 is 2 x neuron 0 plus a perturbation of relative size `off`. */
function nearMultiple(off: number): string {
  const rng = new SeededRandom(11);
  const w = Array.from({ length: 6 * 4 }, () => rng.gaussian());
  const b = Array.from({ length: 6 }, () => rng.gaussian() * 0.2);
  const u0 = [...w.slice(0, 4), b[0]!];
  const norm = Math.hypot(...u0);
  // A direction orthogonal to u0, scaled so |u5 - 2 u0| / |u5| is about `off`.
  const d = [1, -1, 0.5, 0.25, 0];
  const dot = d.reduce((s, x, i) => s + x * u0[i]!, 0) / (norm * norm);
  const ortho = d.map((x, i) => x - dot * u0[i]!);
  const on = Math.hypot(...ortho);
  const u5 = u0.map((x, i) => 2 * x + off * 2 * norm * ortho[i]! / on);
  for (let i = 0; i < 4; i++) w[5 * 4 + i] = u5[i]!;
  b[5] = u5[4]!;
  const g = new GraphBuilder('near');
  const x = g.input('x', DataType.FLOAT, ['N', 4]);
  const [z] = g.node('Gemm', [x, g.initializer('w1', Tensor.fromNumbers(DataType.FLOAT, [6, 4], w)), g.initializer('b1', Tensor.fromNumbers(DataType.FLOAT, [6], b))], { transB: int(1) }, { name: 'fc1' });
  const [h] = g.node('Relu', [z!]);
  const [y] = g.node('Gemm', [h!, g.initializer('w2', Tensor.fromNumbers(DataType.FLOAT, [2, 6], Array.from({ length: 12 }, () => rng.gaussian())))], { transB: int(1) }, { name: 'fc2', outputs: ['y'] });
  g.output(y!, DataType.FLOAT, ['N', 2]);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'condense-tol-')), 'near.onnx');
  saveModel(g.build(13), file);
  return file;
}

const merged = async (file: string, options: { exactTolerance?: number; similarityThreshold?: number }): Promise<number[][]> => {
  const r = await prune(file, { output: '', dryRun: true, probe: { random: 64 }, verify: { maxError: 1 }, merge: options.exactTolerance === undefined ? {} : { exactTolerance: options.exactTolerance }, analysis: options.similarityThreshold ? { similarityThreshold: options.similarityThreshold } : {} });
  return r.plan.layers.flatMap((l) => l.merges.map((m) => [m.neuron, m.into]));
};

describe('the exact-merge tolerance', () => {
  it('has a cosine screen that never rejects a pair the residual test would accept', () => {
    for (const tol of [0, DEFAULT_EXACT_TOLERANCE, 1e-3, 0.05, 0.3]) {
      // The worst accepted pair has sin(angle) = tol.
      expect(Math.sqrt(1 - tol * tol)).toBeGreaterThan(cosineScreen(tol));
    }
    expect(cosineScreen(DEFAULT_EXACT_TOLERANCE)).toBeCloseTo(1 - 1e-3, 9);
  });

  it('merges a 1e-4 near-multiple only when the tolerance admits it', async () => {
    const file = nearMultiple(1e-4);
    expect(await merged(file, {})).toEqual([]);
    expect(await merged(file, { exactTolerance: 1e-3 })).toEqual([[0, 5]]);
  });

  it('reaches relations far below the old hidden 1 - 1e-3 cosine prefilter when asked to', async () => {
    const file = nearMultiple(0.05);
    expect(await merged(file, { exactTolerance: 0.01 })).toEqual([]);
    expect(await merged(file, { exactTolerance: 0.06 })).toEqual([[0, 5]]);
  });

  it('is not moved by --threshold, which drives clusters, not exact merges', async () => {
    const file = nearMultiple(1e-4);
    expect(await merged(file, { similarityThreshold: 0.5 })).toEqual([]);
  });

  it('is a CLI flag that reaches the planner, and a bad value exits 2 naming the flag', async () => {
    const file = nearMultiple(1e-4);
    const run = await runCliInProcess(['prune', file, '--random', '64', '--dry-run', '--max-error', '1', '--exact-tolerance', '1e-3', '--json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).layers[0].merges.map((m: { neuron: number; into: number }) => [m.neuron, m.into])).toEqual([[0, 5]]);
    const bad = await runCliInProcess(['prune', file, '--dry-run', '--exact-tolerance', '2']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^condense: --exact-tolerance: expected a number in \[0, 1\), got "2"/);
  });
});
