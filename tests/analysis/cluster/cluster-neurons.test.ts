import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../../src/numeric/seeded-random.js';
import { clusterNeurons, clusterSizes } from '../../../src/analysis/cluster/cluster-neurons.js';
import { OptionError } from '../../../src/errors.js';

// Deterministic numbers (the library's seeded generator) so failures reproduce.
function random(seed: number): () => number {
  const rng = new SeededRandom(seed);
  return () => rng.next();
}

// Neurons in planted groups: distance within a group below 0.05, between groups above 0.6.
function plantedDistances(groupOf: number[], seed: number): Float64Array {
  const next = random(seed);
  const n = groupOf.length;
  const d = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const value = groupOf[i] === groupOf[j] ? 0.05 * next() : 0.6 + 0.4 * next();
      d[i * n + j] = value;
      d[j * n + i] = value;
    }
  }
  return d;
}

function firstAppearanceLabels(groupOf: number[]): number[] {
  const seen = new Map<number, number>();
  return groupOf.map((g) => {
    if (!seen.has(g)) seen.set(g, seen.size);
    return seen.get(g)!;
  });
}

describe('clusterNeurons', () => {
  it('recovers planted clusters with either algorithm when cut between the two scales', () => {
    const next = random(11);
    const groupOf = Array.from({ length: 300 }, () => Math.floor(next() * 9));
    const distance = plantedDistances(groupOf, 12);
    const expected = firstAppearanceLabels(groupOf);
    for (const method of ['agnes', 'nn-chain'] as const) {
      const result = clusterNeurons(distance, groupOf.length, { maxDistance: 0.3, method });
      expect(result.method).toBe(method);
      expect(result.count).toBe(new Set(groupOf).size);
      expect(Array.from(result.labels)).toEqual(expected);
    }
  });

  it('picks agnes for small layers and nn-chain for wide ones on auto', () => {
    const small = clusterNeurons(plantedDistances([0, 0, 1], 1), 3, { maxDistance: 0.3 });
    expect(small.method).toBe('agnes');
    const wideGroups = Array.from({ length: 257 }, (_, i) => i % 4);
    const wide = clusterNeurons(plantedDistances(wideGroups, 2), 257, { maxDistance: 0.3, method: 'auto' });
    expect(wide.method).toBe('nn-chain');
    expect(wide.count).toBe(4);
  });

  it('rejects a negative or non-finite maxDistance and an unknown method as option errors', () => {
    const distance = plantedDistances([0, 1], 3);
    expect(() => clusterNeurons(distance, 2, { maxDistance: -0.1 })).toThrow(OptionError);
    expect(() => clusterNeurons(distance, 2, { maxDistance: NaN })).toThrow(/maxDistance: expected/);
    const method = 'ward' as unknown as 'auto';
    expect(() => clusterNeurons(distance, 2, { maxDistance: 0.1, method })).toThrow(/method: expected one of/);
  });
});

describe('clusterSizes', () => {
  it('counts the neurons under each label', () => {
    expect(Array.from(clusterSizes(Int32Array.from([0, 1, 0, 2, 0]), 3))).toEqual([3, 1, 1]);
  });
});
