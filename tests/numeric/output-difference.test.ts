import { describe, expect, it } from 'vitest';
import { outputDifference, relativeError } from '../../src/numeric/output-difference.js';

describe('outputDifference', () => {
  it('treats the same infinity at the same place as equal and measures the finite rest', () => {
    const d = outputDifference([1, Infinity, -Infinity, 2], [1.5, Infinity, -Infinity, 2]);
    expect(d.nonFinite).toBeNull();
    expect(d.maxAbsError).toBe(0.5);
    expect(d.maxReference).toBe(2);
  });

  it('reports Inf against a finite value, opposite infinities and NaN (even NaN against NaN) as non-finite mismatches', () => {
    expect(outputDifference([1, Infinity], [1, 3]).nonFinite).toEqual({ index: 1, reference: Infinity, candidate: 3 });
    expect(outputDifference([Infinity], [-Infinity]).nonFinite).toEqual({ index: 0, reference: Infinity, candidate: -Infinity });
    expect(outputDifference([NaN, 0], [NaN, 0]).nonFinite?.index).toBe(0);
    expect(outputDifference([0, 2], [0, NaN]).nonFinite).toEqual({ index: 1, reference: 2, candidate: NaN });
  });

  it('never gives a NaN relative error: NaN inputs count as infinitely wrong', () => {
    expect(relativeError(NaN, 1)).toBe(Infinity);
    expect(relativeError(1, NaN)).toBe(Infinity);
    expect(relativeError(0, 0)).toBe(0);
    expect(relativeError(1, 0)).toBeGreaterThan(1e20);
    expect(relativeError(0.5, 2)).toBe(0.25);
  });
});
