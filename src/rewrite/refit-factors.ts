// The covariance and pivoted Cholesky factor of a layer's probe statistics, kept while a budget
// search tries plan after plan: ranking computes the greedy factor once, and every refit of a
// plan whose regressors are a prefix of its pivots reads that factor instead of factoring again.

import { orderedPivotedCholesky, type PartialCholesky } from '../numeric/pivoted-cholesky.js';
import type { StreamingMoments } from '../numeric/streaming-moments.js';

interface Cached {
  count: number;
  covariance: Float64Array;
  factor?: PartialCholesky;
}

// Keyed by the statistics object: a measurement's statistics live as long as the search needs them.
const cache = new WeakMap<StreamingMoments, Cached>();

function entry(stats: StreamingMoments): Cached {
  let hit = cache.get(stats);
  // Statistics that took more rows since are a different matrix.
  if (!hit || hit.count !== stats.count) {
    // The scatter is the covariance times (count - 1): pivot order, Schur complements relative to
    // their variance, and regression coefficients do not see the scale, and it costs no copy.
    hit = { count: stats.count, covariance: stats.scatter };
    cache.set(stats, hit);
  }
  return hit;
}

/** A positive multiple of the covariance of `stats` (its scatter, not copied). */
export function covarianceOf(stats: StreamingMoments): Float64Array {
  return entry(stats).covariance;
}

/** Keeps a factor of `stats`' covariance (the greedy one ranking made) for refits to reuse. */
export function rememberFactor(stats: StreamingMoments, factor: PartialCholesky): void {
  entry(stats).factor = factor;
}

/**
 * The Cholesky factor pivoted on `regressors` in order (degenerate ones skipped): the remembered
 * factor's first columns when `regressors` is a prefix of its pivots, else factored here.
 */
export function factorOn(stats: StreamingMoments, regressors: readonly number[]): Pick<PartialCholesky, 'pivots' | 'columns'> {
  const hit = entry(stats);
  const f = hit.factor;
  if (f && regressors.length <= f.pivots.length && regressors.every((p, i) => f.pivots[i] === p)) {
    return { pivots: f.pivots.slice(0, regressors.length), columns: f.columns.slice(0, regressors.length) };
  }
  const n = stats.variableCount;
  return orderedPivotedCholesky(hit.covariance, n, [...Array(n).keys()], regressors);
}
