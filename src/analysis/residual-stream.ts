// The residual stream of a transformer as one dependency group: its hidden channels are written by
// the embedding tables and every block's output projection, tied by the residual Adds, carried
// through the normalisations (LayerNorm, RMSNorm, decomposed or fused, com.microsoft
// SkipLayerNormalization) and read by every input projection. These coupling rules let the group
// search (channel-groups.ts) walk all of it. A normalisation divides each position by a statistic
// of all its channels, so no merge of stream channels is exact: the group carries a
// `normalisation` blocker and can only ever be merged approximately (refit, verified). Reads the
// IR only; runs nothing.
//
//   embed (Gather) -> x0 -> Add -> x1 -> Add -> x2 -> RMSNorm -> lm_head
//                      \-> RMSNorm -> q/k/v ... o_proj -/  \-> RMSNorm -> gate*up ... down -/

import { isFloatType } from '../ir/data-type.js';
import type { Node } from '../ir/node.js';
import type { Tensor } from '../ir/tensor.js';
import type { Value } from '../ir/value.js';
import { blocker, type Blocker } from './blocker.js';
import type { CouplingContext } from './coupling-rules.js';

/** A tensor a stream rule couples, channel c to channel c (coupling-rules.ts links them). */
export interface StreamMember {
  value: Value;
  axisFromEnd: number;
}

/**
 * A residual-stream rule: the tensors it couples one to one (identity), or undefined when it does
 * not apply. coupling-rules.ts wraps each into a CouplingRule (channel counts, links, ranks).
 */
export interface StreamRule {
  name: string;
  kind: 'tie' | 'pass-through';
  couple(context: CouplingContext): StreamMember[] | undefined;
  exactBlocker?(context: CouplingContext): Blocker | undefined;
}

const MICROSOFT = 'com.microsoft';

function isStandard(node: Node): boolean {
  return node.domain === '' || node.domain === 'ai.onnx';
}

/** A constant, or the Identity of one (torch writes an Identity for each deduplicated initializer). */
function isConstant(v: Value | null | undefined): boolean {
  if (!v) return false;
  if (v.constantTensor()) return true;
  const p = v.producer;
  return !!p && p.opType === 'Identity' && !!p.inputs[0]?.constantTensor();
}

const RANK_KEEPING = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Sqrt', 'Reciprocal', 'Cast', 'Identity', 'Erf', 'Tanh', 'Relu', 'Sigmoid', 'Softmax', 'Where', 'Neg', 'Dropout', 'LayerNormalization', 'SkipLayerNormalization', 'SimplifiedLayerNormalization', 'SkipSimplifiedLayerNormalization', 'RMSNormalization']);

/**
 * The rank of `v`: declared, or worked out through the ops a transformer's stream passes
 * (elementwise ops broadcast to the larger rank, MatMul, kept-dims means, embedding Gathers).
 * Exporters rarely declare the shapes of intermediate values.
 */
export function inferRank(v: Value, depth = 0): number | undefined {
  if (v.shape) return v.shape.length;
  const t = v.constantTensor();
  if (t) return t.dims.length;
  const p = v.producer;
  if (!p || depth > 400 || p.outputs[0] !== v) return undefined;
  const ranks = (values: readonly (Value | null)[]): (number | undefined)[] => values.map((x) => (x ? inferRank(x, depth + 1) : 0));
  if (RANK_KEEPING.has(p.opType) || p.opType === 'MatMul') {
    // Broadcasting takes the larger rank; an operand of unknown rank (a Reshape's output) is taken
    // not to raise it, as in a stream where every operand has the stream's rank.
    const known = ranks(p.inputs.slice(0, p.opType.includes('Normalization') ? 1 : undefined)).filter((r): r is number => r !== undefined);
    return known.length ? Math.max(...known) : undefined;
  }
  if (p.opType === 'ReduceMean' && p.getInt('keepdims', 1) === 1) return p.inputs[0] ? inferRank(p.inputs[0], depth + 1) : undefined;
  if (p.opType === 'Gather') {
    const [data, index] = ranks(p.inputs.slice(0, 2));
    return data === undefined || index === undefined ? undefined : data + index - 1;
  }
  return undefined;
}

