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
 * largest is at most `stopRelative` times the starting total, or `maxPivots` are taken.
 * O(n k^2) for k pivots.
 *
 * Above BLOCKED_FROM variables the pivots are chosen PIVOT_BLOCK at a time (the best by the scores
 * at the start of the block, each then checked against the ones before it in the block): the
 * factor is read once per block instead of once per pivot, which is what a wide layer's time goes
 * to. The factor stays exact for the order chosen; only the choice looks one block ahead less.
 */
export function greedyPivotedCholesky(cov: Float64Array, n: number, variables: readonly number[], weights: ArrayLike<number>, stopRelative = 1e-12, maxPivots = Infinity): PartialCholesky {
  if (cov.length !== n * n) throw new RangeError(`covariance holds ${cov.length} values, expected ${n} x ${n}`);
  // Compact, row-major work space: row a of `factor` is L[variables[a], 0..k), contiguous.
  const m = variables.length;
  const block = m > BLOCKED_FROM ? PIVOT_BLOCK : 1;
  const w = Float64Array.from(variables, (j) => weights[j]!);
  const residual = Float64Array.from(variables, (j) => Math.max(0, cov[j * n + j]!));
  // 1: open; 0: pivoted; 2: left out as degenerate (predicted by the pivots to rounding).
  const state = new Uint8Array(m).fill(1);
  let total = 0;
  for (let a = 0; a < m; a++) total += w[a]! * residual[a]!;
  const weightedResidual = [total];
  let capacity = Math.min(m, 64);
  let factor = new Float64Array(m * capacity);
  const pivotsLocal: number[] = [];
  const start = total;
  const dots = new Float64Array(m * block);
  let done = false;
  while (!done) {
    // The block: the best open scores now.
    const chosen = topScores(state, w, residual, block);
    if (chosen.length === 0) break;
    const k0 = pivotsLocal.length;
    if (k0 + chosen.length > capacity) {
      const grown = Math.min(m, Math.max(capacity * 2, k0 + chosen.length));
      const next = new Float64Array(m * grown);
      for (let a = 0; a < m; a++) next.set(factor.subarray(a * capacity, a * capacity + k0), a * grown);
      factor = next;
      capacity = grown;
    }
    // One pass over the factor: dots[a][i] = L[a, 0..k0) . L[chosen_i, 0..k0).
    const c = chosen.length;
    for (let a = 0; a < m; a++) {
      const row = a * capacity;
      for (let i = 0; i < c; i++) {
        const pRow = chosen[i]! * capacity;
        let d0 = 0;
        let d1 = 0;
        let d2 = 0;
        let d3 = 0;
        let t = 0;
        // Four partial sums: independent chains the CPU overlaps.
        for (; t + 3 < k0; t += 4) {
          d0 += factor[row + t]! * factor[pRow + t]!;
          d1 += factor[row + t + 1]! * factor[pRow + t + 1]!;
          d2 += factor[row + t + 2]! * factor[pRow + t + 2]!;
          d3 += factor[row + t + 3]! * factor[pRow + t + 3]!;
        }
        for (; t < k0; t++) d0 += factor[row + t]! * factor[pRow + t]!;
        dots[a * block + i] = d0 + d1 + (d2 + d3);
      }
    }
    // Then the block's pivots one by one, each against the ones accepted before it.
    const accepted: number[] = [];
    for (let i = 0; i < c; i++) {
      const best = chosen[i]!;
      const p = variables[best]!;
      const d = residual[best]!;
      if (!(w[best]! * d > stopRelative * start) || pivotsLocal.length >= maxPivots) {
        done = true;
        break;
      }
      if (!(d > DEGENERATE_PIVOT * cov[p * n + p]!) || !(d > 0)) {
        state[best] = 2;
        continue;
      }
      const k = pivotsLocal.length;
      const pRow = best * capacity;
      const scale = 1 / Math.sqrt(d);
      const covRow = p * n;
      state[best] = 0;
      let left = 0;
      for (let a = 0; a < m; a++) {
        const row = a * capacity;
        let dot = dots[a * block + i]!;
        for (let q = 0; q < accepted.length; q++) dot += factor[row + k0 + q]! * factor[pRow + k0 + q]!;
        const l = (cov[covRow + variables[a]!]! - dot) * scale;
        factor[row + k] = l;
        if (state[a] === 1) {
          const r = Math.max(0, residual[a]! - l * l);
          residual[a] = r;
          left += w[a]! * r;
        } else if (state[a] === 2) {
          residual[a] = Math.max(0, residual[a]! - l * l);
          left += w[a]! * residual[a]!;
        }
      }
      residual[best] = 0;
      accepted.push(best);
      pivotsLocal.push(best);
      weightedResidual.push(left);
    }
  }
  const k = pivotsLocal.length;
  const columns = Array.from({ length: k }, () => new Float64Array(n));
  const fullResidual = new Float64Array(n);
  for (let a = 0; a < m; a++) {
    const j = variables[a]!;
    fullResidual[j] = residual[a]!;
    for (let t = 0; t < k; t++) columns[t]![j] = factor[a * capacity + t]!;
  }
  return { pivots: pivotsLocal.map((a) => variables[a]!), columns, residual: fullResidual, weightedResidual };
}

