// Solving symmetric positive (semi)definite systems by Cholesky, with a ridge when needed.
// numeric/ owns typed-array math with no IR; it imports nothing of ours.

// Ridges tried, relative to the mean diagonal, when the matrix is not numerically positive
// definite (a covariance of neurons that are exact copies of each other is singular).
const FALLBACK_RIDGES = [1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2, 1];

/** The solution of a symmetric positive system and the relative ridge that was actually added. */
export interface SymmetricSolution {
  /** Row-major n x rhsCount. */
  solution: Float64Array;
  /** Multiple of mean(diag(A)) added to the diagonal: the requested ridge, or a larger fallback. */
  ridgeUsed: number;
}

/**
 * Solves (A + ridge * mean(diag A) * I) X = B for X (row-major n x rhsCount), where A is a
 * symmetric n x n matrix (row-major; only its lower triangle is read); if A + ridge is not
 * numerically positive definite the ridge is raised through 1e-12, 1e-10, ... 1 (relative) until
 * Cholesky succeeds, and a RangeError is thrown if even that fails or A has non-finite entries.
 */
export function solveSymmetricPositive(
  a: Float64Array,
  n: number,
  b: Float64Array,
  rhsCount: number,
  ridge = 0,
): Float64Array {
  return solveSymmetricPositiveWithRidge(a, n, b, rhsCount, ridge).solution;
}

/** Same as solveSymmetricPositive, and also reports the ridge that was needed. */
export function solveSymmetricPositiveWithRidge(
  a: Float64Array,
  n: number,
  b: Float64Array,
  rhsCount: number,
  ridge = 0,
): SymmetricSolution {
  if (a.length !== n * n) throw new RangeError(`A holds ${a.length} values, expected ${n} x ${n}`);
  if (b.length !== n * rhsCount) {
    throw new RangeError(`B holds ${b.length} values, expected ${n} x ${rhsCount}`);
  }
  if (!(ridge >= 0)) throw new RangeError(`ridge must be a non-negative number, got ${ridge}`);
  for (let k = 0; k < a.length; k++) {
    if (!Number.isFinite(a[k]!)) throw new RangeError('A has non-finite entries');
  }
  if (n === 0) return { solution: new Float64Array(0), ridgeUsed: ridge };

  let diagonalSum = 0;
  for (let i = 0; i < n; i++) diagonalSum += a[i * n + i]!;
  const meanDiagonal = diagonalSum / n;
  // An all-zero diagonal has no scale of its own; fall back to unit scale so a ridge still helps.
  const scale = meanDiagonal > 0 ? meanDiagonal : 1;

  const ridges = [ridge, ...FALLBACK_RIDGES.filter((r) => r > ridge)];
  const factor = new Float64Array(n * n);
  for (const tried of ridges) {
    if (choleskyInto(a, n, tried * scale, factor)) {
      return { solution: solveWithFactor(factor, n, b, rhsCount), ridgeUsed: tried };
    }
  }
  throw new RangeError(`matrix is not positive definite even with ${FALLBACK_RIDGES.at(-1)} x mean(diag) added to the diagonal`);
}

// Lower Cholesky factor of A + shift I into `factor`; false when a pivot is not safely positive.
// The pivot floor is relative to the largest diagonal: tinier pivots mean the matrix is singular to
// working precision and would give a solution dominated by rounding noise.
function choleskyInto(a: Float64Array, n: number, shift: number, factor: Float64Array): boolean {
  let largestDiagonal = 0;
  for (let i = 0; i < n; i++) largestDiagonal = Math.max(largestDiagonal, Math.abs(a[i * n + i]! + shift));
  const pivotFloor = n * Number.EPSILON * largestDiagonal;
  for (let i = 0; i < n; i++) {
    const rowI = i * n;
    for (let j = 0; j <= i; j++) {
      const rowJ = j * n;
      let sum = a[rowI + j]! + (i === j ? shift : 0);
      for (let k = 0; k < j; k++) sum -= factor[rowI + k]! * factor[rowJ + k]!;
      if (i === j) {
        if (!(sum > pivotFloor)) return false;
        factor[rowI + i] = Math.sqrt(sum);
      } else {
        factor[rowI + j] = sum / factor[rowJ + j]!;
      }
    }
  }
  return true;
}

function solveWithFactor(factor: Float64Array, n: number, b: Float64Array, rhsCount: number): Float64Array {
  const x = Float64Array.from(b);
  // Forward substitution L Y = B, whole rows of right-hand sides at a time.
  for (let i = 0; i < n; i++) {
    const rowX = i * rhsCount;
    for (let k = 0; k < i; k++) {
      const l = factor[i * n + k]!;
      if (l === 0) continue;
      const rowK = k * rhsCount;
      for (let c = 0; c < rhsCount; c++) x[rowX + c] = x[rowX + c]! - l * x[rowK + c]!;
    }
    const pivot = factor[i * n + i]!;
    for (let c = 0; c < rhsCount; c++) x[rowX + c] = x[rowX + c]! / pivot;
  }
  // Back substitution L^T X = Y.
  for (let i = n - 1; i >= 0; i--) {
    const rowX = i * rhsCount;
    for (let k = i + 1; k < n; k++) {
      const l = factor[k * n + i]!;
      if (l === 0) continue;
      const rowK = k * rhsCount;
      for (let c = 0; c < rhsCount; c++) x[rowX + c] = x[rowX + c]! - l * x[rowK + c]!;
    }
    const pivot = factor[i * n + i]!;
    for (let c = 0; c < rhsCount; c++) x[rowX + c] = x[rowX + c]! / pivot;
  }
  return x;
}
