// Hierarchical clustering of neurons: the shared interface of the clustering algorithms, the
// dendrogram they produce, and cutting it into clusters. analysis/cluster/ imports nothing of ours
// except src/errors.ts; the distance matrix comes in as plain numbers.

/** One merge: clusters `left` < `right` join at `height` into a cluster of `size` leaves. */
export interface Merge {
  left: number;
  right: number;
  height: number;
  size: number;
}

/**
 * The n - 1 merges in SciPy's linkage convention: leaves are 0..n-1, the cluster made by merge i
 * is n + i, merges come in order of height (ties in the order they were made).
 */
export type Dendrogram = Merge[];

/** An algorithm that builds an average-linkage dendrogram from a full distance matrix. */
export interface Clusterer {
  readonly name: string;
  /** Builds the dendrogram of n points from their row-major n x n symmetric distance matrix. */
  linkage(distance: Float64Array, n: number): Dendrogram;
}

/** The flat clusters of a cut: `labels[leaf]` in 0..count-1, numbered by first leaf to appear. */
export interface Partition {
  labels: Int32Array;
  count: number;
}

/** Cuts a dendrogram of n leaves into the connected components of its merges with height <= maxDistance. */
export function cutDendrogram(dendrogram: Dendrogram, n: number, maxDistance: number): Partition {
  if (dendrogram.length !== Math.max(0, n - 1)) {
    throw new RangeError(`dendrogram has ${dendrogram.length} merges, expected ${Math.max(0, n - 1)}`);
  }
  const parent = new Int32Array(n);
  for (let i = 0; i < n; i++) parent[i] = i;
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  // Any leaf of a merged cluster stands for it; merges may come in any order that respects ids.
  const representative = new Int32Array(Math.max(0, 2 * n - 1));
  for (let i = 0; i < n; i++) representative[i] = i;
  for (let k = 0; k < dendrogram.length; k++) {
    const merge = dendrogram[k]!;
    const leftLeaf = representative[merge.left]!;
    representative[n + k] = leftLeaf;
    if (merge.height <= maxDistance) {
      const a = find(leftLeaf);
      const b = find(representative[merge.right]!);
      if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
    }
  }
  const labels = new Int32Array(n);
  const labelOfRoot = new Int32Array(n).fill(-1);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const root = find(i);
    if (labelOfRoot[root] === -1) labelOfRoot[root] = count++;
    labels[i] = labelOfRoot[root]!;
  }
  return { labels, count };
}

/**
 * Turns merges recorded by any leaf of each side, in the order they were made, into a SciPy
 * dendrogram: stable-sorted by height and renumbered by union-find (as scipy's `label` does).
 */
export function dendrogramFromLeafMerges(
  leafMerges: ReadonlyArray<{ leftLeaf: number; rightLeaf: number; height: number }>,
  n: number,
): Dendrogram {
  const order = leafMerges.map((_, k) => k);
  order.sort((a, b) => leafMerges[a]!.height - leafMerges[b]!.height || a - b);
  const parent = new Int32Array(Math.max(0, 2 * n - 1));
  const size = new Int32Array(Math.max(0, 2 * n - 1));
  for (let i = 0; i < parent.length; i++) {
    parent[i] = i;
    size[i] = 1;
  }
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  const dendrogram: Dendrogram = [];
  for (const k of order) {
    const merge = leafMerges[k]!;
    const a = find(merge.leftLeaf);
    const b = find(merge.rightLeaf);
    if (a === b) throw new RangeError(`merge ${k} joins a cluster with itself`);
    const id = n + dendrogram.length;
    parent[a] = id;
    parent[b] = id;
    size[id] = size[a]! + size[b]!;
    dendrogram.push({ left: Math.min(a, b), right: Math.max(a, b), height: merge.height, size: size[id]! });
  }
  return dendrogram;
}
