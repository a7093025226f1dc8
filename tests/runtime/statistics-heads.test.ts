// Statistics heads against a plain computation: run the model with the watched value as an extra
// output, take its moments in JavaScript (StreamingMoments.addRows), and compare with what the
// appended nodes hand back, for neuron-last rows, channels-first feature maps, position strides
// and scatters split into blocks.

import { describe, expect, it } from 'vitest';
import { DataType } from '../../src/ir/data-type.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { Value } from '../../src/ir/value.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { StreamingMoments } from '../../src/numeric/streaming-moments.js';
import { encodeModel } from '../../src/onnx/encode-model.js';
import { cloneModel } from '../../src/ir/clone-model.js';
import { collectStatistics } from '../../src/runtime/collect-statistics.js';
import type { HostTensor } from '../../src/runtime/host-tensor.js';
import { ModelSession } from '../../src/runtime/model-session.js';
import { addStatisticsHeads, MIN_POSITIONS_KEPT, positionStrideFor } from '../../src/runtime/statistics-heads.js';
import { GraphBuilder, int, ints } from '../helpers/graph-builder.js';

function gaussian(random: SeededRandom, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => random.gaussian() * scale);
}

/** x[N, C, H, W] -> Conv 3x3 (C -> m) -> Relu, the Relu output watched. */
function convModel(m: number, c: number, side: number): { model: Model; watched: string } {
  const random = new SeededRandom(7);
  const b = new GraphBuilder('conv');
  const x = b.input('x', DataType.FLOAT, ['N', c, side, side]);
  const w = b.initializer('w', Tensor.fromFloat32([m, c, 3, 3], gaussian(random, m * c * 9, 0.3)));
  const bias = b.initializer('b', Tensor.fromFloat32([m], gaussian(random, m, 0.1)));
  const [z] = b.node('Conv', [x, w, bias], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) });
  const [h] = b.node('Relu', [z!], {}, { outputs: ['h'] });
  b.output(h!, DataType.FLOAT);
  return { model: b.build(13), watched: 'h' };
}

/** x[N, T, d] -> MatMul (d -> m) -> Relu: neurons on the last axis, T positions per sample. */
function sequenceModel(m: number, d: number, positions: number | undefined): { model: Model; watched: string } {
  const random = new SeededRandom(8);
  const b = new GraphBuilder('sequence');
  const x = b.input('x', DataType.FLOAT, positions === undefined ? ['N', d] : ['N', positions, d]);
  const w = b.initializer('w', Tensor.fromFloat32([d, m], gaussian(random, d * m, 0.5)));
  const [z] = b.node('MatMul', [x, w]);
  const [h] = b.node('Relu', [z!], {}, { outputs: ['h'] });
  b.output(h!, DataType.FLOAT);
  return { model: b.build(13), watched: 'h' };
}

function valueNamed(model: Model, name: string): Value {
  return model.graph.nodes.flatMap((n) => n.outputs).find((v) => v.name === name)!;
}

/** Reference moments: the value's rows (neurons last), keeping every stride-th position from stride / 2. */
function referenceMoments(h: HostTensor, m: number, channelsFirst: boolean, stride: number): StreamingMoments {
  const data = h.data as Float32Array;
  const samples = h.dims[0]!;
  const positions = data.length / samples / m;
  const kept: number[] = [];
  for (let p = stride >> 1; p < positions; p += stride) kept.push(p);
  const rows = new Float64Array(samples * kept.length * m);
  let r = 0;
  for (let n = 0; n < samples; n++) {
    for (const p of kept) {
      for (let k = 0; k < m; k++) rows[r * m + k] = channelsFirst ? data[(n * m + k) * positions + p]! : data[(n * positions + p) * m + k]!;
      r++;
    }
  }
  const moments = new StreamingMoments(m);
  moments.addRows(rows, r);
  return moments;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  for (let k = 0; k < expected.length; k++) scale = Math.max(scale, Math.abs(expected[k]!));
  let worst = 0;
  for (let k = 0; k < expected.length; k++) worst = Math.max(worst, Math.abs(actual[k]! - expected[k]!));
  expect(worst).toBeLessThanOrEqual(tolerance * Math.max(scale, 1e-12));
}

async function collectBoth(
  model: Model,
  watchedName: string,
  watch: { width: number; neuronAxisFromEnd: number; rank: number; positionStride?: number; scatterBlockNeurons?: number },
  batches: Record<string, HostTensor>[],
): Promise<{ collected: Awaited<ReturnType<typeof collectStatistics>>; activations: HostTensor[] }> {
  const copy = cloneModel(model);
  const heads = addStatisticsHeads(copy, [{ key: 'layer', value: valueNamed(copy, watchedName), ...watch }]);
  const session = await ModelSession.create(encodeModel(copy).modelBytes, 'heads');
  const plain = await ModelSession.create(encodeModel(model).modelBytes, 'plain');
  try {
    const collected = await collectStatistics(session, heads, batches);
    const activations: HostTensor[] = [];
    for (const feeds of batches) activations.push((await plain.run(feeds, [watchedName]))[watchedName]!);
    return { collected, activations };
  } finally {
    await session.release();
    await plain.release();
  }
}

function concatenate(tensors: HostTensor[]): HostTensor {
  const total = tensors.reduce((n, t) => n + t.data.length, 0);
  const data = new Float32Array(total);
  let at = 0;
  for (const t of tensors) {
    data.set(t.data as Float32Array, at);
    at += t.data.length;
  }
  return { dataType: DataType.FLOAT, dims: [tensors.reduce((n, t) => n + t.dims[0]!, 0), ...tensors[0]!.dims.slice(1)], data };
}