/** The axes a Reduce* node reduces (attribute before opset 18, input 1 after); undefined when unknown. */
function reduceAxes(node: Node): number[] | undefined {
  const attribute = node.getInts('axes');
  if (attribute) return attribute;
  const input = node.inputs[1]?.constantTensor();
  return input ? Array.from(input.toBigInt64(), Number) : undefined;
}

/** True when `node` reduces exactly the channel axis (counted from the end) of `v`, keeping it. */
function reducesChannels(node: Node, v: Value, axisFromEnd: number): boolean {
  if (node.getInt('keepdims', 1) !== 1) return false;
  const axes = reduceAxes(node);
  if (!axes || axes.length !== 1) return false;
  const rank = inferRank(v);
  return axes[0] === -axisFromEnd || (rank !== undefined && axes[0] === rank - axisFromEnd);
}

/** Elementwise ops a decomposed LayerNorm / RMSNorm is written with (torch, TF, hand-written). */
const NORM_OPS = new Set(['Pow', 'Mul', 'Sub', 'Div', 'Add', 'Sqrt', 'Reciprocal', 'Cast', 'Identity', 'ReduceMean']);

/** A normalisation over the channels of `input`: its nodes, its normalised output, its per-channel constants. */
export interface NormalisationMatch {
  kind: 'decomposed' | 'fused';
  input: Value;
  output: Value;
  nodes: Node[];
  /** The node users know the norm by (the fused op, or the last node of the decomposition). */
  node: Node;
}

/**
 * A decomposed normalisation reading `x`: the nodes after x that compute only from x and
 * constants with the elementwise ops and channel means of a LayerNorm or RMSNorm, with at least
 * one mean over the channel axis, and exactly one value read from outside (the normalised output).
 */
export function matchDecomposedNormalisation(x: Value, axisFromEnd: number): NormalisationMatch | undefined {
  const graph = x.graph;
  const region = new Set<Value>([x]);
  const nodes: Node[] = [];
  let reductions = 0;
  const start = x.producer ? graph.nodes.indexOf(x.producer) + 1 : 0;
  for (let i = start; i < graph.nodes.length; i++) {
    const node = graph.nodes[i]!;
    if (!isStandard(node) || !NORM_OPS.has(node.opType) || node.outputs.length !== 1) continue;
    const data = node.opType === 'ReduceMean' ? node.inputs.slice(0, 1) : node.inputs;
    if (!data.some((v) => v && region.has(v))) continue;
    if (!data.every((v) => !v || region.has(v) || isConstant(v))) continue;
    if (node.opType === 'ReduceMean') {
      if (!reducesChannels(node, node.inputs[0]!, axisFromEnd)) continue;
      reductions++;
    }
    nodes.push(node);
    region.add(node.outputs[0]!);
  }
  if (reductions === 0) return undefined;
  const inRegion = new Set(nodes);
  const exits = [...region].filter((v) => v !== x && (v.isGraphOutput || v.uses().some((u) => !inRegion.has(u.node))));
  if (exits.length !== 1) return undefined;
  const output = exits[0]!;
  // The output must come after a channel mean (a LayerNorm, not a bare elementwise op on x).
  const seen = new Set<Node>();
  let afterMean = false;
  const visit = (v: Value): void => {
    const p = v.producer;
    if (!p || !inRegion.has(p) || seen.has(p)) return;
    seen.add(p);
    if (p.opType === 'ReduceMean') afterMean = true;
    p.inputs.forEach((w) => w && visit(w));
  };
  visit(output);
  if (!afterMean) return undefined;
  const used = nodes.filter((n) => seen.has(n));
  return { kind: 'decomposed', input: x, output, nodes: used, node: output.producer! };
}

/** Fused normalisations over the last axis: op -> whether it also adds a skip input (a residual tie). */
const fusedNorms: Record<string, { domain: string; isSkip: boolean }> = {
  LayerNormalization: { domain: '', isSkip: false },
  RMSNormalization: { domain: '', isSkip: false },
  SimplifiedLayerNormalization: { domain: '', isSkip: false },
  SkipLayerNormalization: { domain: MICROSOFT, isSkip: true },
  SkipSimplifiedLayerNormalization: { domain: MICROSOFT, isSkip: true },
};

