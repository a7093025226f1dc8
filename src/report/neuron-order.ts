// The display order of a layer's neurons in the pictures: clusters from largest to smallest, so
// the cosine matrix shows its blocks along the diagonal, and static neurons last.

export interface NeuronGroup {
  /** Cluster rank (0: the largest cluster), or -1 for the static neurons. */
  rank: number;
  start: number;
  size: number;
}

export interface NeuronOrder {
  /** Neuron indices in display order. */
  order: number[];
  /** Consecutive runs of `order`, one per cluster, then one for the static neurons (if any). */
  groups: NeuronGroup[];
  /** Rank of each neuron's cluster, indexed by neuron; -1 for static neurons. */
  rankOf: Int32Array;
}

/**
 * Orders neurons by cluster: larger clusters first (ties: the cluster with the lowest neuron index),
 * within a cluster those pointing the same way as its largest-amplitude neuron first (under an odd
 * activation a cluster holds negated copies too), then by decreasing amplitude. Label -1 is static.
 */
export function orderNeuronsByCluster(labels: Int32Array, amplitude: Float64Array, cosine?: Float64Array): NeuronOrder {
  const width = labels.length;
  const members = new Map<number, number[]>();
  const statics: number[] = [];
  for (let k = 0; k < width; k++) {
    const l = labels[k]!;
    if (l < 0) statics.push(k);
    else {
      let list = members.get(l);
      if (!list) members.set(l, (list = []));
      list.push(k);
    }
  }
  const byAmplitude = (a: number, b: number): number => amplitude[b]! - amplitude[a]! || a - b;
  const clusters = [...members.values()].sort((a, b) => b.length - a.length || a[0]! - b[0]!);
  const order: number[] = [];
  const groups: NeuronGroup[] = [];
  const rankOf = new Int32Array(width).fill(-1);
  clusters.forEach((list, rank) => {
    const lead = [...list].sort(byAmplitude)[0]!;
    const side = (k: number): number => (cosine && cosine[lead * width + k]! < 0 ? 1 : 0);
    list.sort((a, b) => side(a) - side(b) || byAmplitude(a, b));
    groups.push({ rank, start: order.length, size: list.length });
    for (const k of list) {
      rankOf[k] = rank;
      order.push(k);
    }
  });
  if (statics.length) {
    groups.push({ rank: -1, start: order.length, size: statics.length });
    order.push(...statics.sort(byAmplitude));
  }
  return { order, groups, rankOf };
}

/** The n x n matrix with rows and columns permuted to `order`. */
export function permuteMatrix(values: Float64Array, order: number[]): Float64Array {
  const n = order.length;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const row = order[i]! * n;
    for (let j = 0; j < n; j++) out[i * n + j] = values[row + order[j]!]!;
  }
  return out;
}
