// Per-op knowledge as data, in one table: for each weight-bearing op, which input holds the
// weights, which weight axis is the output neuron (producer side) and which reads an input neuron
// (consumer side), where its bias lives and how a new bias is inserted, whether a BatchNorm after
// it folds in; and which ops between a layer and its consumers act per channel (pass-through).
// find-layers, channel-groups, fold-batch-norms and apply-merge-plan ask this table; a new linear
// op is one entry here (see Einsum). An op missing from these tables is reported by name, never
// handled by a fallback.

import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import { blocker, type Blocker, type BlockerCode } from './blocker.js';
import { integerValues, rankOf, sliceRange } from './shape-values.js';

/** How a rewrite gives a consumer a bias it does not have yet. */
export type BiasInsertion =
  /** Set input `index` to a new initializer (and reset `resetAttribute` to 1, e.g. Gemm's beta). */
  | { kind: 'input'; index: number; resetAttribute?: string }
  /** Add a constant after the node (MatMul, Einsum): the Add takes over the node's output name. */
  | { kind: 'add-node' };

interface WeightOpRule {
  /** Input index of the weight tensor. */
  weightInput: number;
  /** Input index of the bias, when the op carries one. */
  biasInput?: number;
  /** Whether the rule reads this node with these (constant) weight dims at all. */
  accepts: (node: Node, weightDims: readonly number[]) => boolean;
  /** Scale applied to the weights and bias by attributes (Gemm's alpha and beta). */
  weightScale: (node: Node) => number;
  biasScale: (node: Node) => number;
  /**
   * A channels-first feature-map op (Conv): the weights are [out, in, kernel...], the bias is 1-D,
   * and a flattened input cannot be read.
   */
  isChannelFirst: boolean;
  /** The bias is a constant operand of the single Add reading the output (MatMul, Einsum). */
  hasBiasAdd: boolean;
}

export interface ProducerRule extends WeightOpRule {
  /** Weight axis along which neuron k's input weights lie (the output-channel axis). */
  outAxis: (node: Node) => number;
  /** Axis of the activation tensor that indexes neurons, counted from the last (1 = last axis). */
  neuronAxisFromEnd: (node: Node, rank: number) => number;
  /** Whether an inference BatchNormalization reading the output folds into weights and bias. */
  foldsBatchNorm: (node: Node) => boolean;
  /** Attributes that scale weights and bias; folding writes the scales in and resets them to 1. */
  scaleAttributes?: { weight: string; bias: string };
  /** Why this node cannot be treated as a mergeable neuron layer, if it cannot. */
  unsupported?: (node: Node) => Blocker | undefined;
  /**
   * A diagonal op: output channel c reads input channel c alone (a depthwise Conv, group = channels,
   * one filter per channel). In a dependency group its input and output channels are one channel.
   */
  isDiagonal?: (node: Node, weightDims: readonly number[]) => boolean;
  /** The attribute that counts a diagonal op's channels (Conv's group), rewritten when channels go. */
  diagonalWidthAttribute?: string;
}

export interface ConsumerRule extends WeightOpRule {
  /** The only input through which the consumer may read the layer. */
  dataInput: number;
  /** Weight axis whose slice k multiplies input neuron k. */
  inAxis: (node: Node) => number;
  /** Weight axis that indexes the consumer's own outputs (where a bias adds). */
  outAxis: (node: Node, inAxis: number) => number;
  /** How a merge that needs a bias (static neurons, refits) gives the consumer one. */
  biasInsertion: BiasInsertion;
  /** False when the consumer brings in zeros (padding), so a constant channel is not constant to it. */
  keepsConstants: (node: Node) => boolean;
  unsupported?: (node: Node) => Blocker | undefined;
}

const one = (): number => 1;
const is2d = (_n: Node, dims: readonly number[]): boolean => dims.length === 2;

function groupedConv(n: Node, side: string): Blocker | undefined {
  const group = n.getInt('group', 1);
  return group !== 1 ? blocker('grouped-conv', `is a grouped convolution (group=${group})${side}`, n) : undefined;
}

function convPads(n: Node): boolean {
  const autoPad = n.getString('auto_pad', 'NOTSET');
  return (autoPad !== 'NOTSET' && autoPad !== 'VALID') || (n.getInts('pads') ?? []).some((p) => p !== 0);
}

/**
 * An Einsum in the two-operand matmul form: data letters ending in the contracted letter k,
 * weights of two letters {k, n}, output = the data letters with k replaced by n at the end
 * ('bi,ij->bj', '...i,ji->...j', 'bsi,io->bso'). Returns the weight axes of k and n.
 */
