import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { cosineFromGram, cosineMatrix, norms } from '../../src/numeric/cosine.js';

const entry = fc.double({ min: -1e6, max: 1e6, noNaN: true });
// Moderate values, so the Gram route (which squares entries) neither underflows nor overflows.
const moderateEntry = fc.integer({ min: -1000, max: 1000 }).map((k) => k / 7);
const nonZeroVector = fc
  .array(entry, { minLength: 1, maxLength: 20 })
  .filter((u) => u.some((x) => Math.abs(x) > 1e-6));

function gramOf(rows: Float64Array, rowCount: number, dim: number): Float64Array {
  const gram = new Float64Array(rowCount * rowCount);
  for (let i = 0; i < rowCount; i++) {
    for (let j = 0; j < rowCount; j++) {
      let dot = 0;
      for (let k = 0; k < dim; k++) dot += rows[i * dim + k]! * rows[j * dim + k]!;
      gram[i * rowCount + j] = dot;
    }
  }
  return gram;
}

describe('cosineMatrix', () => {
  it('gives cos(u, t u) = 1 for t > 0 and -1 for t < 0', () => {
    fc.assert(
      fc.property(
        nonZeroVector,
        fc.double({ min: 1e-3, max: 1e3, noNaN: true }),
        fc.boolean(),
        (u, magnitude, isNegative) => {
          const t = isNegative ? -magnitude : magnitude;
          const rows = Float64Array.from([...u, ...u.map((x) => t * x)]);
          const cos = cosineMatrix(rows, 2, u.length);
          const expected = isNegative ? -1 : 1;
          return Math.abs(cos[1]! - expected) < 1e-12 && cos[1] === cos[2] && cos[0] === 1 && cos[3] === 1;
        },
      ),
    );
  });

  it('is symmetric, within [-1, 1], and agrees with the Gram route', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.infiniteStream(moderateEntry), (rowCount, dim, stream) => {
        const values: number[] = [];
        for (const x of stream.take(rowCount * dim)) values.push(x);
        const rows = Float64Array.from(values);
        const direct = cosineMatrix(rows, rowCount, dim);
        const viaGram = cosineFromGram(gramOf(rows, rowCount, dim), rowCount);
        for (let i = 0; i < rowCount; i++) {
          for (let j = 0; j < rowCount; j++) {
            const c = direct[i * rowCount + j]!;
            if (c !== direct[j * rowCount + i] || c < -1 || c > 1) return false;
            if (Math.abs(c - viaGram[i * rowCount + j]!) > 1e-9) return false;
          }
        }
        return true;
      }),
    );
  });

  it('gives a zero row cosine 0 with the others and 1 with itself', () => {
    const rows = Float64Array.from([1, 2, 0, 0, -3, 1]);
    const cos = cosineMatrix(rows, 3, 2);
    expect(Array.from(cos.subarray(3, 6))).toEqual([0, 1, 0]);
    expect(cos[2]).toBe(cos[6]);
    const fromGram = cosineFromGram(gramOf(rows, 3, 2), 3);
    expect(Array.from(fromGram.subarray(3, 6))).toEqual([0, 1, 0]);
  });

  it('treats orthogonal rows as cosine 0', () => {
    const cos = cosineMatrix(Float64Array.from([1, 0, 0, 5]), 2, 2);
    expect(Array.from(cos)).toEqual([1, 0, 0, 1]);
  });
});

describe('norms', () => {
  it('measures very large and very small rows without overflow or underflow', () => {
    const rows = Float64Array.from([3e200, 4e200, 3e-200, 4e-200, 0, 0]);
    const result = norms(rows, 3, 2);
    expect(result[0]! / 5e200).toBeCloseTo(1, 12);
    expect(result[1]! / 5e-200).toBeCloseTo(1, 12);
    expect(result[2]).toBe(0);
  });
});
