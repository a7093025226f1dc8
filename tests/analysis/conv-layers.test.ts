// Convolution layers: BatchNorm folding, consumers through pooling and Flatten, channel groups
// tied by residual Adds, and the exactness limits (MaxPool with negative scales, padding with
// constant channels). Every rewrite is run against the original in onnxruntime.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findChannelGroups } from '../../src/analysis/channel-groups.js';
import { findLayers } from '../../src/analysis/find-layers.js';
import { DataType } from '../../src/ir/data-type.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { Value } from '../../src/ir/value.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { encodeModel } from '../../src/onnx/encode-model.js';
import { saveModel } from '../../src/onnx/model-file.js';
import { audit } from '../../src/pipeline/audit.js';
import { cloneModel } from '../../src/ir/clone-model.js';
import { compareModels } from '../../src/runtime/verify-rewrite.js';
import { prune } from '../../src/pipeline/prune.js';
import { foldBatchNorms } from '../../src/rewrite/fold-batch-norms.js';
import { randomProbes } from '../../src/runtime/probe-data.js';
import { float, GraphBuilder, int, ints } from '../helpers/graph-builder.js';

const f32 = (dims: number[], values: number[]): Tensor => Tensor.fromNumbers(DataType.FLOAT, dims, values);

/** Random weights with planted relations: row j = t * row r (bias too). */
function plantedRows(rng: SeededRandom, rows: number, fan: number, plants: [j: number, r: number, t: number][]): { w: number[]; b: number[] } {
  const w = Array.from({ length: rows * fan }, () => rng.gaussian() * 0.4);
  const b = Array.from({ length: rows }, () => rng.gaussian() * 0.2);
  for (const [j, r, t] of plants) {
    for (let i = 0; i < fan; i++) w[j * fan + i] = t * w[r * fan + i]!;
    b[j] = t * b[r]!;
  }
  return { w, b };
}

function tmpFile(name: string): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'condense-conv-')), name);
}

interface ResidualOptions {
  /** Planted in the stem and in the block's second conv (same t): a coupled merge. */
  streamPlants: [number, number, number][];
  /** Planted only in the stem: the other member disagrees, so it must stay. */
  stemOnlyPlants: [number, number, number][];
  blockPlants: [number, number, number][];
}

/** stem Conv -> Relu -> s; s -> b1c1 -> Relu -> b1c2 -> Add(s) -> Relu -> GAP -> Flatten -> fc. */
function residualModel(o: ResidualOptions): Model {
  const rng = new SeededRandom(11);
  const b = new GraphBuilder('residual');
  const x = b.input('x', DataType.FLOAT, ['batch', 3, 8, 8]);
  const pads = { pads: ints([1, 1, 1, 1]) };
  const stem = plantedRows(rng, 8, 27, [...o.streamPlants, ...o.stemOnlyPlants]);
  const [zs] = b.node('Conv', [x, b.initializer('stem_w', f32([8, 3, 3, 3], stem.w)), b.initializer('stem_b', f32([8], stem.b))], pads, { name: 'stem' });
  const [s] = b.node('Relu', [zs!]);
  const c1 = plantedRows(rng, 8, 72, o.blockPlants);
  const [z1] = b.node('Conv', [s!, b.initializer('c1_w', f32([8, 8, 3, 3], c1.w)), b.initializer('c1_b', f32([8], c1.b))], pads, { name: 'b1c1' });
  const [h1] = b.node('Relu', [z1!]);
  const c2 = plantedRows(rng, 8, 72, o.streamPlants);
  const [z2] = b.node('Conv', [h1!, b.initializer('c2_w', f32([8, 8, 3, 3], c2.w)), b.initializer('c2_b', f32([8], c2.b))], pads, { name: 'b1c2' });
  const [sum] = b.node('Add', [z2!, s!], {}, { name: 'add1' });
  const [s2] = b.node('Relu', [sum!]);
  const [gap] = b.node('GlobalAveragePool', [s2!]);
  const [flat] = b.node('Flatten', [gap!]);
  const fc = Array.from({ length: 32 }, () => rng.gaussian());
  const [y] = b.node('Gemm', [flat!, b.initializer('fc_w', f32([4, 8], fc)), b.initializer('fc_b', f32([4], [0.1, 0.2, 0.3, 0.4]))], { transB: int(1) }, { name: 'fc' });
  b.output(y!, DataType.FLOAT, ['batch', 4]);
  return b.build(17);
}

