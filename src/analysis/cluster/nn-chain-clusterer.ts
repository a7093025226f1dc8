// Average linkage by the nearest-neighbour chain algorithm: O(n^2) time on one n x n working copy
// of the distances, for layers too wide for agnes. analysis/cluster/ imports nothing of ours except
// src/errors.ts.
import { dendrogramFromLeafMerges, type Clusterer, type Dendrogram } from './clusterer.js';
import { checkDistanceMatrix } from './check-distance-matrix.js';

// Below this many slots the working matrix fits in cache and compacting it gains nothing.
const MIN_COMPACT_SLOTS = 64;

// The working matrix is kept between calls: first touching fresh memory is the largest single
// cost of a wide layer (n = 4096 needs 128 MiB; on a VM that faults pages in from its host, that
// alone takes longer than the clustering), and an audit clusters every layer twice.
let scratch: Float64Array | undefined;

function workingMatrix(length: number): Float64Array {
  if (!scratch || scratch.length < length) {
    scratch = undefined; // let a collection during the allocation free the old one
    scratch = new Float64Array(length);
  }
  return scratch;
}

/**
 * Average linkage (UPGMA) by the nearest-neighbour chain (Murtagh 1983; Müllner 2011, "Modern
 * hierarchical, agglomerative clustering algorithms"), exact for average linkage because the
 * Lance–Williams update d(k, i∪j) = (n_i d(k,i) + n_j d(k,j)) / (n_i + n_j) is reducible.
 * Ties go to the previous chain element, then to the lowest index, as in scipy's nn_chain.
 * The input matrix is not modified.
 */
export const nnChainClusterer: Clusterer & {
  /**
   * The same dendrogram, using `distance` itself as the working matrix (its contents are
   * undefined afterwards): for a caller that built the matrix for this call alone, this saves
   * copying, and first touching, n^2 doubles. `isValidated`: the caller checked every entry is
   * finite and >= 0 as it wrote it, so the check's own pass over n^2 entries is skipped.
   */
  linkageInPlace(distance: Float64Array, n: number, isValidated?: boolean): Dendrogram;
  /**
   * The clusterer's own n x n working matrix (kept between calls, so already paged in): a caller
   * may write its distances straight into it and pass it to linkageInPlace, which then copies
   * nothing. Valid until the next call of linkage, linkageInPlace or workingMatrix.
   */
  workingMatrix(n: number): Float64Array;
} = {
  name: 'nn-chain',
  linkage(distance: Float64Array, n: number): Dendrogram {
    if (!Number.isInteger(n) || n <= 1 || distance.length !== n * n) {
      checkDistanceMatrix(distance, n);
      return [];
    }
    const d = workingMatrix(n * n);
    copyChecked(distance, d, n);
    return dendrogramFromLeafMerges(nearestNeighbourChain(d, n), n);
  },
  workingMatrix(n: number): Float64Array {
    return workingMatrix(n * n).subarray(0, n * n);
  },
  linkageInPlace(distance: Float64Array, n: number, isValidated = false): Dendrogram {
    // A caller that wrote every entry itself and saw each was finite and >= 0 skips the second pass.
    if (!isValidated || distance.length !== n * n) checkDistanceMatrix(distance, n);
    if (n <= 1) return [];
    return dendrogramFromLeafMerges(nearestNeighbourChain(distance, n), n);
  },
};

/** Copies `distance` into `d`, validating on the way; on a bad entry the shared check throws its usual message. */
function copyChecked(distance: Float64Array, d: Float64Array, n: number): void {
  for (let k = 0; k < n * n; k++) {
    const value = distance[k]!;
    if (!(value >= 0) || value === Infinity) checkDistanceMatrix(distance, n);
    d[k] = value;
  }
}

type LeafMerge = { leftLeaf: number; rightLeaf: number; height: number };

/**
 * The merges of average linkage of the validated n x n matrix `d`, which serves as the working
 * matrix (its first n^2 entries are overwritten), each merge named by one leaf of either side, in
 * the order they are made.
 *
 * The layout is chosen for memory traffic, since at n = 4096 the matrix is far larger than the
 * caches (measured costs are in docs/performance.md):
 * - a full row-major working matrix, not scipy's condensed triangle: the nearest-neighbour scan
 *   of a row (about three per merge) reads contiguous memory instead of one cache line per entry;
 *   the diagonal holds +Infinity and dead columns keep stale values, so the scan tests liveness
 *   only when it meets a new minimum;
 * - a merge rewrites the merged cluster's row (contiguous) and its column (one store per live row,
 *   the price of contiguous scans; deferring and batching the column stores measured no faster,
 *   since each still lands on its own cache line);
 * - once half of the slots are dead the live rows and columns are compacted in place, so scans
 *   never wade through more than twice the live width and later merges touch a smaller matrix.
 */