function fusedNorm(node: Node): { isSkip: boolean } | undefined {
  const known = Object.hasOwn(fusedNorms, node.opType) ? fusedNorms[node.opType] : undefined;
  if (!known) return undefined;
  const domain = node.domain === 'ai.onnx' ? '' : node.domain;
  // LayerNormalization-like ops are also exported under com.microsoft by onnxruntime's fusions.
  return domain === known.domain || domain === MICROSOFT ? known : undefined;
}

/** One message for every normalisation of a group (reports print each message once), naming the first. */
function normalisationBlocker(node: Node): Blocker {
  return blocker('normalisation', `normalisations (LayerNorm, RMSNorm) read and write its channels, mixing them, so it merges only approximately (least-squares refit, verified), never exactly`, node);
}

/** The decomposed normalisation that `node` belongs to, found from its data inputs (a few steps back). */
function decomposedAround(node: Node, axisFromEnd: number): NormalisationMatch | undefined {
  const candidates: Value[] = [];
  const seen = new Set<Node>();
  const walk = (n: Node, depth: number): void => {
    if (seen.has(n) || depth > 12) return;
    seen.add(n);
    for (const v of n.inputs) {
      if (!v || isConstant(v)) continue;
      if (!candidates.includes(v)) candidates.push(v);
      const p = v.producer;
      if (p && isStandard(p) && NORM_OPS.has(p.opType)) walk(p, depth + 1);
    }
  };
  walk(node, 0);
  for (const x of candidates) {
    const match = matchDecomposedNormalisation(x, axisFromEnd);
    if (match && match.nodes.includes(node)) return match;
  }
  return undefined;
}

/**
 * LayerNorm / RMSNorm (fused, or decomposed into means and elementwise ops): the input's channels
 * and the normalised output's are the same channels. Exact merges are blocked (`normalisation`).
 */
const normalisation: StreamRule & { exactBlocker: (context: CouplingContext) => Blocker | undefined } = {
  name: 'normalisation',
  kind: 'pass-through',
  couple({ node, axisFromEnd }) {
    const fused = fusedNorm(node);
    if (fused && !fused.isSkip) {
      if (axisFromEnd !== 1 || node.getInt('axis', -1) !== -1 || !node.inputs[0] || isConstant(node.inputs[0])) return undefined;
      return [node.inputs[0], node.outputs[0]!].map((value) => ({ value, axisFromEnd }));
    }
    if (fused || !isStandard(node) || !NORM_OPS.has(node.opType)) return undefined;
    const match = decomposedAround(node, axisFromEnd);
    return match ? [match.input, match.output].map((value) => ({ value, axisFromEnd })) : undefined;
  },
  exactBlocker({ node, axisFromEnd }) {
    return normalisationBlocker(fusedNorm(node) ? node : (decomposedAround(node, axisFromEnd)?.node ?? node));
  },
};

/**
 * com.microsoft SkipLayerNormalization(input, skip, gamma, beta, bias) -> (output, mean, inv_std,
 * input + skip + bias): a residual Add and a LayerNorm in one node, so it ties input, skip and the
 * sum, and carries them to the normalised output.
 */
const skipNormalisation: StreamRule & { exactBlocker: (context: CouplingContext) => Blocker | undefined } = {
  name: 'skip-normalisation',
  kind: 'tie',
  couple({ node, axisFromEnd }) {
    if (!fusedNorm(node)?.isSkip || axisFromEnd !== 1) return undefined;
    const values = [node.inputs[0], node.inputs[1], node.outputs[0], node.outputs[3]].filter((v): v is Value => !!v && !isConstant(v) && (v.producer !== node || v.useCount > 0 || v.isGraphOutput));
    return values.map((value) => ({ value, axisFromEnd }));
  },
  exactBlocker({ node }) {
    return normalisationBlocker(node);
  },
};

/**
 * An embedding lookup, Gather(table, ids) on axis 0 of a constant [rows, channels] table: the
 * table's columns write the stream's channels (token and position embeddings). The group takes it
 * as a source; exact merges would have to merge the table's columns too, which is not done
 * (`embedding`).
 */