describe('channel groups', () => {
  it('ties the stem and the block output conv through the residual Add, with the readers of the stream as consumers', () => {
    const layers = findLayers(residualModel({ streamPlants: [], stemOnlyPlants: [], blockPlants: [] }));
    const groups = findChannelGroups(layers);
    expect(groups).toHaveLength(1);
    const g = groups[0]!;
    expect(g.producers.map((p) => p.name).sort()).toEqual(['b1c2', 'stem']);
    expect(g.consumers.map((c) => c.node.name).sort()).toEqual(['b1c1', 'fc']);
    expect(g.ties.map((t) => t.name)).toEqual(['add1']);
    expect(g.mergeable).toBe(true);
    const stem = layers.find((l) => l.name === 'stem')!;
    expect(stem.mergeable).toBe(false);
    expect(stem.blockers.map((b) => b.message).join(' ')).toMatch(/Add .*ties its channels.*"add1"/);
  });

  it('merges a channel only where every coupled layer agrees, and the result matches the original', async () => {
    const model = residualModel({ streamPlants: [[5, 2, 1.5]], stemOnlyPlants: [[7, 6, 2]], blockPlants: [[3, 0, 0.7]] });
    const input = tmpFile('residual.onnx');
    saveModel(model, input);
    const output = path.join(path.dirname(input), 'pruned.onnx');
    const result = await prune(input, { output, probe: { random: 32 } });
    expect(result.plan.groups).toHaveLength(1);
    expect(result.plan.groups[0]!.merges.map((m) => [m.neuron, m.into].sort())).toEqual([[2, 5]]);
    expect(result.plan.layers.map((l) => [l.layer, l.widthAfter])).toEqual([['b1c1', 7]]);
    expect(result.fidelity.maxRelError).toBeLessThan(1e-5);
    const pruned = findLayers((await import('../../src/onnx/model-file.js')).loadModel(output));
    expect(Object.fromEntries(pruned.map((l) => [l.name, l.width]))).toEqual({ stem: 7, b1c1: 7, b1c2: 7, fc: 4 });
  });

  it('joins a squeeze-and-excitation gate to the gated layer\'s group, which a graph output then blocks', () => {
    const rng = new SeededRandom(3);
    const b = new GraphBuilder('se');
    const x = b.input('x', DataType.FLOAT, ['batch', 3, 6, 6]);
    const c = plantedRows(rng, 4, 27, [[1, 0, 1]]);
    const [z] = b.node('Conv', [x, b.initializer('w', f32([4, 3, 3, 3], c.w)), b.initializer('b', f32([4], c.b))], {}, { name: 'conv' });
    const [h] = b.node('Relu', [z!]);
    const [pooled] = b.node('GlobalAveragePool', [h!]);
    const [e] = b.node('Conv', [pooled!, b.initializer('we', f32([4, 4, 1, 1], Array.from({ length: 16 }, () => rng.gaussian())))], {}, { name: 'excite' });
    const [gate] = b.node('HardSigmoid', [e!]);
    const [gated] = b.node('Mul', [h!, gate!], {}, { name: 'gate' });
    b.output(gated!, DataType.FLOAT, ['batch', 4, 4, 4]);
    const layers = findLayers(b.build(17));
    const conv = layers.find((l) => l.name === 'conv')!;
    expect(conv.mergeable).toBe(false);
    expect(conv.blockers.map((b) => b.message).join(' ')).toMatch(/Mul .*gate.*"gate"/);
    // The gate's rows join the trunk's group (a Mul of two computed tensors multiplies scales).
    const [group, ...others] = findChannelGroups(layers);
    expect(others).toEqual([]);
    expect(group!.producers.map((p) => p.name).sort()).toEqual(['conv', 'excite']);
    expect(group!.ties.map((t) => t.label)).toEqual(['gate']);
    expect(group!.blockers.map((b) => b.code)).toEqual(['graph-output']);
  });
});

