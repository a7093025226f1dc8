import { describe, expect, it } from 'vitest';
import { solveSymmetricPositive, solveSymmetricPositiveWithRidge } from '../../src/numeric/linear-solve.js';

function multiply(a: Float64Array, n: number, x: Float64Array, rhsCount: number): Float64Array {
  const out = new Float64Array(n * rhsCount);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < rhsCount; c++) {
      let sum = 0;
      for (let k = 0; k < n; k++) sum += a[i * n + k]! * x[k * rhsCount + c]!;
      out[i * rhsCount + c] = sum;
    }
  }
  return out;
}

describe('solveSymmetricPositive', () => {
  it('solves a known 3 x 3 system with two right-hand sides', () => {
    const a = Float64Array.from([4, 12, -16, 12, 37, -43, -16, -43, 98]);
    const xExpected = Float64Array.from([1, -2, 2, 0.5, -1, 3]);
    const b = multiply(a, 3, xExpected, 2);
    const x = solveSymmetricPositive(a, 3, b, 2);
    for (let k = 0; k < 6; k++) expect(x[k]).toBeCloseTo(xExpected[k]!, 10);
  });

  it('solves a random well-conditioned system to high accuracy', () => {
    const n = 40;
    const m = new Float64Array(n * n).map((_, k) => Math.sin(k * 1.7) + ((k * 7919) % 13) / 13);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let sum = i === j ? n : 0;
        for (let k = 0; k < n; k++) sum += m[i * n + k]! * m[j * n + k]!;
        a[i * n + j] = sum;
      }
    }
    const xExpected = new Float64Array(n).map((_, i) => i - n / 2);
    const x = solveSymmetricPositive(a, n, multiply(a, n, xExpected, 1), 1);
    for (let i = 0; i < n; i++) expect(Math.abs(x[i]! - xExpected[i]!)).toBeLessThan(1e-8);
  });

  it('applies the requested ridge relative to the mean diagonal', () => {
    const a = Float64Array.from([2, 0, 0, 4]);
    // mean diagonal 3, ridge 1/3 adds 1: (3, 5) x = (3, 5) gives x = (1, 1).
    const result = solveSymmetricPositiveWithRidge(a, 2, Float64Array.from([3, 5]), 1, 1 / 3);
    expect(result.ridgeUsed).toBe(1 / 3);
    expect(result.solution[0]).toBeCloseTo(1, 12);
    expect(result.solution[1]).toBeCloseTo(1, 12);
  });

  it('falls back to a small ridge for a singular covariance of duplicated variables', () => {
    // Two identical variables: the covariance has rank 1.
    const a = Float64Array.from([1, 1, 1, 1]);
    const result = solveSymmetricPositiveWithRidge(a, 2, Float64Array.from([1, 1]), 1);
    expect(result.ridgeUsed).toBeGreaterThan(0);
    expect(result.ridgeUsed).toBeLessThanOrEqual(1e-8);
    const back = multiply(a, 2, result.solution, 1);
    expect(back[0]).toBeCloseTo(1, 6);
    expect(back[1]).toBeCloseTo(1, 6);
  });

  it('refuses a matrix with non-finite entries', () => {
    expect(() => solveSymmetricPositive(Float64Array.from([NaN]), 1, Float64Array.from([1]), 1)).toThrow(RangeError);
  });
});