const embedding: StreamRule & { exactBlocker: (context: CouplingContext) => Blocker | undefined } = {
  name: 'embedding',
  kind: 'pass-through',
  couple({ node, axisFromEnd }) {
    if (!isStandard(node) || node.opType !== 'Gather' || node.getInt('axis', 0) !== 0 || axisFromEnd !== 1) return undefined;
    const table = node.inputs[0]?.constantTensor();
    if (!table || table.dims.length !== 2) return undefined;
    return [{ value: node.outputs[0]!, axisFromEnd }];
  },
  exactBlocker({ node }) {
    return blocker('embedding', `embedding table "${node.inputs[0]?.name ?? ''}" ("${node.label}") writes the channels; its columns are not merged`, node);
  },
};

/** The int64 scalar or 1-element constant `v` holds, if any. */
function constantIndex(v: Value | null | undefined): number | undefined {
  const t = v?.constantTensor();
  if (!t || t.elementCount !== 1) return undefined;
  return Number(t.toBigInt64()[0]);
}

/**
 * Gather or Slice on an axis that is not the channel axis (the first token, a window of
 * positions): every channel is kept, in order.
 */
const positionSelect: StreamRule = {
  name: 'position-select',
  kind: 'pass-through',
  couple({ node, axisFromEnd }) {
    if (!isStandard(node) || (node.opType !== 'Gather' && node.opType !== 'Slice')) return undefined;
    const data = node.inputs[0];
    if (!data || isConstant(data)) return undefined;
    const rank = inferRank(data);
    const channelAxis = (axis: number): boolean => axis === -axisFromEnd || (rank !== undefined && axis === rank - axisFromEnd);
    if (node.opType === 'Gather') {
      const axis = node.getInt('axis', 0);
      const index = node.inputs[1]?.constantTensor();
      if (channelAxis(axis) || rank === undefined || axis < 0 || !index) return undefined;
      // A scalar index drops the axis; the channel axis stays last-counted only when it is after it.
      if (index.dims.length === 0 && rank - axis <= axisFromEnd) return undefined;
      return [{ value: node.outputs[0]!, axisFromEnd }, { value: data, axisFromEnd }];
    }
    const axes = node.inputs[3]?.constantTensor();
    if (!axes) return undefined;
    if (Array.from(axes.toBigInt64(), Number).some(channelAxis)) return undefined;
    return [{ value: data, axisFromEnd }, { value: node.outputs[0]!, axisFromEnd }];
  },
};

/**
 * Shape(x) reads only x's dimensions; harmless when each use picks a dimension other than the
 * channel axis (the batch and sequence sizes attention reshapes by). It couples nothing.
 */
const shapeRead: StreamRule = {
  name: 'shape-read',
  kind: 'pass-through',
  couple({ node, axisFromEnd }) {
    if (!isStandard(node) || node.opType !== 'Shape' || node.getInt('start', 0) !== 0 || node.getInts('end')) return undefined;
    const rank = node.inputs[0] ? inferRank(node.inputs[0]) : undefined;
    if (rank === undefined) return undefined;
    const channel = rank - axisFromEnd;
    const out = node.outputs[0]!;
    if (out.isGraphOutput) return undefined;
    const harmless = out.uses().every(({ node: reader, inputIndex }) => {
      if (reader.opType !== 'Gather' || inputIndex !== 0) return false;
      const index = constantIndex(reader.inputs[1]);
      return index !== undefined && index !== channel && index !== channel - rank;
    });
    return harmless ? ([] as StreamMember[]) : undefined;
  },
};

/** Normalisations: tried before the general rules (their steps would pass as channel-wise ops). */
export const normalisationRules: readonly StreamRule[] = [skipNormalisation, normalisation];
/** Embedding tables, position selects and Shape reads: tried after the general rules. */
export const streamReadRules: readonly StreamRule[] = [embedding, positionSelect, shapeRead];
/** The residual-stream rules, in the order the group search tries them. */
export const residualStreamRules: readonly StreamRule[] = [...normalisationRules, ...streamReadRules];

/**
 * One normalisation of a residual stream as the stream rewrite (rewrite/merge-stream.ts) sees it:
 * y_c = gain_c * n_c + bias_c, with n = x / rms(x) ('rms') or (x - mean(x)) / std(x) ('layer').
 */
