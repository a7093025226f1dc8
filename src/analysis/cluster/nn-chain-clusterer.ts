// Average linkage by the nearest-neighbour chain algorithm: O(n^2) time on one n x n copy of the
// distances, for layers too wide for agnes. analysis/cluster/ imports nothing of ours except
// src/errors.ts.
import { dendrogramFromLeafMerges, type Clusterer, type Dendrogram } from './clusterer.js';
import { checkDistanceMatrix } from './check-distance-matrix.js';

/**
 * Average linkage (UPGMA) by the nearest-neighbour chain (Murtagh 1983; Müllner 2011, "Modern
 * hierarchical, agglomerative clustering algorithms"), exact for average linkage because the
 * Lance–Williams update d(k, i∪j) = (n_i d(k,i) + n_j d(k,j)) / (n_i + n_j) is reducible.
 * Ties go to the previous chain element, then to the lowest index, as in scipy's nn_chain.
 */
export const nnChainClusterer: Clusterer = {
  name: 'nn-chain',
  linkage(distance: Float64Array, n: number): Dendrogram {
    checkDistanceMatrix(distance, n);
    if (n <= 1) return [];
    const d = Float64Array.from(distance);
    // size 0 marks a cluster that has been merged away; a merged cluster lives on in the slot of
    // its higher-numbered side, as in scipy, so the slot index is always one of its leaves.
    const size = new Int32Array(n).fill(1);
    const chain = new Int32Array(n);
    let chainLength = 0;
    const leafMerges: { leftLeaf: number; rightLeaf: number; height: number }[] = [];

    for (let step = 0; step < n - 1; step++) {
      if (chainLength === 0) {
        let first = 0;
        while (size[first] === 0) first++;
        chain[0] = first;
        chainLength = 1;
      }
      let x: number;
      let y: number;
      let nearest: number;
      for (;;) {
        x = chain[chainLength - 1]!;
        const rowX = x * n;
        if (chainLength > 1) {
          y = chain[chainLength - 2]!;
          nearest = d[rowX + y]!;
        } else {
          y = -1;
          nearest = Infinity;
        }
        for (let i = 0; i < n; i++) {
          if (size[i] === 0 || i === x) continue;
          const di = d[rowX + i]!;
          if (di < nearest || y === -1) {
            nearest = di;
            y = i;
          }
        }
        if (chainLength > 1 && y === chain[chainLength - 2]) break;
        chain[chainLength++] = y;
      }
      chainLength -= 2;
      if (x > y) [x, y] = [y, x];
      const sizeX = size[x]!;
      const sizeY = size[y]!;
      leafMerges.push({ leftLeaf: x, rightLeaf: y, height: nearest });
      size[x] = 0;
      size[y] = sizeX + sizeY;
      const weightX = sizeX / (sizeX + sizeY);
      const weightY = sizeY / (sizeX + sizeY);
      const rowX = x * n;
      const rowY = y * n;
      for (let i = 0; i < n; i++) {
        if (size[i] === 0 || i === y) continue;
        const merged = weightX * d[rowX + i]! + weightY * d[rowY + i]!;
        d[rowY + i] = merged;
        d[i * n + y] = merged;
      }
    }
    return dendrogramFromLeafMerges(leafMerges, n);
  },
};
