// Group merges on the shapes real CNNs have, differentially: each model plants channels that are
// exact multiples across a whole dependency group (a depthwise chain, residual stages with 1x1 and
// pooled shortcuts, Concat/Split/Slice, channel padding, NHWC Transposes, a squeeze-and-excitation
// gate) and decoys that must stay. `prune` plans, rewrites and verifies in onnxruntime; the test
// then loads the written model itself and compares it with the original on fresh inputs.

import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findChannelGroups } from '../../src/analysis/channel-groups.js';
import { findLayers } from '../../src/analysis/find-layers.js';
import { VerificationError } from '../../src/errors.js';
import { DataType } from '../../src/ir/data-type.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { Value } from '../../src/ir/value.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { loadModel, saveModel } from '../../src/onnx/model-file.js';
import { prune } from '../../src/pipeline/prune.js';
import { hostToFloat64 } from '../../src/runtime/host-tensor.js';
import { ModelSession } from '../../src/runtime/model-session.js';
import { GraphBuilder, float, int, ints } from '../helpers/graph-builder.js';
import { scratchFolder } from '../helpers/scratch-folder.js';

const scratch = scratchFolder('group-merges');

/** Builds conv models whose output channels can be planted as multiples of one another. */
class ConvModel {
  readonly b: GraphBuilder;
  readonly rng: SeededRandom;
  constructor(name: string, seed: number) {
    this.b = new GraphBuilder(name);
    this.rng = new SeededRandom(seed);
  }

  gaussian(count: number, scale = 1): number[] {
    return Array.from({ length: count }, () => scale * this.rng.gaussian());
  }

  /**
   * A Conv with `out` channels; `plant` maps channel j to [r, t]: filter and bias of j are t times
   * those of r. `group` = out = in for a depthwise conv.
   */
  conv(name: string, x: Value, inChannels: number, out: number, kernel: number, plant: Record<number, [number, number]> = {}, attrs: Record<string, ReturnType<typeof int>> = {}, group = 1): Value {
    const per = (inChannels / group) * kernel * kernel;
    const w = this.gaussian(out * per, 1 / Math.sqrt(per));
    const bias = this.gaussian(out, 0.3);
    for (const [j, [r, t]] of Object.entries(plant)) {
      for (let i = 0; i < per; i++) w[+j * per + i] = t * w[r * per + i]!;
      bias[+j] = t * bias[r]!;
    }
    const pads = kernel > 1 ? { pads: ints([1, 1, 1, 1]) } : {};
    const [z] = this.b.node('Conv', [x, this.b.initializer(`${name}_w`, Tensor.fromNumbers(DataType.FLOAT, [out, inChannels / group, kernel, kernel], w)), this.b.initializer(`${name}_b`, Tensor.fromNumbers(DataType.FLOAT, [out], bias))], { ...pads, ...attrs, ...(group > 1 ? { group: int(group) } : {}) }, { name });
    return z!;
  }

  op(opType: string, inputs: (Value | null)[], attrs: Record<string, ReturnType<typeof int>> = {}, name?: string): Value {
    return this.b.node(opType, inputs, attrs, name ? { name } : {})[0]!;
  }

  ints64(name: string, values: number[]): Value {
    return this.b.initializer(name, Tensor.fromInt64([values.length], values));
  }

  scalar(name: string, value: number): Value {
    return this.b.initializer(name, Tensor.fromNumbers(DataType.FLOAT, [], [value]));
  }
}

async function runModel(model: Model | string, feeds: Record<string, Float32Array>, dims: Record<string, number[]>): Promise<Record<string, Float64Array>> {
  if (typeof model !== 'string') throw new Error('runModel takes a file');
  const session = await ModelSession.create(model, 'test');
  try {
    const out = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, data]) => [k, { dataType: DataType.FLOAT, dims: dims[k]!, data }])));
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, hostToFloat64(t)]));
  } finally {
    await session.release();
  }
}

interface Case {
  name: string;
  model: Model;
  inputShape: number[];
  /** Channels each group (by its producers, sorted and joined) loses. */
  removed: Record<string, number>;
}

