// Coupling rules: how one op ties the channels of the tensors around it. A rule returns the
// tensors it couples (each with its channel axis), links between their channel ranges (channel c
// of one is channel c' of another: identity, a Concat or Split offset, a Pad shift), how the
// merge scales relate across the op (equal for Add/Relu/pooling, multiplied for a gate) and which
// channels are constant zeros (channel padding). A new kind of coupling is one entry in
// `couplingRules`; the group search in channel-groups.ts and the group data model do not change.

import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import { evaluateChain, isElementwiseOp } from './elementwise-function.js';
import { channelwiseOps, producerRules, ruleFor } from './layer-rules.js';
import type { Blocker } from './blocker.js';
import { inferRank, normalisationRules, streamReadRules, type StreamRule } from './residual-stream.js';

/**
 * How a member tensor's channels map onto the group's channel indices. Identity: channel c is
 * group channel c (Add, Relu). Offset: channel c is group channel c + offset (a Concat operand,
 * a Split/Slice part). Channel map: channel c is group channel groupChannelOf[c] (anything else).
 * Head blocks: channels are `heads` blocks of `headSize`, and a merge moves whole blocks (attention).
 */
export type IndexMap =
  | { kind: 'identity' }
  | { kind: 'offset'; offset: number }
  | { kind: 'channel-map'; groupChannelOf: readonly number[] }
  | { kind: 'head-blocks'; heads: number; headSize: number };

export const IDENTITY: IndexMap = { kind: 'identity' };

/** One tensor whose channels change with the group. */
export interface GroupMember {
  value: Value;
  /** Axis of `value` that holds the channels, counted from the last (1 = last axis). */
  axisFromEnd: number;
  indexMap: IndexMap;
  /** Channels of this tensor (its extent on the channel axis). */
  width?: number;
  rank?: number;
}

/** Channels [fromStart, fromStart + count) of `from` are channels [toStart, ...) of `to`. */
export interface ChannelLink {
  from: Value;
  fromStart: number;
  to: Value;
  toStart: number;
  count: number;
}

/** What one coupling op contributes to a group. */
export interface Coupling {
  /** `width`, when given, is the member's channel count (else worked out by channelCount). */
  members: { value: Value; axisFromEnd: number; rank?: number; width?: number }[];
  links: ChannelLink[];
  /**
   * How a merge's scale t (h_j = t h_r) relates across the op: 'same' on every member (t a + t b =
   * t (a + b), pooling, Relu), or 'product' (a gate: x_j g_j = (t s) x_r g_r).
   */
  ratio: 'same' | 'product';
  /** Values read by a non-homogeneous op (Clip, HardSwish, Sigmoid): exact merges need t = 1 there. */
  unitRatio?: Value[];
  /** Channels that are constant zeros (padding), as ranges of a member. */
  zeros?: { value: Value; start: number; count: number }[];
  /**
   * A per-channel affine op (inference BatchNormalization on a tensor no conv wrote): output
   * channel c is scale[c] * input c + shift[c], so a merge's scale becomes t scale_j / scale_r and
   * needs shift_j = that times shift_r. `ratio` then relates only the other members.
   */
  affine?: { input: Value; output: Value; scale: Float64Array; shift: Float64Array };
}

/** What a rule sees: the node, the member it is reached from, and that member's channel axis. */
export interface CouplingContext {
  node: Node;
  value: Value;
  axisFromEnd: number;
  rank?: number;
}

export interface CouplingRule {
  /** A name for docs and errors ('residual-add', 'concat', ...). */
  name: string;
  /**
   * 'tie' rules join tensors written by different layers (a layer whose output meets one starts a
   * group); 'pass-through' rules carry a group's channels from one tensor to the next.
   */
  kind: 'tie' | 'pass-through';
  /** The coupling, or undefined when the rule does not apply to this node. */
  couple(context: CouplingContext): Coupling | undefined;
  /**
   * Why a group this node couples can never merge exactly, when it cannot (a normalisation mixes
   * the channels; an embedding table would have to merge too): carried into the group's blockers.
   */
  exactBlocker?(context: CouplingContext): Blocker | undefined;
}

function isStandard(node: Node): boolean {
  return node.domain === '' || node.domain === 'ai.onnx';
}

function dataInputs(node: Node): Value[] {
  return node.inputs.filter((v): v is Value => !!v && !v.constantTensor());
}