export function einsumMatmulAxes(node: Node): { inAxis: number; outAxis: number } | undefined {
  const equation = node.getString('equation', '').replace(/\s+/g, '');
  const [lhs, out] = equation.split('->');
  if (lhs === undefined || out === undefined) return undefined;
  const operands = lhs.split(',');
  if (operands.length !== 2) return undefined;
  const [data, weight] = operands as [string, string];
  const prefix = data.startsWith('...') ? '...' : '';
  const dataLetters = data.slice(prefix.length);
  if (!/^[a-zA-Z]+$/.test(dataLetters) || !/^[a-zA-Z]{2}$/.test(weight) || new Set(dataLetters).size !== dataLetters.length) return undefined;
  const k = dataLetters[dataLetters.length - 1]!;
  const inAxis = weight.indexOf(k);
  if (inAxis < 0) return undefined;
  const outAxis = 1 - inAxis;
  const n = weight[outAxis]!;
  if (n === k || dataLetters.includes(n)) return undefined;
  return out === `${prefix}${dataLetters.slice(0, -1)}${n}` ? { inAxis, outAxis } : undefined;
}

const gemmScales = { weightScale: (n: Node) => n.getFloat('alpha', 1), biasScale: (n: Node) => n.getFloat('beta', 1) };
const dense = { isChannelFirst: false, weightScale: one, biasScale: one } as const;

export const producerRules: Record<string, ProducerRule> = {
  Gemm: {
    ...gemmScales,
    weightInput: 1,
    biasInput: 2,
    accepts: is2d,
    isChannelFirst: false,
    hasBiasAdd: false,
    outAxis: (n) => (n.getInt('transB', 0) ? 0 : 1),
    neuronAxisFromEnd: () => 1,
    foldsBatchNorm: (n) => !n.getInt('transA', 0),
    scaleAttributes: { weight: 'alpha', bias: 'beta' },
    unsupported: (n) => (n.getInt('transA', 0) ? blocker('transposed-input', 'reads its input transposed (transA=1)', n) : undefined),
  },
  MatMul: {
    ...dense,
    weightInput: 1,
    accepts: is2d,
    hasBiasAdd: true,
    outAxis: () => 1,
    neuronAxisFromEnd: () => 1,
    foldsBatchNorm: () => false,
  },
  // Einsum in its matmul form: one table entry (and tests) is all a new linear op needs.
  Einsum: {
    ...dense,
    weightInput: 1,
    accepts: (n, dims) => dims.length === 2 && einsumMatmulAxes(n) !== undefined,
    hasBiasAdd: true,
    outAxis: (n) => einsumMatmulAxes(n)?.outAxis ?? 1,
    neuronAxisFromEnd: () => 1,
    foldsBatchNorm: () => false,
  },
  Conv: {
    weightInput: 1,
    biasInput: 2,
    accepts: () => true,
    weightScale: one,
    biasScale: one,
    isChannelFirst: true,
    hasBiasAdd: false,
    outAxis: () => 0,
    neuronAxisFromEnd: (_n, rank) => rank - 1,
    foldsBatchNorm: () => true,
    unsupported: (n) => groupedConv(n, ': each channel follows its own input channels'),
    isDiagonal: (n, dims) => n.getInt('group', 1) > 1 && n.getInt('group', 1) === dims[0] && dims[1] === 1,
    diagonalWidthAttribute: 'group',
  },
  ConvTranspose: {
    weightInput: 1,
    biasInput: 2,
    accepts: () => true,
    weightScale: one,
    biasScale: one,
    isChannelFirst: true,
    hasBiasAdd: false,
    outAxis: () => 1,
    neuronAxisFromEnd: (_n, rank) => rank - 1,
    foldsBatchNorm: () => false,
    unsupported: (n) => blocker('unsupported-op', 'merging ConvTranspose channels is not supported (audited only)', n),
  },
};