/** Prunes exactly, checks the groups' widths, then runs the written model against the original. */
async function pruneAndCompare(c: Case): Promise<void> {
  const dir = scratch.freshFolder();
  const input = path.join(dir, `${c.name}.onnx`);
  const output = path.join(dir, `${c.name}-pruned.onnx`);
  saveModel(c.model, input);
  const result = await prune(input, { output, probe: { random: 48, seed: 5, shapes: { x: c.inputShape } }, verify: { maxError: 1e-5 } });
  const removed = Object.fromEntries(result.plan.groups.map((g) => [[...g.members].sort().join('+'), g.width - g.widthAfter]));
  expect(removed).toEqual(c.removed);
  expect(result.fidelity.maxRelError).toBeLessThan(1e-5);
  const rng = new SeededRandom(99);
  const count = c.inputShape.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: count }, () => rng.gaussian());
  const before = await runModel(input, { x }, { x: c.inputShape });
  const after = await runModel(output, { x }, { x: c.inputShape });
  for (const [name, y] of Object.entries(before)) {
    const z = after[name]!;
    expect(z.length).toBe(y.length);
    const scale = Math.max(...y.map(Math.abs));
    const err = Math.max(...y.map((v, i) => Math.abs(v - z[i]!)));
    expect(err / scale).toBeLessThan(1e-5);
  }
  // Approximate mode writes a model onnxruntime loads, or refuses with a verification error.
  const approx = path.join(dir, `${c.name}-approx.onnx`);
  try {
    await prune(input, { output: approx, probe: { random: 48, seed: 5, shapes: { x: c.inputShape } }, merge: { approximate: true }, verify: { maxError: 1e-3 } });
    await runModel(approx, { x }, { x: c.inputShape });
  } catch (error) {
    expect(error).toBeInstanceOf(VerificationError);
  }
}

/** expand 1x1 -> act -> depthwise 3x3 -> Relu -> project 1x1: planted composite neurons. */
function depthwiseChain(activation: 'Relu' | 'Clip'): Case {
  const m = new ConvModel(`dw-${activation}`, activation === 'Relu' ? 11 : 12);
  const x = m.b.input('x', DataType.FLOAT, ['N', 4, 6, 6]);
  // Relu: 5 = 2 x 1 in the expand conv, 0.5 x in the depthwise one (composite t = 1); 6 = 6 copies 2
  // with depthwise 3x (t = 3); 7 copies 3 but has its own depthwise filter (a decoy).
  // Clip (ReLU6, not homogeneous): only copies through both convs merge; 6 = 2 x 2 is a decoy.
  const expandPlant: Record<number, [number, number]> = activation === 'Relu' ? { 5: [1, 2], 6: [2, 1], 7: [3, 1] } : { 5: [1, 1], 6: [2, 2], 7: [3, 1] };
  const dwPlant: Record<number, [number, number]> = activation === 'Relu' ? { 5: [1, 0.5], 6: [2, 3] } : { 5: [1, 1], 6: [2, 1] };
  const e = m.conv('expand', x, 4, 8, 1, expandPlant);
  const ea = activation === 'Relu' ? m.op('Relu', [e]) : m.op('Clip', [e, m.scalar('lo', 0), m.scalar('hi', 6)]);
  // Depthwise bias planting: bias_j = t_dw * a * bias_r makes the composite exact; conv() plants t * bias_r.
  const d = m.conv('dw', ea, 8, 8, 3, dwPlant, {}, 8);
  if (activation === 'Relu') {
    // Composite: (a d_j, e_j) = t (d_r, e_r) with a = 2, d_j = 0.5 d_r -> t = 1, so e_j = e_r.
    const bias = m.b.graph.nodes.find((n) => n.name === 'dw')!.inputs[2]!;
    const values = [...bias.constantTensor()!.toFloat64()];
    values[5] = values[1]!;
    values[6] = 3 * values[2]!;
    m.b.graph.setConstant(bias, Tensor.fromNumbers(DataType.FLOAT, [8], values));
  }
  const h = m.op('Relu', [d]);
  const y = m.conv('project', h, 8, 5, 1);
  m.b.output(y, DataType.FLOAT, ['N', 5, 6, 6]);
  return { name: `dw-${activation}`, model: m.b.build(13), inputShape: [2, 4, 6, 6], removed: { 'dw+expand': activation === 'Relu' ? 2 : 1 } };
}

/**
 * Two residual stages: identity shortcut, then a downsampling stage with a MaxPool + 1x1 conv
 * shortcut; global average pooling by ReduceMean over [-1, -2], a Reshape naming the channel
 * count, and a Gemm read-out.
 */
