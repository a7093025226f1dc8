// Partial pivoted Cholesky of a covariance matrix: the Schur complements that say how well each
// variable is predicted, by least squares, from the variables pivoted so far.
// numeric/ owns typed-array math with no IR; it imports nothing of ours.

/** The factor after some pivots: C[j, p_s] = sum_t L[t][j] L[t][p_s] for every pivoted p_s. */
export interface PartialCholesky {
  /** Pivoted variables, in order (indices into the full matrix). */
  pivots: number[];
  /** columns[s][j]: column s of L, for every variable j of the full matrix (0 for variables outside `variables`). */
  columns: Float64Array[];
  /**
   * residual[j]: the Schur complement C[j, j] - sum_s L[s][j]^2, the variance of variable j left
   * after its least-squares fit from the pivots (0 for pivots).
   */
  residual: Float64Array;
  /** weightedResidual[k]: sum over unpivoted variables of w_j residual_j after k pivots (k = 0 .. pivots.length). */
  weightedResidual: number[];
}

/** A pivot whose residual variance is below this fraction of its variance adds nothing: it is skipped. */
export const DEGENERATE_PIVOT = 1e-10;

/**
 * Greedy pivoted Cholesky of the n x n covariance `cov` (row-major) restricted to `variables`:
 * at each step the variable with the largest weighted residual w_j d_j becomes the next pivot
 * (the one whose loss the rest predict worst; ThiNet / least-squares channel selection), until the
 * largest is at most `stopRelative` times the starting total. O(n k^2) for k pivots.
 */
export function greedyPivotedCholesky(cov: Float64Array, n: number, variables: readonly number[], weights: ArrayLike<number>, stopRelative = 1e-12): PartialCholesky {
  const state = start(cov, n, variables, weights);
  const total = state.weightedResidual[0]!;
  const open = new Set(variables);
  while (open.size > 0) {
    let best = -1;
    let bestScore = -Infinity;
    for (const j of open) {
      const score = weights[j]! * state.residual[j]!;
      if (score > bestScore || (score === bestScore && j < best)) {
        best = j;
        bestScore = score;
      }
    }
    if (!(bestScore > stopRelative * total) || !pivot(state, cov, n, best, weights)) break;
    open.delete(best);
  }
  return state;
}

/**
 * Cholesky with the pivots taken in the given `order` (a subset of `variables`); a pivot already
 * predicted by the earlier ones (residual below DEGENERATE_PIVOT of its variance) is skipped and
 * left out of `pivots`.
 */
export function orderedPivotedCholesky(cov: Float64Array, n: number, variables: readonly number[], order: readonly number[], weights?: ArrayLike<number>): PartialCholesky {
  const w = weights ?? new Float64Array(n).fill(1);
  const state = start(cov, n, variables, w);
  for (const p of order) pivot(state, cov, n, p, w);
  return state;
}

interface State extends PartialCholesky {
  variables: readonly number[];
  unpivoted: Uint8Array;
}

function start(cov: Float64Array, n: number, variables: readonly number[], weights: ArrayLike<number>): State {
  if (cov.length !== n * n) throw new RangeError(`covariance holds ${cov.length} values, expected ${n} x ${n}`);
  const residual = new Float64Array(n);
  const unpivoted = new Uint8Array(n);
  let total = 0;
  for (const j of variables) {
    const d = Math.max(0, cov[j * n + j]!);
    residual[j] = d;
    unpivoted[j] = 1;
    total += weights[j]! * d;
  }
  return { pivots: [], columns: [], residual, weightedResidual: [total], variables, unpivoted };
}

/** One pivot on p; false (and nothing changes) when p is degenerate. */
function pivot(state: State, cov: Float64Array, n: number, p: number, weights: ArrayLike<number>): boolean {
  const d = state.residual[p]!;
  const variance = cov[p * n + p]!;
  if (!(d > DEGENERATE_PIVOT * variance) || !(d > 0)) return false;
  const column = new Float64Array(n);
  const row = p * n;
  for (const j of state.variables) column[j] = cov[row + j]!;
  for (const previous of state.columns) {
    const lp = previous[p]!;
    if (lp === 0) continue;
    for (const j of state.variables) column[j] = column[j]! - previous[j]! * lp;
  }
  const scale = 1 / Math.sqrt(d);
  let total = 0;
  state.unpivoted[p] = 0;
  for (const j of state.variables) {
    const l = column[j]! * scale;
    column[j] = l;
    const r = state.unpivoted[j] ? Math.max(0, state.residual[j]! - l * l) : 0;
    state.residual[j] = r;
    if (state.unpivoted[j]) total += weights[j]! * r;
  }
  state.pivots.push(p);
  state.columns.push(column);
  state.weightedResidual.push(total);
  return true;
}

/**
 * Least-squares coefficients of the unpivoted variables on the pivots: for each variable d in
 * `targets`, b_d with x_d ~ sum_s b_d[s] x_{p_s}, from B = L_K^-T L_D^T (C_KK = L_K L_K^T,
 * C_DK = L_D L_K^T). Row-major targets.length x pivots.length.
 */
export function regressionOnPivots(factor: PartialCholesky, targets: readonly number[]): Float64Array {
  const k = factor.pivots.length;
  const out = new Float64Array(targets.length * k);
  // lk[s][t] = L[t][p_s]: the pivots' rows of L, lower triangular.
  const lk = factor.pivots.map((p) => Float64Array.from(factor.columns, (c) => c[p]!));
  const rhs = new Float64Array(k);
  targets.forEach((d, i) => {
    for (let s = 0; s < k; s++) rhs[s] = factor.columns[s]![d]!;
    // Back substitution L_K^T b = l_d.
    for (let s = k - 1; s >= 0; s--) {
      let v = rhs[s]!;
      for (let t = s + 1; t < k; t++) v -= lk[t]![s]! * out[i * k + t]!;
      out[i * k + s] = v / lk[s]![s]!;
    }
  });
  return out;
}
