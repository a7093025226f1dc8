// How collection plans its runs: a position stride only where the statistics would outweigh the
// layer, and enough samples per run that a wide layer's m x m statistics are not fetched per handful.

import { describe, expect, it } from 'vitest';
import { findLayers } from '../../src/analysis/find-layers.js';
import { DataType } from '../../src/ir/data-type.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { collectLayerStatistics, DEFAULT_BATCH_SIZE, prepareStatisticsModel, samplesPerRun } from '../../src/pipeline/collect-layer-statistics.js';
import { randomProbes } from '../../src/runtime/probe-data.js';
import { GraphBuilder, int, ints } from '../helpers/graph-builder.js';

/** x[N, 3, 64, 64] -> Conv 3x3 (3 -> 32) -> Relu -> Conv 3x3 (32 -> 32) -> Relu. */
function stem(): Model {
  const random = new SeededRandom(3);
  const b = new GraphBuilder('stem');
  let x = b.input('x', DataType.FLOAT, ['N', 3, 64, 64]);
  for (const [name, cin] of [['conv1', 3], ['conv2', 32]] as const) {
    const w = b.initializer(`${name}_w`, Tensor.fromFloat32([32, cin, 3, 3], Float32Array.from({ length: 32 * cin * 9 }, () => random.gaussian() * 0.2)));
    const [z] = b.node('Conv', [x, w], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) }, { name });
    z!.type = { kind: 'tensor', elemType: DataType.FLOAT, shape: [{ param: 'N' }, { value: 32 }, { value: 64 }, { value: 64 }] };
    x = b.node('Relu', [z!], {}, { name: `${name}_relu` })[0]!;
    x!.type = z!.type;
  }
  b.output(x!, DataType.FLOAT);
  return b.build(13);
}

const watched = (width: number, positionStride = 1) => ({ key: 'layer', value: undefined as never, width, neuronAxisFromEnd: 1, positionStride });

describe('samplesPerRun', () => {
  it('runs as many samples as the widest dense layer has neurons, so its scatter is not fetched per handful', () => {
    expect(samplesPerRun([{ watched: watched(4096), positionsPerSample: 1 }], 8192)).toBe(4096);
    expect(samplesPerRun([{ watched: watched(4096), positionsPerSample: 1 }], 1000)).toBe(1000);
    expect(samplesPerRun([{ watched: watched(64), positionsPerSample: 1 }], 8192)).toBe(64);
    expect(samplesPerRun([{ watched: watched(16), positionsPerSample: 1 }], 8192)).toBe(DEFAULT_BATCH_SIZE);
  });

  it('keeps the default for feature maps, whose positions already give many rows, and caps memory by the model', () => {
    expect(samplesPerRun([{ watched: watched(256, 3), positionsPerSample: 56 * 56 }], 8192)).toBe(DEFAULT_BATCH_SIZE);
    // 65536 neurons x 12 bytes a sample: a run holds at most 256 MiB of them.
    expect(samplesPerRun([{ watched: watched(65536), positionsPerSample: 1 }], 1e6)).toBe(Math.floor((256 * 2 ** 20) / (12 * 65536)));
  });
});

describe('prepareStatisticsModel', () => {
  it('strides the positions of a layer with few input channels, not of one with many, unless told not to', () => {
    const model = stem();
    const layers = findLayers(model);
    const prepared = prepareStatisticsModel(model, layers, 64)!;
    const strides = Object.fromEntries(prepared.heads.map((h) => [h.key, h.positionStride]));
    expect(strides.conv1).toBeGreaterThan(1);
    expect(strides.conv2).toBe(1);
    const every = prepareStatisticsModel(model, layers, 64, { positionSampling: false })!;
    expect(every.heads.every((h) => h.positionStride === 1 && !h.unsampled)).toBe(true);
    expect(every.model.graph.inputs.map((v) => v.name)).toEqual(['x']);
  });

  it('reports the calibration of every strided layer with the statistics', async () => {
    const model = stem();
    const statistics = await collectLayerStatistics(model, 'stem', findLayers(model), randomProbes(model, 8, { seed: 1 }), { batchSize: 4 });
    expect(statistics.get('conv1')!.count).toBeGreaterThan(0);
    expect(statistics.positionSampling.map((s) => s.key)).toEqual(['conv1']);
    const [conv1] = statistics.positionSampling;
    expect(conv1!.calibrationRows.every).toBe(4 * 64 * 64);
    expect(conv1!.maxCosineError).toBeLessThan(0.2);
    expect(statistics.get('conv2')!.count).toBe(8 * 64 * 64);
  });
});