export const consumerRules: Record<string, ConsumerRule> = {
  Gemm: {
    ...gemmScales,
    dataInput: 0,
    weightInput: 1,
    biasInput: 2,
    accepts: is2d,
    isChannelFirst: false,
    hasBiasAdd: false,
    inAxis: (n) => (n.getInt('transB', 0) ? 1 : 0),
    outAxis: (_n, inAxis) => 1 - inAxis,
    biasInsertion: { kind: 'input', index: 2, resetAttribute: 'beta' },
    keepsConstants: () => true,
    unsupported: (n) => (n.getInt('transA', 0) ? blocker('transposed-input', 'reads the layer transposed (transA=1)', n) : undefined),
  },
  MatMul: {
    ...dense,
    dataInput: 0,
    weightInput: 1,
    accepts: is2d,
    hasBiasAdd: true,
    inAxis: () => 0,
    outAxis: () => 1,
    biasInsertion: { kind: 'add-node' },
    keepsConstants: () => true,
  },
  Einsum: {
    ...dense,
    dataInput: 0,
    weightInput: 1,
    accepts: (n, dims) => dims.length === 2 && einsumMatmulAxes(n) !== undefined,
    hasBiasAdd: true,
    inAxis: (n) => einsumMatmulAxes(n)?.inAxis ?? 0,
    outAxis: (_n, inAxis) => 1 - inAxis,
    biasInsertion: { kind: 'add-node' },
    keepsConstants: () => true,
  },
  Conv: {
    dataInput: 0,
    weightInput: 1,
    biasInput: 2,
    accepts: () => true,
    weightScale: one,
    biasScale: one,
    isChannelFirst: true,
    hasBiasAdd: false,
    inAxis: () => 1,
    outAxis: () => 0,
    biasInsertion: { kind: 'input', index: 2 },
    keepsConstants: (n) => !convPads(n),
    unsupported: (n) => groupedConv(n, ', whose channels follow their input channels'),
  },
};

/** The rule for a standard-domain node, if the table has one. */
export function ruleFor<R>(table: Record<string, R>, node: Node): R | undefined {
  if (node.domain !== '' && node.domain !== 'ai.onnx') return undefined;
  return Object.hasOwn(table, node.opType) ? table[node.opType] : undefined;
}

/**
 * How a consumer's weight is seen with neuron k's slice on one axis: a channel-first op sees its
 * own dims; a dense op after a Flatten sees the input axis split into [channels, block] (each
 * channel owns a contiguous block of inFeatures / width columns).
 */
export function consumerView(rule: ConsumerRule, node: Node, dims: readonly number[], width: number): { viewDims: number[]; inAxis: number; outAxis: number } {
  if (rule.isChannelFirst) return { viewDims: [...dims], inAxis: rule.inAxis(node), outAxis: rule.outAxis(node, rule.inAxis(node)) };
  const inAxis = rule.inAxis(node);
  const block = dims[inAxis]! / width;
  const outputs = dims[rule.outAxis(node, inAxis)]!;
  return inAxis === 0 ? { viewDims: [width, block, outputs], inAxis: 0, outAxis: 2 } : { viewDims: [outputs, width, block], inAxis: 1, outAxis: 0 };
}

/** Where the channels sit when a channel-wise rule looks at a node: counted from the end, and from the start when known. */
export interface ChannelAxis {
  axisFromEnd: number;
  rank?: number | undefined;
}

/** An op between a layer and its consumers that acts on each channel separately, so a merge passes through it. */
export interface ChannelwiseRule {
  /** max(-h) != -max(h): false for max pooling. */
  allowsNegativeScale: boolean;
  /** A constant channel stays the same constant (not so where padding brings in zeros). */
  keepsConstants: (n: Node) => boolean;
  /** Passes any layout, not only channel-first feature maps (Identity, Dropout, Cast). */
  isLayoutFree?: boolean;
  /** Why this instance breaks the pass-through, if it does. */
  check?: (n: Node, at: ChannelAxis) => string | undefined;
  /** The channel axis of the output, counted from the end, when the op drops axes (ReduceMean with keepdims=0). */
  outputAxisFromEnd?: (n: Node, axisFromEnd: number, rank: number | undefined) => number | undefined;
}

/** The reduced axes of a ReduceMean/ReduceSum (attribute before opset 18, input after), or undefined for "all". */
function reducedAxes(n: Node): number[] | undefined {
  const input = n.inputs[1];
  if (input) {
    const t = input.constantTensor();
    return t ? [...t.toFloat64()] : [];
  }
  return n.getInts('axes');
}

/** Global pooling by a reduction: the reduced axes are spatial (never the batch axis or the channels). */
function spatialReduction(n: Node, at: ChannelAxis): string | undefined {
  const axes = reducedAxes(n);
  if (!axes || axes.length === 0) return n.getInt('noop_with_empty_axes', 0) && axes ? undefined : 'reduces over every axis, channels included';
  const rank = at.rank;
  for (const a of axes) {
    const fromEnd = a < 0 ? -a : rank !== undefined ? rank - a : undefined;
    // Without the rank, only axes after the channels are known not to be the batch axis.
    const spatial = fromEnd !== undefined && fromEnd !== at.axisFromEnd && (rank !== undefined ? fromEnd < rank : fromEnd < at.axisFromEnd);
    if (!spatial) return `reduces axis ${a}, which is not a spatial axis`;
  }
  return undefined;
}