describe('statistics heads', () => {
  it('give the mean and scatter of neuron-last rows, merged over batches, with the scatter in blocks', async () => {
    const m = 40;
    const { model, watched } = sequenceModel(m, 6, undefined);
    const random = new SeededRandom(1);
    const batches = [5, 11, 3].map((n) => ({ x: { dataType: DataType.FLOAT, dims: [n, 6], data: gaussian(random, n * 6) } }));
    for (const scatterBlockNeurons of [undefined, 16, 7]) {
      const { collected, activations } = await collectBoth(model, watched, { width: m, neuronAxisFromEnd: 1, rank: 2, ...(scatterBlockNeurons ? { scatterBlockNeurons } : {}) }, batches);
      const expected = referenceMoments(concatenate(activations), m, false, 1);
      const got = collected.get('layer')!;
      expect(got.count).toBe(19);
      expectClose(got.mean, expected.mean, 1e-5);
      expectClose(got.scatter, expected.scatter, 1e-4);
      expect(collected.positionSampling).toEqual([]);
    }
  });

  it('take channels-first feature maps position by position, or every stride-th position, and calibrate the stride', async () => {
    const m = 6;
    const { model, watched } = convModel(m, 2, 9);
    const random = new SeededRandom(2);
    const batches = [3, 2].map((n) => ({ x: { dataType: DataType.FLOAT, dims: [n, 2, 9, 9], data: gaussian(random, n * 2 * 81) } }));
    for (const positionStride of [1, 4]) {
      const { collected, activations } = await collectBoth(model, watched, { width: m, neuronAxisFromEnd: 3, rank: 4, positionStride, scatterBlockNeurons: 4 }, batches);
      const all = concatenate(activations);
      const expected = referenceMoments(all, m, true, positionStride);
      const got = collected.get('layer')!;
      expect(got.count).toBe(expected.count);
      expectClose(got.mean, expected.mean, 1e-5);
      expectClose(got.scatter, expected.scatter, 1e-4);
      if (positionStride === 1) {
        expect(collected.positionSampling).toEqual([]);
      } else {
        // Calibration compares the first batch's kept positions with all of them.
        const [sampling] = collected.positionSampling;
        expect(sampling).toMatchObject({ key: 'layer', positionStride: 4, calibrationRows: { every: 3 * 81, kept: 3 * 20 } });
        expect(sampling!.maxCosineError).toBeGreaterThan(0);
        expect(sampling!.maxCosineError).toBeLessThan(0.5);
      }
    }
  });

  it('subsample positions of a neuron-last sequence per sample', async () => {
    const m = 5;
    const { model, watched } = sequenceModel(m, 3, 10);
    const random = new SeededRandom(3);
    const batches = [{ x: { dataType: DataType.FLOAT, dims: [4, 10, 3], data: gaussian(random, 4 * 10 * 3) } }];
    const { collected, activations } = await collectBoth(model, watched, { width: m, neuronAxisFromEnd: 1, rank: 3, positionStride: 3 }, batches);
    const expected = referenceMoments(activations[0]!, m, false, 3);
    const got = collected.get('layer')!;
    expect(got.count).toBe(4 * 3);
    expectClose(got.mean, expected.mean, 1e-5);
    expectClose(got.scatter, expected.scatter, 1e-4);
  });

  it('keep every position of a [samples, m] value, whatever stride is asked for', () => {
    const { model, watched } = sequenceModel(4, 3, undefined);
    const [head] = addStatisticsHeads(model, [{ key: 'dense', value: valueNamed(model, watched), width: 4, neuronAxisFromEnd: 1, rank: 2, positionStride: 5 }]);
    expect(head!.positionStride).toBe(1);
    expect(head!.unsampled).toBeUndefined();
    expect(model.graph.nodes.some((n) => n.opType === 'Slice')).toBe(false);
  });
});

describe('positionStrideFor', () => {
  it('keeps every position where the scatter is cheap next to the layer, and of dense layers', () => {
    expect(positionStrideFor({ width: 64, fanIn: 576, positionsPerSample: 1024, rowLength: 32 })).toBe(1);
    expect(positionStrideFor({ width: 4096, fanIn: 1024, positionsPerSample: 1 })).toBe(1);
    expect(positionStrideFor({ width: 64, fanIn: 27, positionsPerSample: undefined })).toBe(1);
  });

  it('strides where the scatter would cost more than the layer, coprime with the row length', () => {
    const stride = positionStrideFor({ width: 64, fanIn: 27, positionsPerSample: 112 * 112, rowLength: 112 });
    // (64 + 64) / (27 / 4) = 18.96: at least 19, and coprime with 112 = 2^4 x 7.
    expect(stride).toBeGreaterThanOrEqual(19);
    expect(stride % 2).not.toBe(0);
    expect(stride % 7).not.toBe(0);
  });

  it('never keeps fewer than MIN_POSITIONS_KEPT positions per sample', () => {
    const positions = 8 * 8;
    const stride = positionStrideFor({ width: 2048, fanIn: 9, positionsPerSample: positions, rowLength: 8 });
    expect(Math.floor(positions / stride)).toBeGreaterThanOrEqual(MIN_POSITIONS_KEPT);
    expect(stride).toBe(3);
  });
});