describe('convolution layers', () => {
  it('folds a BatchNormalization into the conv before it without changing the outputs', async () => {
    const rng = new SeededRandom(5);
    const b = new GraphBuilder('bn');
    const x = b.input('x', DataType.FLOAT, ['batch', 2, 5, 5]);
    const r = (n: number, s = 1) => Array.from({ length: n }, () => rng.gaussian() * s);
    const [z] = b.node('Conv', [x, b.initializer('w', f32([3, 2, 3, 3], r(54))), b.initializer('b', f32([3], r(3)))], {}, { name: 'conv' });
    const positive = r(3).map((v) => 1 + Math.abs(v));
    const [y] = b.node('BatchNormalization', [z!, b.initializer('g', f32([3], r(3))), b.initializer('be', f32([3], r(3))), b.initializer('m', f32([3], r(3))), b.initializer('v', f32([3], positive))], { epsilon: float(1e-3) }, { name: 'bn' });
    b.output(y!, DataType.FLOAT, ['batch', 3, 3, 3]);
    const model = b.build(17);
    const folded = cloneModel(model);
    expect(foldBatchNorms(folded)).toBe(1);
    expect(folded.graph.nodes.map((n) => n.opType)).toEqual(['Conv']);
    expect(folded.graph.outputs[0]!.name).toBe(y!.name);
    const probes = randomProbes(model, 8, { seed: 1 });
    const fidelity = await compareModels(encodeModel(model).modelBytes, encodeModel(folded).modelBytes, 'bn', probes);
    expect(fidelity.maxRelError).toBeLessThan(1e-5);
  });

  /** conv -> act -> [MaxPool] -> [Pad] -> conv2 -> GAP -> Flatten -> Gemm, planting into conv. */
  function chain(activation: 'Relu' | 'Tanh', withMaxPool: boolean, plants: [number, number, number][], zeroChannel?: { channel: number; bias: number }, padConsumer = false): Model {
    const rng = new SeededRandom(9);
    const b = new GraphBuilder('chain');
    const x = b.input('x', DataType.FLOAT, ['batch', 2, 'height', 'width']);
    const c = plantedRows(rng, 6, 18, plants);
    if (zeroChannel) {
      for (let i = 0; i < 18; i++) c.w[zeroChannel.channel * 18 + i] = 0;
      c.b[zeroChannel.channel] = zeroChannel.bias;
    }
    const [z] = b.node('Conv', [x, b.initializer('w', f32([6, 2, 3, 3], c.w)), b.initializer('b', f32([6], c.b))], { pads: ints([1, 1, 1, 1]) }, { name: 'conv' });
    let [h] = b.node(activation, [z!]) as Value[];
    if (withMaxPool) [h] = b.node('MaxPool', [h!], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) });
    const w2 = Array.from({ length: 4 * 6 * 9 }, () => rng.gaussian() * 0.3);
    const [z2] = b.node('Conv', [h!, b.initializer('w2', f32([4, 6, 3, 3], w2))], padConsumer ? { pads: ints([1, 1, 1, 1]) } : {}, { name: 'conv2' });
    const [h2] = b.node('Relu', [z2!]);
    const [gap] = b.node('GlobalAveragePool', [h2!]);
    const [flat] = b.node('Flatten', [gap!]);
    const [y] = b.node('Gemm', [flat!, b.initializer('fc', f32([3, 4], Array.from({ length: 12 }, () => rng.gaussian())))], { transB: int(1) }, { name: 'fc' });
    b.output(y!, DataType.FLOAT, ['batch', 3]);
    return b.build(17);
  }

  async function pruneConv(model: Model, name: string): Promise<Awaited<ReturnType<typeof prune>>> {
    const input = tmpFile(`${name}.onnx`);
    saveModel(model, input);
    return prune(input, { output: path.join(path.dirname(input), 'out.onnx'), probe: { random: 24, shapes: { x: [1, 2, 8, 8] } } });
  }

  it('merges negated tanh channels through a conv consumer, but not through a MaxPool', async () => {
    const direct = await pruneConv(chain('Tanh', false, [[4, 1, -1]]), 'tanh-direct');
    expect(direct.plan.layers[0]!.merges).toEqual([{ neuron: 4, into: 1, scale: -1, kind: 'negated' }]);
    expect(direct.fidelity.maxRelError).toBeLessThan(1e-5);
    const pooled = await pruneConv(chain('Tanh', true, [[4, 1, -1]]), 'tanh-pooled');
    expect(pooled.plan.layers).toEqual([]);
  });

  it('merges positive multiples of ReLU channels through MaxPool and dynamic spatial sizes', async () => {
    const result = await pruneConv(chain('Relu', true, [[4, 1, 2.5], [5, 0, 1]]), 'relu-pooled');
    const merges = result.plan.layers[0]!.merges.map((m) => ({ pair: [m.neuron, m.into].sort(), kind: m.kind }));
    expect(merges).toEqual(expect.arrayContaining([{ pair: [1, 4], kind: 'multiple' }, { pair: [0, 5], kind: 'copy' }]));
    expect(merges).toHaveLength(2);
    expect(result.fidelity.maxRelError).toBeLessThan(1e-5);
  });

  it('folds a constant channel into a conv consumer without padding, and keeps it where padding would break it', async () => {
    const valid = await pruneConv(chain('Relu', false, [], { channel: 2, bias: 0.8 }), 'static-valid');
    expect(valid.plan.layers[0]!.statics).toEqual([{ neuron: 2, value: expect.closeTo(0.8, 6), kind: 'zero-input' }]);
    expect(valid.fidelity.maxRelError).toBeLessThan(1e-5);
    const padded = await pruneConv(chain('Relu', false, [], { channel: 2, bias: 0.8 }, true), 'static-padded');
    expect(padded.plan.layers).toEqual([]);
  });

  it('audits convolution channels with BatchNorm folded in and reports output clusters over positions', async () => {
    const result = await audit(chain('Relu', false, [[4, 1, 2.5]]), { probe: { random: 8, shapes: { x: [1, 2, 6, 6] } } });
    const conv = result.layers.find((l) => l.layer.name === 'conv')!;
    expect(conv.width).toBe(6);
    expect(conv.weightClusters.count).toBe(5);
    expect(conv.outputClusters?.count).toBeLessThanOrEqual(5);
    expect(conv.statistics!.count).toBe(8 * 36);
  });

  it('merges through a Resize and audits a ConvTranspose without merging it', async () => {
    const rng = new SeededRandom(21);
    const b = new GraphBuilder('upsampling');
    const x = b.input('x', DataType.FLOAT, ['batch', 2, 6, 6]);
    const c = plantedRows(rng, 5, 18, [[3, 1, 1.7]]);
    const [z] = b.node('Conv', [x, b.initializer('w', f32([5, 2, 3, 3], c.w)), b.initializer('b', f32([5], c.b))], { pads: ints([1, 1, 1, 1]) }, { name: 'conv' });
    const [h] = b.node('Relu', [z!]);
    const scales = b.initializer('scales', f32([4], [1, 1, 2, 2]));
    const [up] = b.node('Resize', [h!, null, scales], { mode: { type: 'string', value: new TextEncoder().encode('nearest') } });
    const [z2] = b.node('Conv', [up!, b.initializer('w2', f32([4, 5, 1, 1], Array.from({ length: 20 }, () => rng.gaussian())))], {}, { name: 'conv2' });
    const [h2] = b.node('Relu', [z2!]);
    const [t] = b.node('ConvTranspose', [h2!, b.initializer('wt', f32([4, 3, 2, 2], Array.from({ length: 48 }, () => rng.gaussian())))], {}, { name: 'deconv' });
    b.output(t!, DataType.FLOAT, ['batch', 3, 13, 13]);
    const model = b.build(17);
    const layers = findLayers(model);
    expect(layers.find((l) => l.name === 'deconv')!.blockers.map((b) => b.message).join(' ')).toMatch(/ConvTranspose/);
    expect(layers.find((l) => l.name === 'conv2')!.mergeable).toBe(false);
    const input = tmpFile('upsampling.onnx');
    saveModel(model, input);
    const result = await prune(input, { output: path.join(path.dirname(input), 'out.onnx'), probe: { random: 16 } });
    expect(result.plan.layers.map((l) => [l.layer, l.widthAfter])).toEqual([['conv', 4]]);
    expect(result.fidelity.maxRelError).toBeLessThan(1e-5);
  });
});
