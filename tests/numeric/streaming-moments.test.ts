import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { StreamingMoments } from '../../src/numeric/streaming-moments.js';

// Deterministic numbers (the library's seeded generator) so failures reproduce.
function random(seed: number): () => number {
  const rng = new SeededRandom(seed);
  return () => rng.next();
}

function makeRows(rowCount: number, m: number, seed: number, offset = 0): Float64Array {
  const next = random(seed);
  const rows = new Float64Array(rowCount * m);
  for (let r = 0; r < rowCount; r++) {
    const shared = next() - 0.5;
    for (let i = 0; i < m; i++) rows[r * m + i] = offset + (i + 1) * shared + (next() - 0.5) * (i % 3);
  }
  return rows;
}

function oneShotCovariance(rows: Float64Array, rowCount: number, m: number): { mean: number[]; cov: number[] } {
  const mean = new Array<number>(m).fill(0);
  for (let r = 0; r < rowCount; r++) for (let i = 0; i < m; i++) mean[i]! += rows[r * m + i]! / rowCount;
  const cov = new Array<number>(m * m).fill(0);
  for (let r = 0; r < rowCount; r++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) {
        cov[i * m + j]! += ((rows[r * m + i]! - mean[i]!) * (rows[r * m + j]! - mean[j]!)) / rowCount;
      }
    }
  }
  return { mean, cov };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let k = 0; k < actual.length; k++) worst = Math.max(worst, Math.abs(actual[k]! - expected[k]!));
  expect(worst).toBeLessThan(tolerance);
}

describe('StreamingMoments', () => {
  it('gives the one-shot mean and covariance when rows arrive in uneven batches', () => {
    const m = 7;
    const rowCount = 500;
    const rows = makeRows(rowCount, m, 1);
    const moments = new StreamingMoments(m);
    let start = 0;
    for (const size of [1, 63, 64, 65, 2, 200, 105]) {
      moments.addRows(rows.subarray(start * m, (start + size) * m), size);
      start += size;
    }
    expect(start).toBe(rowCount);
    const expected = oneShotCovariance(rows, rowCount, m);
    expect(moments.count).toBe(rowCount);
    expectClose(moments.mean, expected.mean, 1e-10);
    expectClose(moments.covariance(), expected.cov, 1e-10);
    expectClose(moments.variance(), expected.cov.filter((_, k) => k % (m + 1) === 0), 1e-10);
  });

  it('merges precomputed batch moments the same as adding the rows', () => {
    const m = 5;
    const rows = makeRows(300, m, 2);
    const byRows = new StreamingMoments(m);
    byRows.addRows(rows, 300);
    const byBatches = new StreamingMoments(m);
    for (const [start, size] of [[0, 100], [100, 150], [250, 50]] as const) {
      const part = new StreamingMoments(m);
      part.addRows(rows.subarray(start * m, (start + size) * m), size);
      byBatches.addBatch(part.mean, part.scatter, part.count);
    }
    expectClose(byBatches.mean, byRows.mean, 1e-12);
    expectClose(byBatches.scatter, byRows.scatter, 1e-10);
  });

  it('stays accurate when the mean is large against the spread', () => {
    const m = 3;
    const rows = makeRows(1000, m, 3, 1e6);
    const moments = new StreamingMoments(m);
    for (let start = 0; start < 1000; start += 100) moments.addRows(rows.subarray(start * m, (start + 100) * m), 100);
    const expected = oneShotCovariance(rows, 1000, m);
    expectClose(moments.covariance(), expected.cov, 1e-8);
  });

  it('reads float32 rows and gives E[h h^T] as covariance plus mean mean^T', () => {
    const rows = new Float32Array([1, 2, 3, 4, 5, 7]);
    const moments = new StreamingMoments(2);
    moments.addRows(rows, 3);
    // E[h h^T] computed by hand from (1,2), (3,4), (5,7).
    expectClose(moments.secondMoment(), [35 / 3, 49 / 3, 49 / 3, 69 / 3], 1e-12);
    expectClose(moments.mean, [3, 13 / 3], 1e-12);
  });

  it('ignores empty batches and reports NaN covariance before any rows', () => {
    const moments = new StreamingMoments(2);
    moments.addRows(new Float64Array(0), 0);
    moments.addBatch([5, 5], [0, 0, 0, 0], 0);
    expect(moments.count).toBe(0);
    expect(Number.isNaN(moments.covariance()[0])).toBe(true);
  });

  it('refuses rows shorter than the stated row count', () => {
    const moments = new StreamingMoments(3);
    expect(() => moments.addRows(new Float64Array(5), 2)).toThrow(RangeError);
  });
});