export interface StreamNormalisation {
  kind: 'rms' | 'layer';
  /** The node users know it by (the fused op, or the last node of the decomposition). */
  node: Node;
  input: Value;
  output: Value;
  /** The fused op alone, or every node of the decomposition. */
  nodes: Node[];
  /**
   * Per-channel constants, where they are read: gains scale the normalised channels, biases shift
   * them; an input bias (SkipLayerNormalization's) is added to the stream before normalising.
   */
  parameters: { node: Node; inputIndex: number; role: 'gain' | 'bias' | 'input-bias' }[];
  /** The epsilon added to the mean square (or variance): an attribute of the fused op, or a scalar input. */
  epsilon?: { node: Node; attribute: string } | { node: Node; inputIndex: number };
}

/** An embedding table whose columns write the stream's channels. */
export interface StreamEmbedding {
  node: Node;
  table: Value;
}

/** What an approximate merge of a residual stream must rewrite besides producers and consumers. */
export interface StreamParts {
  normalisations: StreamNormalisation[];
  embeddings: StreamEmbedding[];
  /** Why the stream rewrite cannot handle the group (empty when it can). */
  blockers: Blocker[];
}

/** The constant `v` holds, looking through the Identity torch writes for a deduplicated initializer. */
export function constantThroughIdentity(v: Value | null | undefined): Tensor | undefined {
  if (!v) return undefined;
  const t = v.constantTensor();
  if (t) return t;
  const p = v.producer;
  return p && p.opType === 'Identity' ? p.inputs[0]?.constantTensor() : undefined;
}

/** A decomposed normalisation's per-channel constants and epsilon; a blocker when one is read by an op the rewrite does not know. */
function decomposedParts(match: NormalisationMatch, width: number): { norm?: StreamNormalisation; problem?: Blocker } {
  const parameters: StreamNormalisation['parameters'] = [];
  let epsilon: StreamNormalisation['epsilon'];
  const inRegion = new Set(match.nodes);
  for (const node of match.nodes) {
    node.inputs.forEach((v, inputIndex) => {
      const t = constantThroughIdentity(v);
      if (!t || !v || v === match.input) return;
      if (t.elementCount === width && t.dims[t.dims.length - 1] === width) {
        parameters.push({ node, inputIndex, role: node.opType === 'Add' ? 'bias' : 'gain' });
        return;
      }
      const other = node.inputs[1 - inputIndex];
      if (node.opType === 'Add' && t.elementCount === 1 && other?.producer?.opType === 'ReduceMean' && inRegion.has(other.producer)) epsilon = { node, inputIndex };
    });
  }
  const odd = parameters.find((p) => p.node.opType !== 'Mul' && p.node.opType !== 'Add');
  if (odd) return { problem: blocker('normalisation', `normalisation "${match.node.label}" reads a per-channel constant in ${odd.node.opType} "${odd.node.label}", which the stream rewrite does not cut`, odd.node) };
  const centred = match.nodes.some((n) => n.opType === 'ReduceMean' && n.inputs[0] === match.input);
  return { norm: { kind: centred ? 'layer' : 'rms', node: match.node, input: match.input, output: match.output, nodes: match.nodes, parameters, ...(epsilon ? { epsilon } : {}) } };
}

/**
 * The normalisations and embedding tables of a residual-stream group, and why its approximate
 * merge (prune --approximate) cannot be applied, if it cannot: every member must hold the stream's
 * channels on its last axis in order, and every normalisation must be one whose constants the
 * rewrite knows (decomposed with Mul/Add constants, LayerNormalization, RMSNormalization,
 * SimplifiedLayerNormalization, com.microsoft SkipLayerNormalization and SkipSimplifiedLayerNormalization
 * without bias).
 */