function residualStages(): Case {
  const m = new ConvModel('res', 21);
  const x = m.b.input('x', DataType.FLOAT, ['N', 3, 8, 8]);
  const s = m.op('Relu', [m.conv('stem', x, 3, 6, 3, { 4: [1, 2] })]);
  const a = m.op('Relu', [m.conv('a', s, 6, 6, 3)]);
  const bOut = m.conv('b', a, 6, 6, 3, { 4: [1, 2] });
  const s2 = m.op('Relu', [m.op('Add', [bOut, s])]);
  const d = m.op('Relu', [m.conv('d', s2, 6, 8, 3, {}, { strides: ints([2, 2]) })]);
  const e = m.conv('e', d, 8, 8, 3, { 7: [2, 1.5], 6: [0, 1] });
  const pooled = m.op('MaxPool', [s2], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) });
  const f = m.conv('f', pooled, 6, 8, 1, { 7: [2, 1.5], 6: [0, 3] });
  const s3 = m.op('Relu', [m.op('Add', [e, f])]);
  const gap = m.op('ReduceMean', [s3], { axes: ints([-1, -2]), keepdims: int(1) });
  const flat = m.op('Reshape', [gap, m.ints64('flat_shape', [-1, 8])]);
  const [y] = m.b.node('Gemm', [flat, m.b.initializer('fc_w', Tensor.fromNumbers(DataType.FLOAT, [3, 8], m.gaussian(24))), m.b.initializer('fc_b', Tensor.fromNumbers(DataType.FLOAT, [3], m.gaussian(3)))], { transB: int(1) }, { name: 'fc', outputs: ['y'] });
  m.b.output(y!, DataType.FLOAT, ['N', 3]);
  return { name: 'res', model: m.b.build(13), inputShape: [2, 3, 8, 8], removed: { 'b+stem': 1, 'e+f': 1 } };
}

/** tf2onnx style: NHWC input, Transposes around convs, a residual whose shortcut is padded on the channel axis, Concat with zeros. */
function nhwcPadded(): Case {
  const m = new ConvModel('nhwc', 31);
  const x = m.b.input('x', DataType.FLOAT, [1, 6, 6, 3]);
  const nchw = m.op('Transpose', [x], { perm: ints([0, 3, 1, 2]) });
  const a = m.op('Transpose', [m.op('Relu', [m.conv('a', nchw, 3, 4, 3, { 3: [0, 1.7] })])], { perm: ints([0, 2, 3, 1]) });
  const padded = m.op('Pad', [a, m.ints64('pads', [0, 0, 0, 0, 0, 0, 0, 2])]);
  const bConv = m.op('Transpose', [m.op('Relu', [m.conv('b', nchw, 3, 6, 3, { 3: [0, 1.7], 5: [4, 2] })])], { perm: ints([0, 2, 3, 1]) });
  const s = m.op('Add', [padded, bConv]);
  const y = m.conv('c', m.op('Transpose', [s], { perm: ints([0, 3, 1, 2]) }), 6, 2, 1);
  m.b.output(y, DataType.FLOAT, [1, 2, 6, 6]);
  const cat = m.op('Concat', [s, m.b.initializer('zeros', Tensor.fromNumbers(DataType.FLOAT, [1, 6, 6, 2], new Array(72).fill(0)))], { axis: int(-1) });
  const [y2] = m.b.node('MatMul', [cat, m.b.initializer('mm_w', Tensor.fromNumbers(DataType.FLOAT, [8, 3], m.gaussian(24)))], {}, { name: 'mm', outputs: ['y2'] });
  m.b.output(y2!, DataType.FLOAT, [1, 6, 6, 3]);
  // Channel 3 = 1.7 x channel 0 in both a and b; 5 = 2 x 4 in b where a is padded with zeros; the
  // two zero channels of the Concat are static.
  return { name: 'nhwc', model: m.b.build(13), inputShape: [1, 6, 6, 3], removed: { 'a+b': 4 } };
}

/** Split, Slice and a U-Net-style Concat skip with Resize: offsets on the channel axis. */
function offsets(): Case {
  const m = new ConvModel('offsets', 41);
  const x = m.b.input('x', DataType.FLOAT, ['N', 3, 8, 8]);
  const e = m.op('Relu', [m.conv('e', x, 3, 6, 3, { 1: [0, 3], 5: [4, 2] })]);
  const sliced = m.op('Slice', [e, m.ints64('s_starts', [0]), m.ints64('s_ends', [4]), m.ints64('s_axes', [1])]);
  const y1 = m.conv('g', sliced, 4, 3, 1);
  m.b.output(y1, DataType.FLOAT, ['N', 3, 8, 8]);
  const [p0, p1] = m.b.node('Split', [e, m.ints64('split_sizes', [3, 3])], { axis: int(1) }, { outputs: ['p0', 'p1'] });
  m.b.output(m.conv('m', p0!, 3, 2, 1), DataType.FLOAT, ['N', 2, 8, 8]);
  m.b.output(m.conv('n', p1!, 3, 2, 1), DataType.FLOAT, ['N', 2, 8, 8]);
  const down = m.op('MaxPool', [e], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) });
  const h = m.op('Relu', [m.conv('h', down, 6, 4, 3, { 3: [2, 0.5] })]);
  const up = m.op('Resize', [h, null, m.b.initializer('scales', Tensor.fromNumbers(DataType.FLOAT, [4], [1, 1, 2, 2]))], {});
  const cat = m.op('Concat', [e, up], { axis: int(1) });
  m.b.output(m.conv('k', cat, 10, 2, 3), DataType.FLOAT, ['N', 2, 8, 8]);
  return { name: 'offsets', model: m.b.build(13), inputShape: [2, 3, 8, 8], removed: { 'e+h': 3 } };
}