/** Constant integers (an input, for opsets that moved attributes to inputs, or an attribute). */
function intsOf(node: Node, input: number, attribute: string): number[] | undefined {
  const v = node.inputs[input];
  if (v) {
    const t = v.constantTensor();
    return t ? [...t.toFloat64()] : undefined;
  }
  return node.getInts(attribute);
}

/** The rank of `v`, from its declared shape, a constant, or the op that writes it. */
export function rankOf(v: Value, depth = 0): number | undefined {
  if (v.shape) return v.shape.length;
  const p = v.producer;
  if (!p || depth > 64) return undefined;
  const weightOp = ruleFor(producerRules, p);
  if (weightOp?.isChannelFirst) return p.inputs[weightOp.weightInput]?.constantTensor()?.dims.length;
  if (p.is('Transpose')) return p.getInts('perm')?.length ?? (p.inputs[0] ? rankOf(p.inputs[0], depth + 1) : undefined);
  if (p.is('ReduceMean') || p.is('ReduceSum') || p.is('Flatten') || p.is('Reshape') || p.is('Squeeze') || p.is('Unsqueeze')) return undefined;
  for (const x of p.inputs) {
    if (!x) continue;
    const r = rankOf(x, depth + 1);
    if (r !== undefined) return r;
  }
  return undefined;
}

/** The extent of `v` on its channel axis (counted from the end), from its shape or the ops that write it. */
export function channelCount(v: Value, axisFromEnd: number, depth = 0): number | undefined {
  const shape = v.shape;
  if (shape && shape.length >= axisFromEnd) {
    const d = shape[shape.length - axisFromEnd]!.value;
    if (d !== undefined) return d;
  }
  const p = v.producer;
  if (!p || depth > 256) return undefined;
  const weightOp = ruleFor(producerRules, p);
  if (weightOp) {
    const dims = p.inputs[weightOp.weightInput]?.constantTensor()?.dims;
    if (!dims) return undefined;
    const rank = weightOp.isChannelFirst ? dims.length : undefined;
    if (weightOp.isChannelFirst ? rank !== undefined && rank - axisFromEnd === 1 : axisFromEnd === 1) return dims[weightOp.outAxis(p)];
    return undefined;
  }
  const like = zerosLikeSource(v);
  if (like) return channelCount(like, axisFromEnd, depth + 1);
  // An embedding lookup: Gather(table [rows, channels], ids) on axis 0 has the table's columns.
  if (p.is('Gather') && p.getInt('axis', 0) === 0) {
    const table = p.inputs[0]?.constantTensor();
    if (table && table.dims.length === 2) return axisFromEnd === 1 ? table.dims[1] : undefined;
  }
  const rank = rankOf(v);
  const axisOf = (a: number, r: number): number => (a < 0 ? a + r : a);
  if (p.is('Concat')) {
    if (rank === undefined) return undefined;
    const inputs = p.inputs.filter((x): x is Value => !!x);
    if (axisOf(p.getInt('axis', 0), rank) === rank - axisFromEnd) {
      let sum = 0;
      for (const x of inputs) {
        const c = channelCount(x, axisFromEnd, depth + 1);
        if (c === undefined) return undefined;
        sum += c;
      }
      return sum;
    }
    return inputs.length ? channelCount(inputs[0]!, axisFromEnd, depth + 1) : undefined;
  }
  if (p.is('Transpose')) {
    const perm = p.getInts('perm');
    if (!perm || !p.inputs[0]) return undefined;
    const inAxis = perm[perm.length - axisFromEnd]!;
    return channelCount(p.inputs[0], perm.length - inAxis, depth + 1);
  }
  if (p.is('Pad') || p.is('Split') || p.is('Slice')) {
    const input = p.inputs[0];
    const inWidth = input ? channelCount(input, axisFromEnd, depth + 1) : undefined;
    const c = input && inWidth !== undefined ? nodeCoupling(p, input, axisFromEnd, rank) : undefined;
    if (!c) return undefined;
    const link = c.links.find((l) => l.to === v);
    const extra = c.zeros?.filter((z) => z.value === v).reduce((s, z) => s + z.count, 0) ?? 0;
    return link ? link.count + extra : undefined;
  }
  if (p.is('ReduceMean') || p.is('ReduceSum')) return undefined;
  const first = p.inputs.find((x) => x && !x.constantTensor());
  return first ? channelCount(first, axisFromEnd, depth + 1) : undefined;
}