function nearestNeighbourChain(d: Float64Array, n: number): LeafMerge[] {
  for (let i = 0; i < n; i++) d[i * n + i] = Infinity;

  let stride = n;
  let live = n;
  // leafOf[slot]: a leaf of the cluster in that slot (its original index: as in scipy, a merged
  // cluster lives on in the slot of its higher-numbered side).
  const leafOf = new Int32Array(n);
  const size = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    leafOf[i] = i;
    size[i] = 1;
  }
  const isLive = new Uint8Array(n).fill(1);

  const chain = new Int32Array(n);
  let chainLength = 0;
  const merges: LeafMerge[] = [];
  for (let step = 0; step < n - 1; step++) {
    if (live <= stride >> 1 && stride > MIN_COMPACT_SLOTS) {
      const newIndex = compact(d, stride, isLive, leafOf, size);
      for (let c = 0; c < chainLength; c++) chain[c] = newIndex[chain[c]!]!;
      stride = live;
    }
    if (chainLength === 0) {
      let first = 0;
      while (isLive[first] === 0) first++;
      chain[0] = first;
      chainLength = 1;
    }
    let x: number;
    let y: number;
    let nearest: number;
    for (;;) {
      x = chain[chainLength - 1]!;
      const rowX = x * stride;
      let best = Infinity;
      let bestIndex = -1;
      for (let i = 0; i < stride; i++) {
        const value = d[rowX + i]!;
        if (value < best && isLive[i] === 1) {
          best = value;
          bestIndex = i;
        }
      }
      if (chainLength > 1) {
        const previous = chain[chainLength - 2]!;
        const toPrevious = d[rowX + previous]!;
        // The previous chain element wins ties: that is what guarantees the chain ends.
        if (toPrevious <= best) {
          y = previous;
          nearest = toPrevious;
          break;
        }
      }
      if (bestIndex < 0) throw new RangeError('nearest-neighbour chain found no live neighbour');
      y = bestIndex;
      nearest = best;
      chain[chainLength++] = y;
    }
    chainLength -= 2;
    if (x > y) [x, y] = [y, x];
    merges.push({ leftLeaf: leafOf[x]!, rightLeaf: leafOf[y]!, height: nearest });

    // Lance–Williams for average linkage; the merged cluster lives on in slot y.
    const sizeX = size[x]!;
    const sizeY = size[y]!;
    const weightX = sizeX / (sizeX + sizeY);
    const weightY = sizeY / (sizeX + sizeY);
    const rowX = x * stride;
    const rowY = y * stride;
    for (let i = 0; i < stride; i++) {
      if (isLive[i] === 0 || i === x || i === y) continue;
      const merged = weightX * d[rowX + i]! + weightY * d[rowY + i]!;
      d[rowY + i] = merged;
      d[i * stride + y] = merged;
    }
    size[y] = sizeX + sizeY;
    isLive[x] = 0;
    live--;
  }
  return merges;
}

/**
 * Moves the live rows and columns of the `stride` x `stride` matrix to the front of `d` as a
 * live x live matrix, in slot order (so "lowest index" ties still mean lowest leaf), and compacts
 * the per-slot arrays to match. Returns the new index of each old slot (-1 for dead ones).
 * In place: every element moves to an offset no larger than the one it is read from.
 */
function compact(d: Float64Array, stride: number, isLive: Uint8Array, leafOf: Int32Array, size: Float64Array): Int32Array {
  const newIndex = new Int32Array(stride).fill(-1);
  const columns: number[] = [];
  for (let i = 0; i < stride; i++) {
    if (isLive[i] === 1) {
      newIndex[i] = columns.length;
      columns.push(i);
    }
  }
  const live = columns.length;
  const liveColumns = Int32Array.from(columns);
  for (let r = 0; r < live; r++) {
    const from = liveColumns[r]! * stride;
    const to = r * live;
    for (let c = 0; c < live; c++) d[to + c] = d[from + liveColumns[c]!]!;
  }
  for (let r = 0; r < live; r++) {
    const old = liveColumns[r]!;
    leafOf[r] = leafOf[old]!;
    size[r] = size[old]!;
  }
  isLive.fill(1, 0, live);
  isLive.fill(0, live);
  return newIndex;
}