/** The channel axis, from the end, after a reduction that drops its axes: those after the channels no longer count. */
function reducedAxisFromEnd(n: Node, axisFromEnd: number, rank: number | undefined): number | undefined {
  if (n.getInt('keepdims', 1)) return axisFromEnd;
  const axes = reducedAxes(n) ?? [];
  const after = axes.filter((a) => (a < 0 ? -a : rank !== undefined ? rank - a : Infinity) < axisFromEnd).length;
  return axisFromEnd - after;
}

const reduction: ChannelwiseRule = {
  allowsNegativeScale: true,
  keepsConstants: () => true,
  isLayoutFree: true,
  check: spatialReduction,
  outputAxisFromEnd: reducedAxisFromEnd,
};

/** Pads on the channel axis (and whether the pads are known). */
function padsChannels(n: Node, at: ChannelAxis): boolean {
  const v = n.inputs[1];
  const pads = v ? (v.constantTensor() ? [...v.constantTensor()!.toFloat64()] : undefined) : n.getInts('pads');
  if (!pads) return true;
  const rank = pads.length / 2;
  const axis = rank - at.axisFromEnd;
  return pads[axis] !== 0 || pads[axis + rank] !== 0;
}

export const channelwiseOps: Record<string, ChannelwiseRule> = {
  Identity: { allowsNegativeScale: true, keepsConstants: () => true, isLayoutFree: true },
  Dropout: { allowsNegativeScale: true, keepsConstants: () => true, isLayoutFree: true },
  // Casting to float16 and back rounds, but keeps each channel apart and scales (up to rounding).
  Cast: { allowsNegativeScale: true, keepsConstants: () => true, isLayoutFree: true },
  MaxPool: { allowsNegativeScale: false, keepsConstants: () => true, check: (n) => (n.outputs.length > 1 && n.outputs[1]!.useCount > 0 ? 'uses MaxPool indices' : undefined) },
  GlobalMaxPool: { allowsNegativeScale: false, keepsConstants: () => true },
  AveragePool: { allowsNegativeScale: true, keepsConstants: (n) => !n.getInt('count_include_pad', 0) || !(n.getInts('pads') ?? []).some((p) => p !== 0) },
  GlobalAveragePool: { allowsNegativeScale: true, keepsConstants: () => true },
  // Global average pooling written as a reduction over the spatial axes (torch's mean([-1, -2])).
  ReduceMean: reduction,
  ReduceSum: reduction,
  Resize: { allowsNegativeScale: true, keepsConstants: () => true },
  Upsample: { allowsNegativeScale: true, keepsConstants: () => true },
  Pad: {
    allowsNegativeScale: true,
    keepsConstants: () => false,
    check: (n, at) => (n.getString('mode', 'constant') !== 'constant' ? `pads with mode "${n.getString('mode', 'constant')}"` : n.inputs[2] && n.inputs[2].constantTensor()?.toFloat64().some((x) => x !== 0) !== false ? 'pads with a non-zero constant value' : padsChannels(n, at) ? 'pads the channel axis' : undefined),
  },
};

/** Elementwise ops a dependency group may pass through and stay positively homogeneous. */
export const homogeneousElementwiseOps: ReadonlySet<string> = new Set(['Relu', 'LeakyRelu', 'Identity', 'Dropout']);

/**
 * Views that turn a channel-first feature map into [batch, features] (channel-major), after which a
 * dense consumer reads each channel as a block of columns. `onlyFeatureMaps`: a Reshape is read
 * as such a view only after a feature map.
 */
export const flatteningViews: Record<string, { accepts: (n: Node) => boolean; onlyFeatureMaps: boolean }> = {
  Flatten: { accepts: (n) => n.getInt('axis', 1) === 1, onlyFeatureMaps: false },
  // A Reshape to [batch, features]: a shape constant of two entries (the first 0, -1 or fixed), or
  // one computed as torch's x.view(x.size(0), -1) writes it (Shape -> Gather -> Concat with -1).
  Reshape: { accepts: (n) => n.inputs[1]?.constantTensor()?.elementCount === 2 || isComputedFlatten(n.inputs[1]), onlyFeatureMaps: true },
};