/** x when `v` is zeros shaped like x: ConstantOfShape(Shape(x)) with a zero (or no) value, as tf2onnx writes zeros_like. */
export function zerosLikeSource(v: Value): Value | undefined {
  const p = v.producer;
  if (!p || !isStandard(p) || !p.is('ConstantOfShape')) return undefined;
  const fill = p.attributes.get('value');
  if (fill && !(fill.type === 'tensor' && fill.value.toFloat64().every((x) => x === 0))) return undefined;
  const shape = p.inputs[0]?.producer;
  if (!shape || !isStandard(shape) || !shape.is('Shape') || shape.attributes.has('start') || shape.attributes.has('end')) return undefined;
  return shape.inputs[0] ?? undefined;
}

/** Links every value to `to` channel for channel (ops that keep channels in place). */
function identityLinks(values: Value[], to: Value, width: number): ChannelLink[] {
  return values.filter((v) => v !== to).map((from) => ({ from, fromStart: 0, to, toStart: 0, count: width }));
}

function identity(node: Node, values: Value[], axisFromEnd: number, rank: number | undefined, ratio: Coupling['ratio'] = 'same'): Coupling | undefined {
  const out = node.outputs[0]!;
  const width = values.map((v) => channelCount(v, axisFromEnd)).find((w) => w !== undefined);
  if (width === undefined) return undefined;
  return { members: [...values, out].map((value) => ({ value, axisFromEnd, ...(rank !== undefined ? { rank } : {}) })), links: identityLinks(values, out, width), ratio };
}

/** Residual Add / Sub / Sum: (t a) + (t b) = t (a + b), channel c of every operand is one channel. */
const residualAdd: CouplingRule = {
  name: 'residual-add',
  kind: 'tie',
  couple({ node, axisFromEnd, rank }) {
    if (!isStandard(node) || !(node.is('Add') || node.is('Sub') || node.is('Sum'))) return undefined;
    const inputs = dataInputs(node);
    if (inputs.length < 2 || inputs.length !== node.inputs.filter(Boolean).length) return undefined;
    // Every operand must show the same channel count: an operand broadcast along the channels (a
    // mean over them, as in a decomposed LayerNorm) mixes channels instead of tying them.
    const widths = inputs.map((v) => channelCount(v, axisFromEnd));
    if (widths.some((w) => w === undefined || w !== widths[0])) return undefined;
    return identity(node, inputs, axisFromEnd, rank);
  },
};

/**
 * A gate: Mul of two computed tensors with the same channels (squeeze-and-excitation, x * sigmoid(x)).
 * Channel c of the output is x_c g_c, so scales multiply. A factor with one channel (a spatial
 * gate) scales every channel alike and is not a member.
 */
const gateMul: CouplingRule = {
  name: 'gate-mul',
  kind: 'tie',
  couple({ node, axisFromEnd, rank }) {
    if (!isStandard(node) || !node.is('Mul')) return undefined;
    const inputs = dataInputs(node);
    if (inputs.length !== 2 || node.inputs.length !== 2) return undefined;
    const widths = inputs.map((v) => channelCount(v, axisFromEnd));
    if (widths[0] === undefined || widths[1] === undefined) return undefined;
    if (widths[0] === widths[1]) return identity(node, inputs, axisFromEnd, rank, 'product');
    const wide = widths[0] === 1 ? inputs[1]! : widths[1] === 1 ? inputs[0]! : undefined;
    return wide ? identity(node, [wide], axisFromEnd, rank) : undefined;
  },
};

function isZeroConstant(v: Value): boolean {
  const t = v.constantTensor();
  return !!t && t.toFloat64().every((x) => x === 0);
}