/** MobileNetV3-like: decomposed HardSwish, depthwise, squeeze-and-excitation with HardSigmoid, a Cast round trip. */
function squeezeExcite(): Case {
  const m = new ConvModel('se', 51);
  const x = m.b.input('x', DataType.FLOAT, ['N', 3, 6, 6]);
  // HardSwish is not homogeneous: expand channel 5 copies 1 (merges), 6 = 2 x 2 (a decoy).
  const e = m.conv('expand', x, 3, 8, 1, { 5: [1, 1], 6: [2, 2] });
  const clip = m.op('Clip', [m.op('Add', [e, m.scalar('three', 3)]), m.scalar('zero', 0), m.scalar('six', 6)]);
  const hs = m.op('Div', [m.op('Mul', [e, clip]), m.scalar('six_d', 6)]);
  // The depthwise conv scales channel 5 by 2 (Relu keeps it): t = 2 at the trunk.
  const t = m.op('Relu', [m.conv('dw', hs, 8, 8, 3, { 5: [1, 2], 6: [2, 0.5] }, {}, 8)]);
  // An fp16 round trip (as fp16 exports write): scaling by 2 is exact in any float format.
  const half = m.op('Cast', [m.op('Cast', [t], { to: int(DataType.FLOAT16) })], { to: int(DataType.FLOAT) });
  const pooled = m.op('GlobalAveragePool', [half]);
  const sq = m.op('Relu', [m.conv('squeeze', pooled, 8, 4, 1)]);
  // The gate's rows must be equal (sigmoid): 5 copies 1; 6 copies 2.
  const gate = m.op('HardSigmoid', [m.conv('excite', sq, 4, 8, 1, { 5: [1, 1], 6: [2, 1] })], { alpha: float(1 / 6) });
  const scaled = m.op('Mul', [t, gate]);
  m.b.output(m.conv('project', scaled, 8, 3, 1), DataType.FLOAT, ['N', 3, 6, 6]);
  return { name: 'se', model: m.b.build(13), inputShape: [2, 3, 6, 6], removed: { 'dw+excite+expand': 1 } };
}

/** DenseNet-style: two convs concatenated, then a BatchNormalization no conv precedes (nothing to fold into), Relu, conv. */
function denseBatchNorm(): Case {
  const m = new ConvModel('dense-bn', 61);
  const x = m.b.input('x', DataType.FLOAT, ['N', 3, 6, 6]);
  const a = m.op('Relu', [m.conv('a', x, 3, 4, 3, { 3: [0, 2], 2: [1, 2] })]);
  const b = m.op('Relu', [m.conv('b', x, 3, 4, 3)]);
  const cat = m.op('Concat', [a, b], { axis: int(1) });
  // Channel 3 (= 2 x channel 0) is scaled by half: composite t = 1, so its shift must equal channel 0's.
  // Channel 2 (= 2 x channel 1) has a BN shift of its own: a decoy.
  const gamma = m.gaussian(8);
  const beta = m.gaussian(8);
  gamma[3] = 0.5 * gamma[0]!;
  beta[3] = beta[0]!;
  const f = (name: string, v: number[]) => m.b.initializer(name, Tensor.fromNumbers(DataType.FLOAT, [8], v));
  const bn = m.op('BatchNormalization', [cat, f('bn_gamma', gamma), f('bn_beta', beta), f('bn_mean', new Array(8).fill(0)), f('bn_var', new Array(8).fill(1))], { epsilon: float(0) });
  m.b.output(m.conv('c', m.op('Relu', [bn]), 8, 3, 1), DataType.FLOAT, ['N', 3, 6, 6]);
  return { name: 'dense-bn', model: m.b.build(13), inputShape: [2, 3, 6, 6], removed: { 'a+b': 1 } };
}

