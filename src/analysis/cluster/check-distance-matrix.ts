// The input contract every clusterer shares: a finite, symmetric-by-construction n x n matrix.
// analysis/cluster/ imports nothing of ours except src/errors.ts.

/** Throws a RangeError unless `distance` holds n x n finite, non-negative values. */
export function checkDistanceMatrix(distance: Float64Array, n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`);
  if (distance.length !== n * n) {
    throw new RangeError(`distance matrix holds ${distance.length} values, expected ${n} x ${n}`);
  }
  for (let k = 0; k < distance.length; k++) {
    const d = distance[k]!;
    // NaN would make every comparison false and silently scramble the merge order.
    if (!(d >= 0) || d === Infinity) {
      throw new RangeError(`distance matrix entry ${k} is ${d}, expected a finite non-negative number`);
    }
  }
}