/** Concat: on the channel axis, operand i's channel c is the output's channel offset_i + c; on another axis, channels stay. */
const concat: CouplingRule = {
  name: 'concat',
  kind: 'tie',
  couple({ node, axisFromEnd, rank }) {
    if (!isStandard(node) || !node.is('Concat')) return undefined;
    const out = node.outputs[0]!;
    const inputs = node.inputs.filter((v): v is Value => !!v);
    const r = rank ?? rankOf(out) ?? inputs.map((v) => rankOf(v)).find((x) => x !== undefined);
    const axis = node.getInt('axis', 0);
    const onChannels = axis < 0 ? -axis === axisFromEnd : r !== undefined && axis === r - axisFromEnd;
    if (!onChannels) {
      if (axis >= 0 && r === undefined) return undefined;
      if (inputs.some((v) => v.constantTensor())) return undefined;
      return identity(node, inputs, axisFromEnd, r);
    }
    const links: ChannelLink[] = [];
    const zeros: NonNullable<Coupling['zeros']> = [];
    let offset = 0;
    for (const v of inputs) {
      const w = channelCount(v, axisFromEnd);
      if (w === undefined) return undefined;
      if (v.constantTensor() || zerosLikeSource(v)) {
        if (v.constantTensor() && !isZeroConstant(v)) return undefined;
        zeros.push({ value: v, start: 0, count: w }, { value: out, start: offset, count: w });
      }
      links.push({ from: v, fromStart: 0, to: out, toStart: offset, count: w });
      offset += w;
    }
    return { members: [...inputs, out].map((value) => ({ value, axisFromEnd, ...(r !== undefined ? { rank: r } : {}) })), links, ratio: 'same', ...(zeros.length ? { zeros } : {}) };
  },
};

/** Split: on the channel axis, output i holds input channels [offset_i, offset_i + size_i). */
const split: CouplingRule = {
  name: 'split',
  kind: 'pass-through',
  couple({ node, axisFromEnd, rank }) {
    if (!isStandard(node) || !node.is('Split') || !node.inputs[0]) return undefined;
    const input = node.inputs[0];
    const r = rank ?? rankOf(input);
    if (r === undefined) return undefined;
    const axis = node.getInt('axis', 0);
    const outs = node.outputs;
    const member = (value: Value) => ({ value, axisFromEnd, rank: r });
    if ((axis < 0 ? axis + r : axis) !== r - axisFromEnd) {
      const width = channelCount(input, axisFromEnd);
      if (width === undefined) return undefined;
      return { members: [input, ...outs].map(member), links: outs.map((to) => ({ from: input, fromStart: 0, to, toStart: 0, count: width })), ratio: 'same' };
    }
    const width = channelCount(input, axisFromEnd);
    if (width === undefined) return undefined;
    let sizes = intsOf(node, 1, 'split');
    if (!sizes) {
      const n = outs.length;
      const each = Math.ceil(width / n);
      sizes = outs.map((_, i) => Math.max(0, Math.min(each, width - i * each)));
    }
    if (sizes.length !== outs.length || sizes.reduce((a, b) => a + b, 0) !== width) return undefined;
    let offset = 0;
    const links = outs.map((to, i) => {
      const link = { from: input, fromStart: offset, to, toStart: 0, count: sizes![i]! };
      offset += sizes![i]!;
      return link;
    });
    return { members: [input, ...outs].map(member), links, ratio: 'same' };
  },
};

/** Slice: on the channel axis (step 1), the output holds input channels [start, end). */
const slice: CouplingRule = {
  name: 'slice',
  kind: 'pass-through',
  couple({ node, axisFromEnd, rank }) {
    if (!isStandard(node) || !node.is('Slice') || !node.inputs[0]) return undefined;
    const input = node.inputs[0];
    const out = node.outputs[0]!;
    const r = rank ?? rankOf(input);
    const starts = intsOf(node, 1, 'starts');
    const ends = intsOf(node, 2, 'ends');
    if (r === undefined || !starts || !ends) return undefined;
    const axes = intsOf(node, 3, 'axes') ?? starts.map((_, i) => i);
    const steps = node.inputs[4] ? intsOf(node, 4, 'steps') : starts.map(() => 1);
    if (!steps) return undefined;
    const width = channelCount(input, axisFromEnd);
    if (width === undefined) return undefined;
    const member = (value: Value) => ({ value, axisFromEnd, rank: r });
    const i = axes.findIndex((a) => (a < 0 ? a + r : a) === r - axisFromEnd);
    if (i < 0) return { members: [input, out].map(member), links: [{ from: input, fromStart: 0, to: out, toStart: 0, count: width }], ratio: 'same' };
    if (steps[i] !== 1) return undefined;
    const clamp = (x: number): number => Math.max(0, Math.min(width, x < 0 ? x + width : x));
    const start = clamp(starts[i]!);
    const end = clamp(ends[i]!);
    if (end <= start) return undefined;
    return { members: [input, out].map(member), links: [{ from: input, fromStart: start, to: out, toStart: 0, count: end - start }], ratio: 'same' };
  },
};

