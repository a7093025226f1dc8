// Flat clusters of neurons from their distance matrix: the one place that picks a clusterer.
// analysis/cluster/ imports nothing of ours except src/errors.ts.
import { OptionError } from '../../errors.js';
import { agnesClusterer } from './agnes-clusterer.js';
import { cutDendrogram, type Clusterer } from './clusterer.js';
import { nnChainClusterer } from './nn-chain-clusterer.js';

/** Which average-linkage algorithm to use; 'auto' picks by layer width. */
export type ClusterMethod = 'auto' | 'agnes' | 'nn-chain';

export interface ClusterOptions {
  /** Merges with average distance at most this join one cluster (1 - similarity threshold). */
  maxDistance: number;
  method?: ClusterMethod;
}

export interface NeuronClusters {
  /** labels[neuron] in 0..count-1, numbered in order of each cluster's first neuron. */
  labels: Int32Array;
  count: number;
  /** The algorithm that actually ran. */
  method: Exclude<ClusterMethod, 'auto'>;
}

// agnes rebuilds its matrix at every merge (cubic time); above this width the chain is faster.
const AGNES_MAX_NEURONS = 256;

const clusterers: Record<Exclude<ClusterMethod, 'auto'>, Clusterer> = {
  agnes: agnesClusterer,
  'nn-chain': nnChainClusterer,
};

/** Clusters n neurons by average linkage on their row-major n x n distances and cuts at maxDistance. */
export function clusterNeurons(distance: Float64Array, n: number, options: ClusterOptions): NeuronClusters {
  const { maxDistance, method = 'auto' } = options;
  if (!Number.isFinite(maxDistance) || maxDistance < 0) {
    throw new OptionError('maxDistance', `expected a finite number >= 0, got ${maxDistance}`);
  }
  if (method !== 'auto' && !Object.hasOwn(clusterers, method)) {
    throw new OptionError('method', `expected one of auto, agnes, nn-chain, got "${String(method)}"`);
  }
  const chosen = method === 'auto' ? (n <= AGNES_MAX_NEURONS ? 'agnes' : 'nn-chain') : method;
  const dendrogram = clusterers[chosen].linkage(distance, n);
  const { labels, count } = cutDendrogram(dendrogram, n, maxDistance);
  return { labels, count, method: chosen };
}

/**
 * The same clusters, for a caller that builds the distances only to cluster them: `fill` writes
 * the row-major n x n distances into a matrix the clusterer lends (for nn-chain its kept working
 * matrix, so no n x n matrix is allocated, first touched or copied), which is consumed. A fill
 * that returns 'validated' has checked every entry is finite and >= 0 (the clusterer's check then
 * does not pass over the matrix again).
 */
export function clusterNeuronsInPlace(fill: (distance: Float64Array) => unknown, n: number, options: ClusterOptions): NeuronClusters {
  const method = options.method ?? 'auto';
  const chosen = method === 'auto' ? (n <= AGNES_MAX_NEURONS ? 'agnes' : 'nn-chain') : method;
  if (chosen !== 'nn-chain' || n <= 1) {
    const distance = new Float64Array(n * n);
    fill(distance);
    return clusterNeurons(distance, n, options);
  }
  const { maxDistance } = options;
  if (!Number.isFinite(maxDistance) || maxDistance < 0) {
    throw new OptionError('maxDistance', `expected a finite number >= 0, got ${maxDistance}`);
  }
  const distance = nnChainClusterer.workingMatrix(n);
  const isValidated = fill(distance) === 'validated';
  const { labels, count } = cutDendrogram(nnChainClusterer.linkageInPlace(distance, n, isValidated), n, maxDistance);
  return { labels, count, method: chosen };
}

/** Number of neurons in each cluster, indexed by label. */
export function clusterSizes(labels: Int32Array, count: number): Int32Array {
  const sizes = new Int32Array(count);
  for (const label of labels) sizes[label] = sizes[label]! + 1;
  return sizes;
}