export function streamParts(group: {
  width: number;
  members: readonly { value: Value; axisFromEnd: number; indexMap: { kind: string }; width?: number }[];
  values: ReadonlySet<Value>;
  couplingNodes: readonly Node[];
}): StreamParts {
  const blockers: Blocker[] = [];
  for (const m of group.members) {
    if (m.axisFromEnd !== 1 || (m.indexMap.kind !== 'identity' && !(m.indexMap.kind === 'offset' && m.width === group.width))) {
      blockers.push(blocker('index-map', `"${m.value.name}" does not hold the stream's channels in order on its last axis`, m.value.producer ?? undefined));
    }
  }
  const coupling = new Set(group.couplingNodes);
  const normalisations: StreamNormalisation[] = [];
  const embeddings: StreamEmbedding[] = [];
  for (const node of group.couplingNodes) {
    const fused = fusedNorm(node);
    if (fused?.isSkip) {
      // SkipLayerNormalization(input, skip, gamma, beta?, bias?); SkipSimplifiedLayerNormalization(input, skip, gamma, bias?).
      const isRms = node.opType === 'SkipSimplifiedLayerNormalization';
      if (isRms && node.inputs[3]) {
        blockers.push(blocker('normalisation', `${node.opType} "${node.label}" has a bias input, which onnxruntime versions apply differently; the stream rewrite leaves it`, node));
        continue;
      }
      const parameters: StreamNormalisation['parameters'] = [{ node, inputIndex: 2, role: 'gain' }];
      if (!isRms && node.inputs[3]) parameters.push({ node, inputIndex: 3, role: 'bias' });
      if (!isRms && node.inputs[4]) parameters.push({ node, inputIndex: 4, role: 'input-bias' });
      normalisations.push({ kind: isRms ? 'rms' : 'layer', node, input: node.inputs[0]!, output: node.outputs[0]!, nodes: [node], parameters, epsilon: { node, attribute: 'epsilon' } });
    } else if (fused) {
      const parameters: StreamNormalisation['parameters'] = [{ node, inputIndex: 1, role: 'gain' }];
      if (node.opType === 'LayerNormalization' && node.inputs[2]) parameters.push({ node, inputIndex: 2, role: 'bias' });
      normalisations.push({ kind: node.opType === 'LayerNormalization' ? 'layer' : 'rms', node, input: node.inputs[0]!, output: node.outputs[0]!, nodes: [node], parameters, epsilon: { node, attribute: 'epsilon' } });
    } else if (isStandard(node) && node.opType === 'Gather' && constantThroughIdentity(node.inputs[0])?.dims.length === 2 && group.values.has(node.outputs[0]!)) {
      embeddings.push({ node, table: node.inputs[0]! });
    }
  }
  const seen = new Set<Value>();
  for (const m of group.members) {
    const v = m.value;
    if (v.constantTensor() || !v.uses().some((u) => coupling.has(u.node) && isStandard(u.node) && NORM_OPS.has(u.node.opType))) continue;
    const match = matchDecomposedNormalisation(v, 1);
    if (!match || !group.values.has(match.output) || seen.has(match.output)) continue;
    seen.add(match.output);
    const { norm, problem } = decomposedParts(match, group.width);
    if (problem) blockers.push(problem);
    if (norm) normalisations.push(norm);
  }
  // Any other op of the stream reading a float constant of more than one number (a per-channel
  // scale) would keep the old width: the rewrite knows no such constant, so it refuses.
  const known = new Set<Node>([...normalisations.flatMap((n) => n.nodes), ...embeddings.map((e) => e.node)]);
  for (const node of group.couplingNodes) {
    if (known.has(node)) continue;
    const odd = node.inputs.find((v) => {
      const t = constantThroughIdentity(v);
      return !!t && isFloatType(t.dataType) && t.elementCount > 1;
    });
    if (odd) blockers.push(blocker('foreign-source', `${node.opType} "${node.label}" reads the constant "${odd.name}", which the stream rewrite does not cut`, node));
  }
  return { normalisations, embeddings, blockers };
}

/** Blocker codes an approximate stream merge works around: the normalisations and embedding tables it rewrites. */
const STREAM_BLOCKERS = new Set(['normalisation', 'embedding']);

/**
 * True when a group that no exact merge may touch is a residual stream that prune --approximate can
 * merge (rewrite/merge-stream.ts): its only blockers are normalisations and embedding tables, and
 * streamParts finds nothing it cannot rewrite. DependencyGroup.approximateOnly holds the answer.
 */
export function isApproximatelyMergeable(group: Parameters<typeof streamParts>[0] & { blockers: readonly Blocker[]; producers: readonly unknown[] }): boolean {
  if (group.producers.length === 0 || group.blockers.length === 0 || !group.blockers.every((b) => STREAM_BLOCKERS.has(b.code))) return false;
  return streamParts(group).blockers.length === 0;
}