/** Pad with zeros: spatial padding keeps channels; padding the channel axis adds constant-zero channels. */
const pad: CouplingRule = {
  name: 'pad',
  kind: 'pass-through',
  couple({ node, axisFromEnd, rank }) {
    if (!isStandard(node) || !node.is('Pad') || !node.inputs[0]) return undefined;
    const input = node.inputs[0];
    const out = node.outputs[0]!;
    const pads = intsOf(node, 1, 'pads');
    const mode = node.getString('mode', 'constant');
    const value = node.inputs[2];
    if (!pads || (value && !isZeroConstant(value)) || node.getFloat('value', 0) !== 0 || node.inputs[3]) return undefined;
    const r = rank ?? pads.length / 2;
    if (pads.length !== 2 * r) return undefined;
    const width = channelCount(input, axisFromEnd);
    if (width === undefined) return undefined;
    const axis = r - axisFromEnd;
    const before = pads[axis]!;
    const after = pads[axis + r]!;
    const member = (v: Value) => ({ value: v, axisFromEnd, rank: r });
    if (before === 0 && after === 0) return { members: [input, out].map(member), links: [{ from: input, fromStart: 0, to: out, toStart: 0, count: width }], ratio: 'same' };
    if (mode !== 'constant' || before < 0 || after < 0) return undefined;
    const zeros = [{ value: out, start: 0, count: before }, { value: out, start: before + width, count: after }].filter((z) => z.count > 0);
    return { members: [input, out].map(member), links: [{ from: input, fromStart: 0, to: out, toStart: before, count: width }], ratio: 'same', zeros };
  },
};

/** Transpose: the channel axis moves to where the permutation puts it (NHWC <-> NCHW). */
const transpose: CouplingRule = {
  name: 'transpose',
  kind: 'pass-through',
  couple({ node, value, axisFromEnd, rank }) {
    if (!isStandard(node) || !node.is('Transpose') || !node.inputs[0]) return undefined;
    const input = node.inputs[0];
    const out = node.outputs[0]!;
    const perm = node.getInts('perm') ?? (rank !== undefined ? [...Array(rank).keys()].reverse() : undefined);
    if (!perm) return undefined;
    const r = perm.length;
    let inAxisFromEnd: number;
    let outAxisFromEnd: number;
    if (value === input) {
      inAxisFromEnd = axisFromEnd;
      outAxisFromEnd = r - perm.indexOf(r - axisFromEnd);
    } else {
      outAxisFromEnd = axisFromEnd;
      inAxisFromEnd = r - perm[r - axisFromEnd]!;
    }
    const width = channelCount(input, inAxisFromEnd) ?? channelCount(out, outAxisFromEnd);
    if (width === undefined) return undefined;
    return { members: [{ value: input, axisFromEnd: inAxisFromEnd, rank: r }, { value: out, axisFromEnd: outAxisFromEnd, rank: r }], links: [{ from: input, fromStart: 0, to: out, toStart: 0, count: width }], ratio: 'same' };
  },
};

const probePoints = Float64Array.from({ length: 81 }, (_, i) => (i - 40) / 5);

/**
 * Whether an elementwise node, with its other inputs scalar constants, keeps positive scales
 * (f(t x) = t f(x): Relu, Mul by a constant) or not (Clip, Sigmoid, HardSwish, adding a constant),
 * worked out numerically as the activation tracer does. Undefined when it is not such a node.
 */
function elementwiseScaling(node: Node, input: Value): 'same' | 'unit' | undefined {
  if (!isElementwiseOp(node) || node.outputs.length < 1) return undefined;
  const constants = new Map<Value, Float64Array>();
  for (const v of node.inputs) {
    if (!v || v === input) continue;
    const t = v.constantTensor();
    if (!t || t.elementCount !== 1) return undefined;
    constants.set(v, t.toFloat64());
  }
  if (node.inputs.filter((v) => v === input).length !== 1) return undefined;
  const f = (xs: Float64Array): Float64Array => evaluateChain([node], input, node.outputs[0]!, constants, 0, xs);
  try {
    const fx = f(probePoints);
    for (const t of [0.37, 2.3]) {
      const ftx = f(probePoints.map((x) => t * x));
      if (!ftx.every((v, i) => Math.abs(v - t * fx[i]!) <= 1e-9 * (1 + Math.abs(v)))) return 'unit';
    }
    return 'same';
  } catch {
    return undefined;
  }
}