/** Layers wider than this pick pivots in blocks. */
export const BLOCKED_FROM = 512;
/** Pivots chosen per block in wide layers. */
export const PIVOT_BLOCK = 16;

/** Up to `count` open entries with the largest w d, best first. */
function topScores(state: Uint8Array, w: Float64Array, residual: Float64Array, count: number): number[] {
  const best: number[] = [];
  const scores: number[] = [];
  for (let a = 0; a < state.length; a++) {
    if (state[a] !== 1) continue;
    const score = w[a]! * residual[a]!;
    if (best.length === count && score <= scores[count - 1]!) continue;
    let at = best.length === count ? count - 1 : best.length;
    while (at > 0 && scores[at - 1]! < score) at--;
    best.splice(at, 0, a);
    scores.splice(at, 0, score);
    if (best.length > count) {
      best.pop();
      scores.pop();
    }
  }
  return best;
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
 * The consumer side of a least-squares refit: with x_D ~ B x_K (B = L_K^-T L_D^T, C_KK = L_K L_K^T,
 * C_DK = L_D L_K^T), a consumer reading rows R (one row of `len` per variable) becomes
 * R'_K = R_K + B R_D. Returns B R_D (pivots.length x len), formed as L_K^-T (L_D^T R_D) so the cost
 * is O(k |D| len + k^2 len) rather than O(k^2 |D|).
 */
export function refitOnPivots(factor: Pick<PartialCholesky, 'pivots' | 'columns'>, dropped: readonly number[], rows: Float64Array, len: number): Float64Array {
  const k = factor.pivots.length;
  const m = new Float64Array(k * len);
  for (let s = 0; s < k; s++) {
    const column = factor.columns[s]!;
    const out = s * len;
    for (const d of dropped) {
      const l = column[d]!;
      if (l === 0) continue;
      const row = d * len;
      for (let o = 0; o < len; o++) m[out + o] = m[out + o]! + l * rows[row + o]!;
    }
  }
  // Back substitution L_K^T X = M, where L_K[s][t] = columns[t][p_s].
  for (let s = k - 1; s >= 0; s--) {
    const out = s * len;
    for (let t = s + 1; t < k; t++) {
      const l = factor.columns[s]![factor.pivots[t]!]!;
      if (l === 0) continue;
      const other = t * len;
      for (let o = 0; o < len; o++) m[out + o] = m[out + o]! - l * m[other + o]!;
    }
    const pivot = factor.columns[s]![factor.pivots[s]!]!;
    for (let o = 0; o < len; o++) m[out + o] = m[out + o]! / pivot;
  }
  return m;
}
