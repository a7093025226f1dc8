// Average linkage by ml-hclust's agnes: the reference implementation, cubic in n, for small layers.
// The only importer of ml-hclust; analysis/cluster/ imports nothing of ours except src/errors.ts.
import { agnes, type Cluster } from 'ml-hclust';
import { dendrogramFromLeafMerges, type Clusterer, type Dendrogram } from './clusterer.js';
import { checkDistanceMatrix } from './check-distance-matrix.js';

/** Average linkage (UPGMA) computed by ml-hclust's agnes and converted to a SciPy dendrogram. */
export const agnesClusterer: Clusterer = {
  name: 'agnes',
  linkage(distance: Float64Array, n: number): Dendrogram {
    checkDistanceMatrix(distance, n);
    if (n <= 1) return [];
    const rows: number[][] = [];
    for (let i = 0; i < n; i++) rows.push(Array.from(distance.subarray(i * n, (i + 1) * n)));
    const root = agnes(rows, { method: 'average', isDistanceMatrix: true });

    // Post-order walk records each merge by its smallest leaf per side, children before parents,
    // which is the order the merges were made in for a monotone linkage.
    const leafMerges: { leftLeaf: number; rightLeaf: number; height: number }[] = [];
    const smallestLeaf = (cluster: Cluster): number => {
      if (cluster.isLeaf) return cluster.index;
      const [left, right] = cluster.children;
      if (!left || !right || cluster.children.length !== 2) {
        throw new RangeError(`agnes returned a node with ${cluster.children.length} children, expected 2`);
      }
      const leftLeaf = smallestLeaf(left);
      const rightLeaf = smallestLeaf(right);
      leafMerges.push({ leftLeaf, rightLeaf, height: cluster.height });
      return Math.min(leftLeaf, rightLeaf);
    };
    smallestLeaf(root);
    return dendrogramFromLeafMerges(leafMerges, n);
  },
};