/**
 * An op that keeps channels apart: elementwise with scalar constants (Relu, Clip, Sigmoid, Cast,
 * Mul by a constant) or channel-wise (pooling, global pooling, Resize, Cast). Input 0 and the output
 * are one; a non-homogeneous op asks for t = 1 at its input for exact merges.
 */
const passThrough: CouplingRule = {
  name: 'pass-through',
  kind: 'pass-through',
  couple({ node, value, axisFromEnd, rank }) {
    if (!isStandard(node)) return undefined;
    const input = node.inputs[0];
    if (!input || (value !== input && value !== node.outputs[0])) return undefined;
    const scaling = elementwiseScaling(node, input);
    if (scaling) {
      const c = identity(node, [input], axisFromEnd, rank);
      return c && scaling === 'unit' ? { ...c, unitRatio: [input] } : c;
    }
    const op = ruleFor(channelwiseOps, node);
    if (!op || op.check?.(node, { rank: rank ?? rankOf(input), axisFromEnd })) return undefined;
    const out = node.outputs[0]!;
    const width = channelCount(input, axisFromEnd);
    if (width === undefined) return undefined;
    const outAxisFromEnd = op.outputAxisFromEnd?.(node, axisFromEnd, rank ?? rankOf(input)) ?? axisFromEnd;
    if (value === out && outAxisFromEnd !== axisFromEnd) {
      // Reached from the output: its channel axis is counted on the output, not the input.
      return undefined;
    }
    const members = [{ value: input, axisFromEnd, ...(rank !== undefined ? { rank } : {}) }, { value: out, axisFromEnd: outAxisFromEnd }];
    return { members, links: [{ from: input, fromStart: 0, to: out, toStart: 0, count: width }], ratio: 'same' };
  },
};

/**
 * Inference BatchNormalization where no conv precedes it to fold into (DenseNet's BN after a
 * Concat, pre-activation ResNets): a per-channel affine map y_c = a_c x_c + b_c.
 */
const channelAffine: CouplingRule = {
  name: 'batch-norm',
  kind: 'pass-through',
  couple({ node, value, axisFromEnd, rank }) {
    if (!isStandard(node) || !node.is('BatchNormalization') || node.outputs.filter((o) => o.useCount > 0 || o.isGraphOutput).length !== 1 || node.getInt('training_mode', 0)) return undefined;
    const input = node.inputs[0];
    const out = node.outputs[0]!;
    if (!input || (value !== input && value !== out)) return undefined;
    const r = rank ?? rankOf(input);
    if (r === undefined || r - axisFromEnd !== 1) return undefined;
    // The rewrite cuts these per-channel constants: they must be this node's alone.
    if (node.inputs.slice(1, 5).some((v) => !v || v.useCount !== 1 || v.isGraphOutput)) return undefined;
    const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((i) => node.inputs[i]?.constantTensor()?.toFloat64());
    if (!gamma || !beta || !mean || !variance) return undefined;
    const width = gamma.length;
    if ([beta, mean, variance].some((x) => x.length !== width) || channelCount(input, axisFromEnd) !== width) return undefined;
    const eps = node.getFloat('epsilon', 1e-5);
    const scale = gamma.map((g, c) => g / Math.sqrt(variance[c]! + eps));
    const shift = beta.map((b, c) => b - mean[c]! * scale[c]!);
    const member = (v: Value) => ({ value: v, axisFromEnd, rank: r });
    return { members: [member(input), member(out)], links: [{ from: input, fromStart: 0, to: out, toStart: 0, count: width }], ratio: 'same', affine: { input, output: out, scale, shift } };
  },
};

/**
 * zeros_like: ConstantOfShape(Shape(x)) is reached from its output (a Concat operand padding the
 * channels): all its channels are constant zeros, and a rewrite gives it the count it keeps.
 */
const zerosLike: CouplingRule = {
  name: 'zeros-like',
  kind: 'pass-through',
  couple({ node, value, axisFromEnd, rank }) {
    if (!isStandard(node) || !node.is('ConstantOfShape') || value !== node.outputs[0] || !zerosLikeSource(value)) return undefined;
    const width = channelCount(value, axisFromEnd);
    if (width === undefined) return undefined;
    return { members: [{ value, axisFromEnd, ...(rank !== undefined ? { rank } : {}) }], links: [], ratio: 'same', zeros: [{ value, start: 0, count: width }] };
  },
};

