// The allocation-free paths of a wide layer's audit give exactly what the plain ones give: output
// cosines straight from the moments, distances written into the clusterer's own working matrix,
// and block mirroring tile by tile.

import { describe, expect, it } from 'vitest';
import { clusterNeurons, clusterNeuronsInPlace } from '../../src/analysis/cluster/cluster-neurons.js';
import { findLayers } from '../../src/analysis/find-layers.js';
import { inputWeightVectors, unitInputWeights } from '../../src/analysis/input-weights.js';
import { cosineFromGram, cosineFromMoments, cosineMatrix, norms } from '../../src/numeric/cosine.js';
import { loadModel } from '../../src/onnx/model-file.js';
import { fixturePath } from '../helpers/cli-runner.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { mirrorBlock, StreamingMoments } from '../../src/numeric/streaming-moments.js';

function randomRows(count: number, dim: number, seed: number): Float64Array {
  const random = new SeededRandom(seed);
  return Float64Array.from({ length: count * dim }, () => random.gaussian() + 0.5);
}

describe('cosineFromMoments', () => {
  it('equals cosineFromGram of the second moment bit for bit, dead neurons included', () => {
    const m = 37;
    const rows = randomRows(200, m, 1);
    for (let r = 0; r < 200; r++) rows[r * m + 5] = 0; // a neuron that never fires
    const moments = new StreamingMoments(m);
    moments.addRows(rows, 200);
    const expected = cosineFromGram(moments.secondMoment(), m);
    expect(Array.from(cosineFromMoments(moments.scatter, moments.mean, moments.count, m))).toEqual(Array.from(expected));
    expect(expected[5 * m + 5]).toBe(1);
    expect(expected[5 * m + 6]).toBe(0);
  });
});

describe('mirrorBlock', () => {
  it('copies a block above the diagonal to its transpose, and touches nothing else', () => {
    const m = 70;
    const matrix = Float64Array.from({ length: m * m }, (_, k) => k);
    const before = Float64Array.from(matrix);
    mirrorBlock(matrix, m, 3, 40, 41, 70);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) {
        const inMirror = j >= 3 && j < 40 && i >= 41 && i < 70;
        expect(matrix[i * m + j]).toBe(inMirror ? before[j * m + i] : before[i * m + j]);
      }
    }
  });
});

describe('clusterNeuronsInPlace', () => {
  it.each([40, 600])('gives the clusters clusterNeurons gives on the same distances (n = %i)', (n) => {
    const cosine = cosineMatrix(randomRows(n, 6, n), n, 6);
    const distance = cosine.map((c) => Math.max(0, 1 - c));
    for (let i = 0; i < n; i++) distance[i * n + i] = 0;
    const plain = clusterNeurons(Float64Array.from(distance), n, { maxDistance: 0.05 });
    const inPlace = clusterNeuronsInPlace((d) => d.set(distance), n, { maxDistance: 0.05 });
    expect(inPlace.method).toBe(n > 256 ? 'nn-chain' : 'agnes');
    expect(inPlace.count).toBe(plain.count);
    expect(inPlace.count).toBeGreaterThan(1);
    expect(inPlace.count).toBeLessThan(n);
    expect(Array.from(inPlace.labels)).toEqual(Array.from(plain.labels));
  });

  it('still refuses a NaN distance rather than merging it silently', () => {
    expect(() => clusterNeuronsInPlace((d) => d.fill(0.5).fill(NaN, 3, 4), 300, { maxDistance: 0.1 })).toThrow(RangeError);
  });
});

describe('unitInputWeights', () => {
  it.each(['resnet-planted.onnx', 'depthwise-separable.onnx', 'mlp-relu-planted.onnx'])('gives the normalised u_k of inputWeightVectors in float32, and their norms (%s)', (file) => {
    const layers = findLayers(loadModel(fixturePath(file)));
    expect(layers.length).toBeGreaterThan(0);
    for (const layer of layers) {
      const { rows, dim } = inputWeightVectors(layer);
      const lean = unitInputWeights(layer);
      expect(lean.dim).toBe(dim);
      const expectedNorms = norms(rows, layer.width, dim);
      lean.norms.forEach((n, k) => expect(n).toBeCloseTo(expectedNorms[k]!, 12));
      const expectedUnit = Float32Array.from(rows.map((x, i) => (expectedNorms[Math.floor(i / dim)]! === 0 ? 0 : x / expectedNorms[Math.floor(i / dim)]!)));
      let worst = 0;
      expectedUnit.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - lean.unit[i]!))));
      expect(worst).toBeLessThan(1e-7);
    }
  });
});