describe('exact group merges on CNN shapes, verified in onnxruntime', () => {
  it('merge through a BatchNormalization on a Concat (DenseNet): the per-channel affine map rescales, its shift must agree', async () => {
    await pruneAndCompare(denseBatchNorm());
  });

  it('merge the composite neurons of an expand -> depthwise -> project chain (Relu: multiples through both convs)', async () => {
    await pruneAndCompare(depthwiseChain('Relu'));
  });

  it('merge only copies through a ReLU6 (Clip) depthwise chain, leaving the multiple alone', async () => {
    await pruneAndCompare(depthwiseChain('Clip'));
  });

  it('merge across residual stages with a pooled 1x1-conv shortcut, ReduceMean pooling and a Reshape before the Gemm', async () => {
    const c = residualStages();
    await pruneAndCompare(c);
    const groups = findChannelGroups(findLayers(c.model));
    expect(groups.every((g) => g.mergeable)).toBe(true);
  });

  it('merge through NHWC Transposes, a channel-padded shortcut, and drop the Concat zeros as static channels', async () => {
    const c = nhwcPadded();
    const [group] = findChannelGroups(findLayers(c.model));
    expect(group!.staticChannels.length).toBe(2);
    await pruneAndCompare(c);
  });

  it('merge at offsets through Split, Slice and a U-Net Concat skip with Resize', async () => {
    await pruneAndCompare(offsets());
  });

  it('merge a squeeze-and-excitation trunk: gate rows equal, depthwise multiple, HardSwish copies only', async () => {
    await pruneAndCompare(squeezeExcite());
  });
});

describe('approximate group merges', () => {
  it('drop a near-multiple channel of a residual stream from every member and refit every consumer on the member it reads', async () => {
    const c = residualStages();
    // Perturb the planted stream channel 4 (2 x channel 1) a little in both producers: no longer exact.
    for (const name of ['stem_w', 'b_w']) {
      const v = c.model.graph.initializers.find((x) => x.name === name)!;
      const t = v.constantTensor()!;
      const w = t.toFloat64();
      const per = w.length / 6;
      for (let i = 0; i < per; i++) w[4 * per + i]! += 2e-3 * Math.sin(7 * i + 1);
      c.model.graph.setConstant(v, Tensor.fromNumbers(DataType.FLOAT, t.dims, w));
    }
    const dir = scratch.freshFolder();
    const input = path.join(dir, 'res-near.onnx');
    const output = path.join(dir, 'res-near-approx.onnx');
    saveModel(c.model, input);
    const exact = await prune(input, { output, dryRun: true, probe: { random: 256, seed: 5, shapes: { x: c.inputShape } }, verify: { maxError: 1e-5 } });
    expect(exact.plan.groups.map((g) => [...g.members].sort().join('+'))).toEqual(['e+f']);
    const result = await prune(input, { output, probe: { random: 256, seed: 5, shapes: { x: c.inputShape } }, analysis: { similarityThreshold: 0.999 }, merge: { approximate: true }, verify: { maxError: 1e-2 } });
    const stream = result.plan.groups.find((g) => g.members.includes('stem'))!;
    // One of the near-parallel pair goes (the smaller-variance one, channel 1).
    expect(stream.refit?.dropped).toEqual([1]);
    expect(stream.widthAfter).toBe(5);
    expect(result.fidelity.maxRelError).toBeLessThan(1e-2);
    const rng = new SeededRandom(8);
    const x = Float32Array.from({ length: 2 * 3 * 8 * 8 }, () => rng.gaussian());
    const after = await runModel(output, { x }, { x: c.inputShape });
    expect(after.y!.every(Number.isFinite)).toBe(true);
  });
});

describe('a rewritten model onnxruntime refuses', () => {
  it('is an internal error, never a runtime error', async () => {
    const { compareModels } = await import('../../src/runtime/verify-rewrite.js');
    const { randomProbes } = await import('../../src/runtime/probe-data.js');
    const { cloneModel } = await import('../../src/ir/clone-model.js');
    const c = residualStages();
    const broken = cloneModel(c.model);
    const reshape = broken.graph.nodes.find((n) => n.is('Reshape'))!;
    broken.graph.setConstant(reshape.inputs[1]!, Tensor.fromInt64([2], [-1, 7]));
    const probes = randomProbes(c.model, 4, { shapes: { x: c.inputShape } });
    const error = await compareModels(c.model, broken, 'res.onnx', probes).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).constructor).toBe(Error);
    expect((error as Error).message).toMatch(/refuses the rewritten model of res\.onnx/);
  });
});

void loadModel;