/** Shape(x) read for a zeros_like: it reads no channel values, so it only carries x's new shape. */
const shapeOfZerosLike: CouplingRule = {
  name: 'shape-of',
  kind: 'pass-through',
  couple({ node, value, axisFromEnd, rank }) {
    if (!isStandard(node) || !node.is('Shape') || node.inputs[0] !== value) return undefined;
    const readers = node.outputs[0]!.uses();
    if (readers.length === 0 || node.outputs[0]!.isGraphOutput || !readers.every((u) => u.node.is('ConstantOfShape') && zerosLikeSource(u.node.outputs[0]!) === value)) return undefined;
    return { members: [{ value, axisFromEnd, ...(rank !== undefined ? { rank } : {}) }], links: [], ratio: 'same' };
  },
};

/**
 * The coupling rules, tried in order (put a specific rule before a general one). Adding a kind of
 * coupling is adding an entry here (or passing a list to findChannelGroups).
 */
/**
 * A residual-stream rule (residual-stream.ts, issue 10) as a coupling rule: its tensors are one
 * channel for channel, with scales the same on each; its exact blocker is kept.
 */
function streamCoupling(rule: StreamRule): CouplingRule {
  const wrapped: CouplingRule = {
    name: rule.name,
    kind: rule.kind,
    couple(context) {
      const found = rule.couple(context);
      if (!found) return undefined;
      const members = found.map((m) => {
        const rank = inferRank(m.value) ?? rankOf(m.value) ?? (m.value === context.value ? context.rank : undefined);
        return { value: m.value, axisFromEnd: m.axisFromEnd, ...(rank !== undefined ? { rank } : {}) };
      });
      if (members.length < 2) return { members, links: [], ratio: 'same' };
      const width = members.map((m) => channelCount(m.value, m.axisFromEnd)).find((w) => w !== undefined);
      if (width === undefined) return undefined;
      const to = members[0]!.value;
      // One width for all (exporters wrap norm weights in Identity nodes channelCount cannot see through).
      return { members: members.map((m) => ({ ...m, width })), links: members.slice(1).map((m) => ({ from: m.value, fromStart: 0, to, toStart: 0, count: width })), ratio: 'same' };
    },
    ...(rule.exactBlocker ? { exactBlocker: (context: CouplingContext) => rule.exactBlocker!(context) } : {}),
  };
  streamPassThroughs.add(wrapped);
  return wrapped;
}

const streamPassThroughs = new WeakSet<CouplingRule>();

/**
 * Whether a layer whose output `rule` couples starts a group. A residual-stream pass-through (a
 * LayerNorm after one layer, an embedding, a Shape read) does not on its own: it only carries a
 * group that ties start (a lone fc -> LayerNorm stays a layer blocked by its normalisation).
 */
export function startsGroup(rule: CouplingRule): boolean {
  return rule.kind === 'tie' || !(streamPassThroughs.has(rule) && rule.kind === 'pass-through');
}

export const couplingRules: readonly CouplingRule[] = [
  residualAdd,
  // A transformer's normalisations (issue 10) before the general rules: their elementwise steps
  // (Pow, Mul by a 1-channel statistic) would otherwise pass as channel-wise ops or gates.
  ...normalisationRules.map(streamCoupling),
  gateMul, concat, split, slice, pad, transpose, channelAffine, zerosLike, shapeOfZerosLike, passThrough,
  // Embedding tables, position selects, Shape reads of the residual stream.
  ...streamReadRules.map(streamCoupling),
];

/** The coupling `node` makes, reached from `value`, by the first rule that applies. */
function nodeCoupling(node: Node, value: Value, axisFromEnd: number, rank: number | undefined, rules: readonly CouplingRule[] = couplingRules): Coupling | undefined {
  for (const rule of rules) {
    const c = rule.couple({ node, value, axisFromEnd, ...(rank !== undefined ? { rank } : {}) });
    if (c) return c;
  }
  return undefined;
}

/** The first rule of `rules` that couples `node`'s channels (reached from `value`), with what it couples. */
export function coupleAt(node: Node, value: Value, axisFromEnd: number, rank?: number, rules: readonly CouplingRule[] = couplingRules): { rule: CouplingRule; coupling: Coupling } | undefined {
  for (const rule of rules) {
    const coupling = rule.couple({ node, value, axisFromEnd, ...(rank !== undefined ? { rank } : {}) });
    if (coupling) return { rule, coupling };
  }
  return undefined;
}
