// Flattens whose shape is computed, as exporters write a batch-dynamic view: torch's
// x.view(x.size(0), -1) (Shape -> Gather -> Unsqueeze -> Concat with -1) and Paddle2ONNX's
// (Shape -> Cast -> Slice -> Cast -> Concat with the feature count as a constant). The Shape reads
// only the batch size, so it is no consumer of the channels; the Reshape is a flattening view, and
// a merge rewrites the feature count (as [0, kept*H*W], copying the batch).

import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CnnGraphBuilder } from '../../fixtures/cnn-graph-builder.js';
import { SeededRandom } from '../../fixtures/seeded-random.js';
import { findLayers } from '../../src/analysis/find-layers.js';
import { DataType } from '../../src/ir/data-type.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { Value } from '../../src/ir/value.js';
import { loadModel, saveModel } from '../../src/onnx/model-file.js';
import { prune } from '../../src/pipeline/prune.js';
import { randomProbes } from '../../src/runtime/probe-data.js';
import { compareModels } from '../../src/runtime/verify-rewrite.js';
import { scratchFolder } from '../helpers/scratch-folder.js';

const scratch = scratchFolder('computed-flatten');
const CHANNELS = 6;

/** Conv(3 -> 6, channel 4 a copy of channel 1) -> Relu -> GlobalAveragePool -> computed flatten -> Gemm(6 -> 3). */
function flattenModel(style: 'torch' | 'paddle'): string {
  const random = new SeededRandom(7);
  const b = new CnnGraphBuilder(`flatten-${style}`);
  const x = b.imageInput('x', 3, 8, 8);
  const weights = Float64Array.from({ length: CHANNELS * 3 * 9 }, () => random.gaussian() * 0.3);
  weights.copyWithin(4 * 27, 1 * 27, 2 * 27);
  const bias = Float64Array.from({ length: CHANNELS }, () => random.gaussian() * 0.1);
  bias[4] = bias[1]!;
  const h = b.relu('relu', b.conv('conv', x, { outChannels: CHANNELS, inChannels: 3, group: 1, kernelSide: 3, pad: 1, weights, bias }, 'initializer'), 'h');
  const pooled = b.globalAveragePool('gap', h, 'pooled');
  const ints = (name: string, values: number[], dims = [values.length]): Value => b.graph.addInitializer(name, Tensor.fromInt64(dims, values));
  const shape = b.op('Shape', 'shape', [pooled], 'shape_out');
  let target: Value;
  if (style === 'torch') {
    const batch = b.op('Gather', 'gather', [shape, ints('zero', [0], [])], 'batch', [{ name: 'axis', type: 'int', value: 0n }]);
    const batch1 = b.op('Unsqueeze', 'unsqueeze', [batch, ints('axes', [0])], 'batch1');
    target = b.op('Concat', 'concat', [batch1, ints('minus_one', [-1])], 'target', [{ name: 'axis', type: 'int', value: 0n }]);
  } else {
    const as32 = b.op('Cast', 'cast32', [shape], 'shape32', [{ name: 'to', type: 'int', value: BigInt(DataType.INT32) }]);
    const first = b.op('Slice', 'slice', [as32, ints('starts', [0]), ints('ends', [1]), ints('slice_axes', [0])], 'first');
    const as64 = b.op('Cast', 'cast64', [first], 'first64', [{ name: 'to', type: 'int', value: BigInt(DataType.INT64) }]);
    target = b.op('Concat', 'concat', [as64, ints('features', [CHANNELS])], 'target', [{ name: 'axis', type: 'int', value: 0n }]);
  }
  const flat = b.op('Reshape', 'flatten', [pooled, target], 'flat');
  const fc = { outWidth: 3, inWidth: CHANNELS, weights: Float64Array.from({ length: 3 * CHANNELS }, () => random.gaussian()), bias: Float64Array.from({ length: 3 }, () => random.gaussian()) };
  b.output(b.gemm('fc', flat, fc, 'initializer', 'logits'), 3);
  const file = path.join(scratch.freshFolder(), `${style}.onnx`);
  saveModel(b.model(), file);
  return file;
}

describe('computed flattens', () => {
  for (const style of ['torch', 'paddle'] as const) {
    it(`lets the conv before a ${style}-style batch-dynamic flatten merge, and rewrites the feature count`, async () => {
      const input = flattenModel(style);
      const conv = findLayers(loadModel(input)).find((l) => l.name === 'conv')!;
      expect(conv.blockers).toEqual([]);
      expect(conv.mergeable).toBe(true);
      expect(conv.consumers.map((c) => c.node.name)).toEqual(['fc']);
      const output = path.join(path.dirname(input), 'pruned.onnx');
      const result = await prune(input, { output, probe: { random: 32, seed: 1 } });
      expect(result.plan.layers.map((l) => [l.layer, l.width, l.widthAfter])).toEqual([['conv', 6, 5]]);
      expect(result.fidelity.maxRelError).toBeLessThan(1e-5);
      const written = loadModel(output);
      expect(written.graph.nodes.find((n) => n.name === 'fc')!.inputs[1]!.constantTensor()!.dims).toEqual([3, 5]);
      // Another batch size than the probes used: the batch still comes from the input.
      const fresh = await compareModels(input, output, 'flatten', randomProbes(loadModel(input), 5, { seed: 99 }));
      expect(fresh.maxRelError).toBeLessThan(1e-5);
    });
  }

  it('keeps a Shape that reads the channel count as a consumer the merge would break', () => {
    const model = loadModel(flattenModel('torch'));
    // Read dim 1 (the channels) instead of the batch.
    const gather = model.graph.nodes.find((n) => n.name === 'gather')!;
    gather.setInput(1, model.graph.addInitializer('one', Tensor.fromInt64([], [1])));
    const conv = findLayers(model).find((l) => l.name === 'conv')!;
    expect(conv.mergeable).toBe(false);
    expect(conv.blockers.map((b) => b.node?.name)).toContain('shape');
  });
});
