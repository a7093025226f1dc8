// How far one output is from another, element by element, with non-finite values compared by
// rule: the same infinity at the same place is equal; any other NaN or infinity (NaN against NaN
// included) is a difference that no tolerance accepts. Imports nothing of ours.

/** The first element where the two outputs disagree in a non-finite way. */
export interface NonFiniteMismatch {
  index: number;
  reference: number;
  candidate: number;
}

export interface OutputDifference {
  /** max |candidate - reference| over the elements where both are finite. */
  maxAbsError: number;
  /** max |reference| over its finite elements (the scale the relative error divides by). */
  maxReference: number;
  /** Set when a NaN or infinity appears anywhere other than as the same infinity in both. */
  nonFinite: NonFiniteMismatch | null;
}

/** Compares `candidate` against `reference` (same length); see the file comment for the rule. */
export function outputDifference(reference: ArrayLike<number>, candidate: ArrayLike<number>): OutputDifference {
  let maxAbsError = 0;
  let maxReference = 0;
  let nonFinite: NonFiniteMismatch | null = null;
  for (let i = 0; i < reference.length; i++) {
    const a = reference[i]!;
    const b = candidate[i]!;
    if (Number.isFinite(a) && Number.isFinite(b)) {
      const d = Math.abs(a - b);
      if (d > maxAbsError) maxAbsError = d;
      if (Math.abs(a) > maxReference) maxReference = Math.abs(a);
    } else if (!(a === b && !Number.isNaN(a))) {
      nonFinite ??= { index: i, reference: a, candidate: b };
    }
  }
  return { maxAbsError, maxReference, nonFinite };
}

/** The relative error d / scale, never NaN: a zero scale with a zero error is 0, with any error +Inf. */
export function relativeError(maxAbsError: number, maxReference: number): number {
  if (Number.isNaN(maxAbsError) || Number.isNaN(maxReference)) return Infinity;
  if (maxAbsError === 0) return 0;
  return maxAbsError / Math.max(maxReference, 1e-30);
}