/** Ops that read a layer but are not linear with constant weights: why each blocks a merge. */
const blockingConsumers: Record<string, { code: BlockerCode; what: string }> = {
  LayerNormalization: { code: 'normaliser', what: 'a LayerNormalization, which normalises across neurons' },
  GroupNormalization: { code: 'normaliser', what: 'a GroupNormalization, which normalises across neurons' },
  InstanceNormalization: { code: 'normaliser', what: 'an InstanceNormalization, which normalises across positions' },
  BatchNormalization: { code: 'normaliser', what: 'a BatchNormalization (fold it into the layer first)' },
  Softmax: { code: 'normaliser', what: 'a Softmax, which normalises across neurons' },
  LogSoftmax: { code: 'normaliser', what: 'a LogSoftmax, which normalises across neurons' },
  ReduceMean: { code: 'normaliser', what: 'a ReduceMean, which mixes neurons (a decomposed LayerNorm?)' },
  ReduceSum: { code: 'normaliser', what: 'a ReduceSum, which mixes neurons' },
  LpNormalization: { code: 'normaliser', what: 'an LpNormalization, which normalises across neurons' },
  Concat: { code: 'concat', what: 'a Concat, which ties its channels to other tensors' },
  Add: { code: 'residual-add', what: 'an Add with a non-constant operand (a residual connection), which ties its channels to other layers' },
  Sub: { code: 'residual-add', what: 'a Sub with a non-constant operand, which ties its channels to other layers' },
  Sum: { code: 'residual-add', what: 'a Sum, which ties its channels to other layers' },
  Mul: { code: 'gate', what: 'a Mul with a non-constant operand (a gate), which scales each channel by data' },
};

/** Why a consumer op that is not linear-with-constant-weights blocks merging, in a user's words. */
export function consumerBlocker(node: Node): Blocker {
  const known = blockingConsumers[node.opType];
  return known
    ? blocker(known.code, `feeds ${known.what} ("${node.label}")`, node)
    : blocker('nonlinear-consumer', `consumer "${node.label}" (${node.opType}) is not a linear layer with constant weights`, node);
}

/**
 * A computed Reshape shape [batch, -1] or [batch, features]: the batch read from the input's shape
 * (torch's x.view(x.size(0), -1); Paddle2ONNX writes the feature count as a constant beside it).
 */
function isComputedFlatten(shape: Value | null | undefined): boolean {
  if (!shape || shape.constantTensor()) return false;
  const values = integerValues(shape);
  return values?.length === 2 && values[0] !== -1 && (values[1] === -1 || (Number.isInteger(values[1]) && values[1]! > 0));
}

/**
 * A Shape node reading a layer's output only for dims other than the channels (the batch size for
 * a flatten, the spatial size for a resize): its result is the same after channels are removed, so
 * it is no consumer of theirs. Every use must pick constant indices (Gather on axis 0, or the
 * Shape's own start/end) that miss the channel axis; with the rank unknown only index 0 (the batch)
 * counts as missing it.
 */
export function shapeSkipsChannels(shape: Node, at: ChannelAxis): boolean {
  if (!shape.is('Shape')) return false;
  const rank = at.rank ?? rankOf(shape.inputs[0]);
  const channel = rank === undefined ? undefined : rank - at.axisFromEnd;
  const misses = (dim: number): boolean => (channel === undefined ? dim === 0 : (dim < 0 ? dim + rank! : dim) !== channel);
  const start = shape.getInt('start', 0);
  const end = shape.attributes.has('end') ? shape.getInt('end', 0) : undefined;
  if (rank !== undefined) {
    const s = start < 0 ? start + rank : start;
    const e = end === undefined ? rank : end < 0 ? end + rank : end;
    if (channel !== undefined && (channel < s || channel >= e)) return true;
  }
  if (start !== 0 || end !== undefined) return false;
  // Follow the shape through Casts to the ops that pick dims from it: Gathers of constant indices,
  // Slices of a constant range (attributes before opset 10, inputs after).
  const picksOthers = (v: Value): boolean => !v.isGraphOutput && v.uses().every(({ node, inputIndex }) => {
    if (inputIndex !== 0) return false;
    if (node.is('Cast')) return picksOthers(node.outputs[0]!);
    if (node.is('Gather') && node.getInt('axis', 0) === 0) {
      const indices = node.inputs[1]?.constantTensor();
      return !!indices && [...indices.toFloat64()].every(misses);
    }
    if (node.is('Slice')) {
      const range = sliceRange(node);
      if (!range || range.from < 0 || range.to < 0 || range.to - range.from > 8) return false;
      return Array.from({ length: Math.max(0, range.to - range.from) }, (_, i) => range.from + i).every(misses);
    }
    return false;
  });
  return picksOthers(shape.outputs[0]!);
}
