// The pivoted Cholesky behind budgeted pruning: its residuals are the Schur complements (the
// variance least squares leaves), the greedy order keeps what the rest predict worst and leaves
// exact copies and constants unpivoted, and the refit it implies is the normal-equations solution.

import { describe, expect, it } from 'vitest';
import { greedyPivotedCholesky, orderedPivotedCholesky, refitOnPivots } from '../../src/numeric/pivoted-cholesky.js';
import { solveSymmetricPositive } from '../../src/numeric/linear-solve.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';

/** Samples (rows) x variables: 4 independent ones, a copy of 0, 2 x variable 1, a constant, and 0.9 v2 + 0.1 noise. */
function data(rows: number): { x: Float64Array; n: number } {
  const rng = new SeededRandom(7);
  const n = 8;
  const x = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    const base = [0, 1, 2, 3].map(() => rng.gaussian());
    const row = [...base, base[0]!, 2 * base[1]!, 3, 0.9 * base[2]! + 0.1 * rng.gaussian()];
    x.set(row, r * n);
  }
  return { x, n };
}

function covariance(x: Float64Array, rows: number, n: number): Float64Array {
  const mean = new Float64Array(n);
  for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) mean[j]! += x[r * n + j]! / rows;
  const c = new Float64Array(n * n);
  for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) c[i * n + j]! += ((x[r * n + i]! - mean[i]!) * (x[r * n + j]! - mean[j]!)) / (rows - 1);
  return c;
}

describe('greedy pivoted Cholesky', () => {
  const rows = 400;
  const { x, n } = data(rows);
  const cov = covariance(x, rows, n);
  const all = [...Array(n).keys()];
  const ones = new Float64Array(n).fill(1);

  it('pivots on the independent variables and leaves the copy, the multiple and the constant predicted exactly', () => {
    const f = greedyPivotedCholesky(cov, n, all, ones);
    expect(f.pivots).toHaveLength(5); // rank 5: four independent variables and the noisy one
    // One of each exact pair (the larger-variance 2 v1 wins over v1); never the constant.
    for (const pair of [[0, 4], [1, 5]]) expect(pair.filter((j) => f.pivots.includes(j))).toHaveLength(1);
    expect(f.pivots).toContain(5);
    expect(f.pivots).not.toContain(6);
    for (const j of all.filter((j) => !f.pivots.includes(j))) expect(f.residual[j]).toBeLessThan(1e-9 * cov[0]!);
    expect(f.weightedResidual.at(-1)!).toBeLessThan(1e-9);
    // The residual only falls as pivots are added.
    for (let k = 1; k < f.weightedResidual.length; k++) expect(f.weightedResidual[k]!).toBeLessThanOrEqual(f.weightedResidual[k - 1]! + 1e-12);
  });

  it('has residuals equal to the Schur complement C_jj - C_jK C_KK^-1 C_Kj of the pivots so far', () => {
    const kept = [0, 1];
    const f = orderedPivotedCholesky(cov, n, all, kept);
    const ckk = Float64Array.from([cov[0]!, cov[1]!, cov[n]!, cov[n + 1]!]);
    for (const j of [2, 3, 7]) {
      const ckj = Float64Array.from([cov[j]!, cov[n + j]!]);
      const b = solveSymmetricPositive(ckk, 2, ckj, 1);
      const schur = cov[j * n + j]! - (ckj[0]! * b[0]! + ckj[1]! * b[1]!);
      expect(f.residual[j]).toBeCloseTo(schur, 10);
    }
  });

  it('refits a consumer exactly as the normal equations do: B R_D with B = C_KK^-1 C_KD', () => {
    const kept = [0, 1, 2, 3];
    const dropped = [4, 5, 6, 7];
    const len = 3;
    const rng = new SeededRandom(3);
    const rowsR = Float64Array.from({ length: n * len }, () => rng.gaussian());
    const f = orderedPivotedCholesky(cov, n, all, kept);
    const update = refitOnPivots(f, dropped, rowsR, len);
    const k = kept.length;
    const ckk = new Float64Array(k * k);
    for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) ckk[a * k + b] = cov[kept[a]! * n + kept[b]!]!;
    const rhs = new Float64Array(k * len);
    for (let a = 0; a < k; a++) for (const d of dropped) for (let o = 0; o < len; o++) rhs[a * len + o]! += cov[kept[a]! * n + d]! * rowsR[d * len + o]!;
    const expected = solveSymmetricPositive(ckk, k, rhs, len);
    f.pivots.forEach((p, s) => {
      const a = kept.indexOf(p);
      for (let o = 0; o < len; o++) expect(update[s * len + o]).toBeCloseTo(expected[a * len + o]!, 8);
    });
  });

  it('skips a kept variable the earlier pivots already predict, without a ridge', () => {
    const f = orderedPivotedCholesky(cov, n, all, [0, 4, 1]);
    expect(f.pivots).toEqual([0, 1]);
  });
});
