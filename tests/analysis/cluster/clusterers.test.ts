import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../../src/numeric/seeded-random.js';
import { agnesClusterer } from '../../../src/analysis/cluster/agnes-clusterer.js';
import { cutDendrogram, type Dendrogram } from '../../../src/analysis/cluster/clusterer.js';
import { nnChainClusterer } from '../../../src/analysis/cluster/nn-chain-clusterer.js';

// Deterministic numbers (the library's seeded generator) so failures reproduce.
function random(seed: number): () => number {
  const rng = new SeededRandom(seed);
  return () => rng.next();
}

function randomDistances(n: number, seed: number): Float64Array {
  const next = random(seed);
  const d = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const value = next();
      d[i * n + j] = value;
      d[j * n + i] = value;
    }
  }
  return d;
}

function checkScipyConvention(dendrogram: Dendrogram, n: number): void {
  expect(dendrogram).toHaveLength(Math.max(0, n - 1));
  const used = new Set<number>();
  dendrogram.forEach((merge, k) => {
    expect(merge.left).toBeLessThan(merge.right);
    expect(merge.right).toBeLessThan(n + k);
    expect(used.has(merge.left) || used.has(merge.right)).toBe(false);
    used.add(merge.left);
    used.add(merge.right);
    if (k > 0) expect(merge.height).toBeGreaterThanOrEqual(dendrogram[k - 1]!.height);
  });
  if (n > 1) expect(dendrogram.at(-1)!.size).toBe(n);
}

