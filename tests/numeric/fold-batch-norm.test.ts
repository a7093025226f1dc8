// foldBatchNorm against the definition: BN(W x + b) computed directly equals W' x + b' for every
// channel, with and without a bias, on random inputs; and the arithmetic of one hand-made case.

import { describe, expect, it } from 'vitest';
import { foldBatchNorm } from '../../src/numeric/fold-batch-norm.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';

describe('foldBatchNorm', () => {
  it('folds one hand-worked channel: s = 2 / sqrt(3 + 1) = 1, so W\' = W and b\' = b - mean + beta', () => {
    const bn = { scale: Float64Array.of(2, 1), shift: Float64Array.of(0.5, -1), mean: Float64Array.of(1, 0), variance: Float64Array.of(3, 0.25), epsilon: 1 };
    const { weights, bias } = foldBatchNorm(Float64Array.of(1, 2, 3, 4), Float64Array.of(10, 20), bn);
    // Channel 1: s = 1 / sqrt(1.25).
    const s1 = 1 / Math.sqrt(1.25);
    expect([...weights]).toEqual([1, 2, 3 * s1, 4 * s1]);
    expect(bias[0]).toBe(10 - 1 + 0.5);
    expect(bias[1]).toBeCloseTo(20 * s1 - 1, 12);
  });

  for (const withBias of [true, false]) {
    it(`matches BatchNorm applied after the layer on random inputs (${withBias ? 'with' : 'without'} a bias)`, () => {
      const rng = new SeededRandom(5);
      const channels = 6;
      const fan = 7;
      const w = Float64Array.from({ length: channels * fan }, () => rng.gaussian());
      const b = withBias ? Float64Array.from({ length: channels }, () => rng.gaussian()) : undefined;
      const bn = {
        scale: Float64Array.from({ length: channels }, () => rng.gaussian()),
        shift: Float64Array.from({ length: channels }, () => rng.gaussian()),
        mean: Float64Array.from({ length: channels }, () => rng.gaussian()),
        variance: Float64Array.from({ length: channels }, () => 0.1 + rng.next()),
        epsilon: 1e-5,
      };
      const folded = foldBatchNorm(w, b, bn);
      expect(folded.weights.length).toBe(w.length);
      for (let trial = 0; trial < 20; trial++) {
        const x = Float64Array.from({ length: fan }, () => rng.gaussian());
        for (let k = 0; k < channels; k++) {
          let z = b ? b[k]! : 0;
          let zf = folded.bias[k]!;
          for (let i = 0; i < fan; i++) {
            z += w[k * fan + i]! * x[i]!;
            zf += folded.weights[k * fan + i]! * x[i]!;
          }
          const direct = (bn.scale[k]! * (z - bn.mean[k]!)) / Math.sqrt(bn.variance[k]! + bn.epsilon) + bn.shift[k]!;
          expect(zf).toBeCloseTo(direct, 10);
        }
      }
    });
  }
});
