// Ranking removals for a budgeted prune: exact merges cost nothing and are always in; a ReLU dead on
// the probes goes first (and is reported as constant on the probes only), a near-duplicate next;
// the predicted cost only grows along the order; and every prefix is a plan that applies.

import { describe, expect, it } from 'vitest';
import { findLayers } from '../../src/analysis/find-layers.js';
import { cloneModel } from '../../src/ir/clone-model.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { measureModel } from '../../src/pipeline/measure-model.js';
import { applyMergePlan } from '../../src/rewrite/apply-merge-plan.js';
import { cleanUp } from '../../src/rewrite/clean-up.js';
import { rankLayerRemovals } from '../../src/rewrite/rank-removals.js';
import { buildMlp, gaussianVector, HIDDEN } from './two-layer-mlp.js';

const INPUT = 4;

/** 4 independent ReLU neurons (0..3), a copy of 0 (4), one dead on Gaussian inputs (5), a near-duplicate of 1 (6). */
function model(): ReturnType<typeof buildMlp> {
  const rng = new SeededRandom(5);
  const u = [0, 1, 2, 3].map(() => gaussianVector(rng, INPUT));
  const near = u[1]!.map((w) => w + 0.01 * rng.gaussian());
  return buildMlp({
    form: 'Gemm',
    activation: 'Relu',
    transB: true,
    inputWeights: [...u, [...u[0]!], u[2]!.map((w) => 0.01 * w), near],
    biases: [0.1, 0.2, -0.1, 0.3, 0.1, -50, 0.2],
    outgoingWeights: Array.from({ length: 7 }, () => gaussianVector(rng, 2)),
    outputBias: [0, 0],
  });
}

describe('rankLayerRemovals', () => {
  it('removes exact merges at no cost, then the dead neuron, then the near-duplicate, with a growing predicted cost', async () => {
    const m = await measureModel(model(), { probe: { random: 512, seed: 1 } });
    const hidden = m.measured.find((x) => x.layer.name === HIDDEN)!;
    const c = rankLayerRemovals(hidden)!;
    expect(c.exactRemoved).toBe(1); // the copy
    expect(c.steps).toBe(5); // the six others, one kept
    expect(c.predictedEnergy[0]).toBe(0);
    for (let r = 1; r <= c.steps; r++) expect(c.predictedEnergy[r]!).toBeGreaterThanOrEqual(c.predictedEnergy[r - 1]!);
    const first = c.planFor(1).layers[0]!;
    expect(first.refit?.dropped).toEqual([4, 5]);
    expect(first.statics.map((s) => [s.neuron, s.kind])).toEqual([[5, 'constant-on-probes']]);
    expect(c.predictedEnergy[1]).toBe(0);
    const second = c.planFor(2).layers[0]!;
    // 1 and 6 are near-duplicates: one of them goes next.
    expect(second.refit!.dropped.filter((k) => k === 1 || k === 6)).toHaveLength(1);
    expect(c.predictedEnergy[2]! / c.outputEnergy).toBeLessThan(1e-3);
    expect(c.predictedEnergy[c.steps]! / c.outputEnergy).toBeGreaterThan(0.1);
  });

  it('gives plans that apply at every count and leave the layer that many neurons narrower', async () => {
    const m = await measureModel(model(), { probe: { random: 256, seed: 2 } });
    const c = rankLayerRemovals(m.measured.find((x) => x.layer.name === HIDDEN)!)!;
    for (let r = 0; r <= c.steps; r++) {
      const copy = cloneModel(m.model);
      applyMergePlan(copy, findLayers(copy), c.planFor(r), m.statistics);
      cleanUp(copy);
      expect(findLayers(copy).find((l) => l.name === HIDDEN)!.width).toBe(7 - 1 - r);
    }
  });
});