function scipyAvailable(): boolean {
  try {
    execFileSync('python3', ['-c', 'import numpy, scipy.cluster.hierarchy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('agnes and nn-chain clusterers', () => {
  it('give identical partitions on random distance matrices at every cut height', () => {
    for (let n = 5; n <= 200; n += n < 30 ? 1 : 17) {
      const distance = randomDistances(n, n * 31 + 7);
      const fromAgnes = agnesClusterer.linkage(distance, n);
      const fromChain = nnChainClusterer.linkage(distance, n);
      checkScipyConvention(fromAgnes, n);
      checkScipyConvention(fromChain, n);
      for (const cut of [0.05, 0.2, 0.35, 0.5, 0.65, 0.9]) {
        const a = cutDendrogram(fromAgnes, n, cut);
        const b = cutDendrogram(fromChain, n, cut);
        expect(b.count).toBe(a.count);
        expect(Array.from(b.labels)).toEqual(Array.from(a.labels));
      }
      for (let k = 0; k < n - 1; k++) expect(fromChain[k]!.height).toBeCloseTo(fromAgnes[k]!.height, 12);
    }
  });

  it('handle one and two points', () => {
    for (const clusterer of [agnesClusterer, nnChainClusterer]) {
      expect(clusterer.linkage(new Float64Array([0]), 1)).toEqual([]);
      expect(clusterer.linkage(new Float64Array(0), 0)).toEqual([]);
      expect(clusterer.linkage(Float64Array.from([0, 0.3, 0.3, 0]), 2)).toEqual([
        { left: 0, right: 1, height: 0.3, size: 2 },
      ]);
    }
  });

  it('merge exact duplicates at height 0 deterministically', () => {
    // Points 0, 2, 4 coincide and points 1, 3 coincide; ties everywhere.
    const n = 5;
    const distance = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) distance[i * n + j] = i % 2 === j % 2 ? 0 : 1;
    const first = nnChainClusterer.linkage(distance, n);
    expect(nnChainClusterer.linkage(distance, n)).toEqual(first);
    checkScipyConvention(first, n);
    for (const clusterer of [agnesClusterer, nnChainClusterer]) {
      const { labels, count } = cutDendrogram(clusterer.linkage(distance, n), n, 0);
      expect(count).toBe(2);
      expect(Array.from(labels)).toEqual([0, 1, 0, 1, 0]);
    }
  });

  it('refuse a distance matrix of the wrong size or with NaN', () => {
    expect(() => nnChainClusterer.linkage(new Float64Array(3), 2)).toThrow(RangeError);
    expect(() => agnesClusterer.linkage(Float64Array.from([0, NaN, NaN, 0]), 2)).toThrow(RangeError);
  });

  it('build the same dendrogram as scipy average linkage', (context) => {
    if (!scipyAvailable()) context.skip('python3 with numpy and scipy is not installed');
    const n = 40;
    const distance = randomDistances(n, 99);
    const script = [
      'import sys, json, numpy as np',
      'from scipy.cluster.hierarchy import linkage',
      'from scipy.spatial.distance import squareform',
      `d = np.array(json.load(sys.stdin)).reshape(${n}, ${n})`,
      "print(json.dumps(linkage(squareform(d, checks=False), method='average').tolist()))",
    ].join('\n');
    const output = execFileSync('python3', ['-c', script], { input: JSON.stringify(Array.from(distance)) });
    const scipy = JSON.parse(output.toString()) as number[][];
    for (const dendrogram of [nnChainClusterer.linkage(distance, n), agnesClusterer.linkage(distance, n)]) {
      dendrogram.forEach((merge, k) => {
        const [left, right, height, size] = scipy[k]!;
        expect([merge.left, merge.right, merge.size]).toEqual([left, right, size]);
        expect(merge.height).toBeCloseTo(height!, 12);
      });
    }
  });

  it('compact the chain\'s working matrix as clusters merge away and still match scipy merge for merge', (context) => {
    if (!scipyAvailable()) context.skip('python3 with numpy and scipy is not installed');
    // 700 points: the working matrix is compacted at 350, 175, 87 live clusters.
    const n = 700;
    const distance = randomDistances(n, 1234);
    const script = [
      'import sys, numpy as np',
      'from scipy.cluster.hierarchy import linkage',
      'from scipy.spatial.distance import squareform',
      `d = np.frombuffer(sys.stdin.buffer.read(), dtype='<f8').reshape(${n}, ${n})`,
      "np.savetxt(sys.stdout, linkage(squareform(d, checks=False), method='average'), fmt='%.17g')",
    ].join('\n');
    const output = execFileSync('python3', ['-c', script], { input: Buffer.from(distance.buffer), maxBuffer: 1 << 26 });
    const scipy = output.toString().trim().split('\n').map((line) => line.split(' ').map(Number));
    const dendrogram = nnChainClusterer.linkage(distance, n);
    dendrogram.forEach((merge, k) => {
      const [left, right, height, size] = scipy[k]!;
      expect([merge.left, merge.right, merge.size]).toEqual([left, right, size]);
      expect(merge.height).toBeCloseTo(height!, 12);
    });
  });

  it('leave the distance matrix untouched and give the same dendrogram however often and in whatever order they run', () => {
    const wide = randomDistances(300, 77);
    const copy = Float64Array.from(wide);
    const first = nnChainClusterer.linkage(wide, 300);
    expect(Array.from(wide)).toEqual(Array.from(copy));
    // A smaller matrix in between reuses the working memory; nothing of it may leak into the next run.
    nnChainClusterer.linkage(randomDistances(50, 78), 50);
    expect(nnChainClusterer.linkage(wide, 300)).toEqual(first);
    // In place: the same merges, on the caller's own matrix.
    expect(nnChainClusterer.linkageInPlace(Float64Array.from(wide), 300)).toEqual(first);
    expect(() => nnChainClusterer.linkageInPlace(Float64Array.from([0, NaN, NaN, 0]), 2)).toThrow(RangeError);
  });

  it('end on a matrix whose two triangles differ by an ulp (float32 GEMM cosines), reading the upper one', () => {
    // Row by row, a's nearest is b, b's is c, c's is a, and a's is b again: read as it stands the
    // chain never closes (fr_landmark from an npm package crashed with exit 70 this way).
    const e = 2 ** -52;
    const skewed = Float64Array.from([0, 1, 1 + e, 1, 0, 1 - e, 1 - 2 * e, 1, 0]);
    const upper = Float64Array.from([0, 1, 1 + e, 1, 0, 1 - e, 1 + e, 1 - e, 0]);
    const dendrogram = nnChainClusterer.linkage(skewed, 3);
    expect(dendrogram).toHaveLength(2);
    expect(dendrogram).toEqual(nnChainClusterer.linkage(upper, 3));
    expect(dendrogram[0]!.height).toBe(1 - e);
  });

  it('cluster 2048 points with nn-chain into a complete dendrogram', () => {
    const n = 2048;
    const dendrogram = nnChainClusterer.linkage(randomDistances(n, 5), n);
    expect(dendrogram).toHaveLength(n - 1);
    expect(dendrogram.at(-1)!.size).toBe(n);
  });
});

describe('cutDendrogram', () => {
  it('labels clusters by the first leaf that appears', () => {
    // Leaves 3 and 1 merge first, then 0 and 2, then everything.
    const dendrogram: Dendrogram = [
      { left: 1, right: 3, height: 0.1, size: 2 },
      { left: 0, right: 2, height: 0.2, size: 2 },
      { left: 4, right: 5, height: 0.9, size: 4 },
    ];
    expect(Array.from(cutDendrogram(dendrogram, 4, 0.15).labels)).toEqual([0, 1, 2, 1]);
    expect(cutDendrogram(dendrogram, 4, 0.2)).toEqual({ labels: Int32Array.from([0, 1, 0, 1]), count: 2 });
    expect(cutDendrogram(dendrogram, 4, 1).count).toBe(1);
    expect(cutDendrogram(dendrogram, 4, 0).count).toBe(4);
  });
});
