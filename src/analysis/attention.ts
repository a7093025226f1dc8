// Attention blocks found where exporters put them. Decomposed attention (torch.onnx, tf2onnx):
//
//   x -> q_proj -> Reshape [B,T,H,d] -> Transpose -> MatMul(Q, K^T) -> Div(sqrt d) -> Add(mask) -> Softmax
//   x -> k_proj -> Reshape -> Transpose ------------/                                               |
//   x -> v_proj -> Reshape -> Transpose --------------------------------------------- MatMul(P, V) <-/
//        -> Transpose -> Reshape [B,T,H*d] -> o_proj
//
// with the projections separate, packed into one (cut by Slice/Split), K/V repeated over query
// heads (grouped-query and multi-query attention: Unsqueeze/Expand/Reshape), or heads folded into
// the batch axis (nn.MultiheadAttention: [T, B*H, d]), or packed reshape-first as timm ViT/Swin
// and Paddle2ONNX write it (qkv -> Reshape [B, T, 3, H, d] -> Transpose [2, 0, 3, 1, 4] -> part p
// by Gather / Slice+Squeeze / Split+Squeeze on axis 0: part p, head h, channel i is row
// p*H*d + h*d + i of the packed weight); and the fused com.microsoft Attention,
// MultiHeadAttention, GroupQueryAttention and ONNX (opset 23) Attention ops. A block names its
// projections as row ranges of weight tensors (a head is `headSize` consecutive output channels),
// so the head audit and head merges read and cut head blocks: the 'head-blocks' index map of
// coupling-rules.ts. Reads the IR only; runs nothing.

import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import { blocker, uniqueBlockers, type Blocker } from './blocker.js';
import type { IndexMap } from './coupling-rules.js';
import type { NeuronLayer } from './find-layers.js';
import { integerValues, rankOf } from './shape-values.js';

export type AttentionForm =
  | 'decomposed'
  | 'packed'
  | 'packed-reshape-first'
  | 'com.microsoft.Attention'
  | 'com.microsoft.MultiHeadAttention'
  | 'com.microsoft.GroupQueryAttention'
  | 'Attention';

/**
 * How a Reshape on a head path lays heads out: [.., H, d] (split), [.., B*H, d] (fold), back to
 * [.., H*d] (merge), or a packed projection's [.., P, H, d] (packed-split: P parts, Q/K/V, cut on the P axis after a Transpose).
 */
export type HeadReshapeRole = 'split' | 'fold' | 'merge' | 'packed-split';

export interface HeadReshape {
  node: Node;
  role: HeadReshapeRole;
  /** Rank of the Reshape's data input. */
  inputRank: number;
  /** Parts on the packed axis (packed-split only): 3 for Q/K/V, 2 for K/V. */
  parts?: number;
}

/** A projection's output channels that a block reads as Q, K or V: rows offset..offset+width of a weight. */
export interface ProjectionPart {
  /** The layer's name, or the weight's for a fused op. */
  name: string;
  weight: Value;
  /** Axis of the weight that indexes output channels. */
  outAxis: number;
  weightScale: number;
  /** One value per output channel of the whole weight (all parts), when the projection has a bias. */
  bias?: Value;
  biasScale: number;
  offset: number;
  width: number;
  layer?: NeuronLayer;
  /** The Slice/Split that cuts this part out of a packed projection. */
  cut?: Node;
  /** The Reshape that splits the part into heads (decomposed forms). */
  split?: HeadReshape;
  /** K/V repeated over query heads (Expand/Tile): grouped-query or multi-query attention. */
  repeated: boolean;
  /** A rotary embedding (x cos + rotate_half(x) sin) sits between the projection and the scores. */
  rotary: boolean;
  /** Nodes between the projection and the attention core. */
  path: Node[];
  /** The channels as head blocks (coupling-rules.ts). */
  indexMap: IndexMap;
}

/** The linear layer reading the heads' concatenated outputs: rows of its weight along inAxis, one block per head. */
export interface OutputProjection {
  name: string;
  node: Node;
  weight: Value;
  inAxis: number;
  layer?: NeuronLayer;
}

export interface AttentionBlock {
  id: string;
  form: AttentionForm;
  /** Query heads. */
  heads: number;
  /** Key/value heads (fewer than `heads` for grouped-query attention, 1 for multi-query). */
  kvHeads: number;
  /** Channels per query/key head. */
  headSize: number;
  /** Channels per value head. */
  valueHeadSize: number;
  q: ProjectionPart;
  k: ProjectionPart;
  v: ProjectionPart;
  output?: OutputProjection;
  /** The Reshape after the context MatMul that joins heads again. */
  merge?: HeadReshape;
  /** The fused op, for fused forms. */
  fused?: Node;
  /** The Softmax of a decomposed block. */
  softmax?: Node;
  /** Every node of the block between its projections and its output projection. */
  nodes: Set<Node>;
  /** Why whole heads cannot be merged in place (empty when they can). */
  blockers: Blocker[];
}

const MAX_PATH = 40;

function isStandard(node: Node): boolean {
  return node.domain === '' || node.domain === 'ai.onnx';
}

function scalarConstant(v: Value | null | undefined): boolean {
  const t = v?.constantTensor();
  return !!t && t.elementCount === 1;
}

interface Traced {
  layer: NeuronLayer;
  offset: number;
  width: number;
  cut?: Node;
  reshapes: Node[];
  repeated: boolean;
  rotary: boolean;
  path: Node[];
  /** Cut out of a packed [.., P, H, d] Reshape (the last of `reshapes`): P parts of H heads of d. */
  packedFirst?: { parts: number; heads: number; headSize: number };
}

/** Follows a head path back from the attention core to the projection that feeds it. */
function traceHeadPath(start: Value, byOutput: Map<Value, NeuronLayer>, depth = 0): Traced | undefined {
  const path: Node[] = [];
  const reshapes: Node[] = [];
  let repeated = false;
  let rotary = false;
  let cur: Value | null | undefined = start;
  for (let step = 0; step < MAX_PATH && cur; step++) {
    const layer = byOutput.get(cur);
    if (layer) return { layer, offset: 0, width: layer.width, reshapes, repeated, rotary, path };
    const p: Node | null = cur.producer;
    if (!p || !isStandard(p)) return undefined;
    path.push(p);
    switch (p.opType) {
      case 'Transpose':
      case 'Cast':
      case 'Identity':
      case 'Unsqueeze':
        cur = p.inputs[0];
        continue;
      case 'Reshape':
        reshapes.push(p);
        cur = p.inputs[0];
        continue;
      case 'Expand':
      case 'Tile':
        repeated = true;
        cur = p.inputs[0];
        continue;
      case 'Mul':
      case 'Div': {
        if (scalarConstant(p.inputs[1])) cur = p.inputs[0];
        else if (p.opType === 'Mul' && scalarConstant(p.inputs[0])) cur = p.inputs[1];
        else return undefined;
        continue;
      }
      case 'Add': {
        // A rotary embedding: x * cos + rotate_half(x) * sin; follow the x * cos term.
        if (depth > 0) return undefined;
        for (const term of p.inputs) {
          const mul = term?.producer;
          if (!mul || !mul.is('Mul')) continue;
          for (const operand of mul.inputs) {
            if (!operand || operand.constantTensor()) continue;
            const inner = traceHeadPath(operand, byOutput, depth + 1);
            if (inner) {
              return { ...inner, rotary: true, repeated: repeated || inner.repeated, reshapes: [...reshapes, ...inner.reshapes], path: [...path, mul, ...inner.path] };
            }
          }
        }
        return undefined;
      }
      case 'Squeeze':
      case 'Gather': {
        const packed = packedFirstPart(p, byOutput);
        if (!packed) return undefined;
        path.push(...packed.path);
        reshapes.push(packed.reshape);
        return { layer: packed.layer, offset: packed.offset, width: packed.width, reshapes, repeated, rotary, path, packedFirst: packed.packedFirst };
      }
      case 'Slice':
      case 'Split': {
        const source = p.inputs[0];
        const layer = source ? byOutput.get(source) : undefined;
        if (!layer) return undefined;
        const range = cutRange(p, cur, layer.width);
        if (!range) return undefined;
        return { layer, ...range, cut: p, reshapes, repeated, rotary, path };
      }
      default:
        return undefined;
    }
  }
  return undefined;
}

/** Integer attribute list or, from opset 10/13 on, the constant input at `index`. */
function intsOf(node: Node, attribute: string, index: number): number[] | undefined {
  const input = node.inputs[index];
  return input ? integerValues(input) : node.getInts(attribute);
}

/**
 * Which part of the leading axis a cut takes as one slice: Gather(axis 0, scalar index), or
 * Squeeze(axes [0]) of Slice(axis 0, one step) or of Split(axis 0, sizes of 1).
 */
function leadingPart(node: Node): { part: number; cut: Node; nodes: Node[]; parts?: number; end?: number } | undefined {
  // `nodes`: the cut behind `node` (Slice/Split behind a Squeeze), not `node` itself; `end`: a
  // Slice's end, which may run past the last part (qkv[2:]).
  if (node.is('Gather')) {
    const index = node.inputs[1]?.constantTensor();
    if (!index || index.dims.length !== 0 || node.getInt('axis', 0) !== 0) return undefined;
    return { part: Number(index.toFloat64()[0]), cut: node, nodes: [] };
  }
  if (!node.is('Squeeze')) return undefined;
  const axes = intsOf(node, 'axes', 1);
  if (!axes || axes.length !== 1 || axes[0] !== 0) return undefined;
  const cut = node.inputs[0]?.producer;
  if (!cut || !isStandard(cut)) return undefined;
  if (cut.is('Slice')) {
    const starts = intsOf(cut, 'starts', 1);
    const ends = intsOf(cut, 'ends', 2);
    const sliceAxes = intsOf(cut, 'axes', 3) ?? [0];
    const steps = cut.inputs[4] ? integerValues(cut.inputs[4]) : [1];
    if (!starts || !ends || !steps || starts.length !== 1 || sliceAxes[0] !== 0 || steps[0] !== 1) return undefined;
    if (!(starts[0]! >= 0) || !(ends[0]! > starts[0]!)) return undefined;
    return { part: starts[0]!, cut, nodes: [cut], end: ends[0]! };
  }
  if (cut.is('Split')) {
    if (cut.getInt('axis', 0) !== 0) return undefined;
    const sizes = intsOf(cut, 'split', 1);
    if (sizes && sizes.some((x) => x !== 1)) return undefined;
    return { part: cut.outputs.indexOf(node.inputs[0]!), cut, nodes: [cut], parts: cut.outputs.length };
  }
  return undefined;
}

/**
 * A part of a packed projection split reshape-first: projection -> Reshape [.., P, H, d] ->
 * Transpose bringing P first (last axis d stays last) -> part p on axis 0. The part's rows are
 * p*H*d .. (p+1)*H*d of the projection, head h at h*d within them.
 */
function packedFirstPart(node: Node, byOutput: Map<Value, NeuronLayer>):
  | { layer: NeuronLayer; offset: number; width: number; reshape: Node; path: Node[]; packedFirst: NonNullable<Traced['packedFirst']> }
  | undefined {
  const taken = leadingPart(node);
  if (!taken) return undefined;
  const transpose = taken.cut.inputs[0]?.producer;
  if (!transpose || !transpose.is('Transpose') || !isStandard(transpose)) return undefined;
  const reshape = transpose.inputs[0]?.producer;
  if (!reshape || !reshape.is('Reshape') || !isStandard(reshape)) return undefined;
  const layer = reshape.inputs[0] ? byOutput.get(reshape.inputs[0]) : undefined;
  const shape = integerValues(reshape.inputs[1]);
  const inputRank = rankOf(reshape.inputs[0]);
  const perm = transpose.getInts('perm');
  if (!layer || !shape || inputRank === undefined || shape.length !== inputRank + 2 || !perm || perm.length !== shape.length) return undefined;
  const partAxis = shape.length - 3;
  if (perm[0] !== partAxis || perm[perm.length - 1] !== shape.length - 1) return undefined;
  const parts = shape[partAxis]!;
  let heads = shape[partAxis + 1]!;
  let headSize = shape[partAxis + 2]!;
  if (!(parts > 0) || (taken.parts !== undefined && taken.parts !== parts)) return undefined;
  if (!(headSize > 0) && heads > 0) headSize = layer.width / (parts * heads);
  if (!(heads > 0) && headSize > 0) heads = layer.width / (parts * headSize);
  if (!Number.isInteger(heads) || !Number.isInteger(headSize) || heads <= 0 || headSize <= 0 || parts * heads * headSize !== layer.width) return undefined;
  const part = taken.part < 0 ? taken.part + parts : taken.part;
  if (!(part >= 0 && part < parts) || (taken.end !== undefined && Math.min(taken.end, parts) !== part + 1)) return undefined;
  return {
    layer,
    offset: part * heads * headSize,
    width: heads * headSize,
    reshape,
    path: [...taken.nodes, transpose, reshape],
    packedFirst: { parts, heads, headSize },
  };
}

/** The channel range a Slice/Split output takes from the last axis of a projection `width` wide. */
function cutRange(node: Node, output: Value, width: number): { offset: number; width: number } | undefined {
  const rank = rankOf(node.inputs[0]);
  const isLast = (axis: number): boolean => axis === -1 || (rank !== undefined && axis === rank - 1);
  if (node.is('Slice')) {
    const starts = integerValues(node.inputs[1]);
    const ends = integerValues(node.inputs[2]);
    const axes = node.inputs[3] ? integerValues(node.inputs[3]) : [rank === undefined ? NaN : rank - 1];
    const steps = node.inputs[4] ? integerValues(node.inputs[4]) : [1];
    if (!starts || !ends || !axes || !steps || starts.length !== 1 || !isLast(axes[0]!) || steps[0] !== 1) return undefined;
    const clamp = (i: number): number => Math.max(0, Math.min(width, i < 0 ? i + width : i));
    const start = clamp(starts[0]!);
    const end = clamp(ends[0]!);
    return Number.isFinite(start) && Number.isFinite(end) && end > start ? { offset: start, width: end - start } : undefined;
  }
  const axis = node.getInt('axis', 0);
  if (!isLast(axis)) return undefined;
  const index = node.outputs.indexOf(output);
  const sizes = (node.inputs[1] ? integerValues(node.inputs[1]) : node.getInts('split')) ?? Array.from({ length: node.outputs.length }, () => width / node.outputs.length);
  if (sizes.length !== node.outputs.length || sizes.some((s) => !Number.isInteger(s) || s <= 0)) return undefined;
  const offset = sizes.slice(0, index).reduce((a, b) => a + b, 0);
  return { offset, width: sizes[index]! };
}

/** The MatMul that computes attention scores, behind scale, mask and casts. */
function findScores(v: Value | null | undefined, depth = 0): Node | undefined {
  const p = v?.producer;
  if (!p || depth > 6 || !isStandard(p)) return undefined;
  if (p.is('MatMul')) return p.inputs.every((x) => x && !x.constantTensor()) ? p : undefined;
  if (['Add', 'Sub', 'Mul', 'Div', 'Where', 'Cast', 'Identity'].includes(p.opType)) {
    for (const x of p.inputs) {
      if (!x || x.constantTensor()) continue;
      const found = findScores(x, depth + 1);
      if (found) return found;
    }
  }
  return undefined;
}

/** The first reader of `v` through Cast/Identity/Dropout that is a `opType`, reading it at `inputIndex`. */
function readerThrough(v: Value, opType: string, inputIndex: number, path: Node[] = []): { node: Node; path: Node[] } | undefined {
  for (const use of v.uses()) {
    const n = use.node;
    if (n.is(opType) && use.inputIndex === inputIndex) return { node: n, path };
    if (['Cast', 'Identity', 'Dropout'].includes(n.opType) && use.inputIndex === 0) {
      const found = readerThrough(n.outputs[0]!, opType, inputIndex, [...path, n]);
      if (found) return found;
    }
  }
  return undefined;
}

/** The layer whose weight-bearing node reads the heads' output (through Transpose/Reshape), and the joining Reshape. */
function findOutputProjection(v: Value, layers: NeuronLayer[], path: Node[]): { output: OutputProjection; merge?: Node } | undefined {
  let cur = v;
  let merge: Node | undefined;
  for (let step = 0; step < 6; step++) {
    const uses = cur.uses();
    if (uses.length !== 1) return undefined;
    const n = uses[0]!.node;
    if (uses[0]!.inputIndex !== 0) return undefined;
    const layer = layers.find((l) => l.producer === n);
    if (layer) {
      const rank = layer.weight.dims.length;
      if (rank !== 2) return undefined;
      return { output: { name: layer.name, node: n, weight: layer.weight.value, inAxis: 1 - layer.outAxis, layer }, ...(merge ? { merge } : {}) };
    }
    if (n.is('Reshape')) merge = n;
    else if (!n.is('Transpose') && !n.is('Cast') && !n.is('Identity')) return undefined;
    path.push(n);
    cur = n.outputs[0]!;
  }
  return undefined;
}

function layerPart(t: Traced, split: HeadReshape | undefined): ProjectionPart {
  const l = t.layer;
  return {
    name: l.name,
    weight: l.weight.value,
    outAxis: l.outAxis,
    weightScale: l.weight.scale,
    ...(l.bias?.perNeuron ? { bias: l.bias.value } : {}),
    biasScale: l.bias?.scale ?? 1,
    offset: t.offset,
    width: t.width,
    layer: l,
    ...(t.cut ? { cut: t.cut } : {}),
    ...(split ? { split } : {}),
    repeated: t.repeated,
    rotary: t.rotary,
    path: t.path,
    indexMap: { kind: 'identity' },
  };
}

/** The Reshape closest to the projection splits its channels into heads; its shape gives the head size. */
function headSplit(t: Traced): { split: HeadReshape; headSize: number } | undefined {
  const node = t.reshapes[t.reshapes.length - 1];
  if (!node) return undefined;
  const inputRank = rankOf(node.inputs[0]);
  if (t.packedFirst && inputRank !== undefined) {
    return { split: { node, role: 'packed-split', inputRank, parts: t.packedFirst.parts }, headSize: t.packedFirst.headSize };
  }
  const shape = integerValues(node.inputs[1]);
  if (!shape || inputRank === undefined) return undefined;
  let role: HeadReshapeRole;
  if (shape.length === inputRank + 1) role = 'split';
  else if (shape.length === inputRank) role = 'fold';
  else return undefined;
  let headSize = shape[shape.length - 1]!;
  if (!(headSize > 0) && role === 'split') {
    const heads = shape[shape.length - 2]!;
    if (heads > 0) headSize = t.width / heads;
  }
  if (!(headSize > 0) || !Number.isInteger(headSize) || t.width % headSize !== 0) return undefined;
  return { split: { node, role, inputRank }, headSize };
}

function decomposedBlock(softmax: Node, layers: NeuronLayer[], byOutput: Map<Value, NeuronLayer>, id: string): AttentionBlock | undefined {
  const scores = findScores(softmax.inputs[0]);
  if (!scores) return undefined;
  const context = readerThrough(softmax.outputs[0]!, 'MatMul', 0);
  if (!context) return undefined;
  const qt = traceHeadPath(scores.inputs[0]!, byOutput);
  const kt = traceHeadPath(scores.inputs[1]!, byOutput);
  const vt = traceHeadPath(context.node.inputs[1]!, byOutput);
  if (!qt || !kt || !vt) return undefined;
  const blockers: Blocker[] = [];
  const qs = headSplit(qt);
  const ks = headSplit(kt);
  const vs = headSplit(vt);
  const headSize = qs?.headSize ?? ks?.headSize ?? 0;
  const valueHeadSize = vs?.headSize ?? headSize;
  if (!qs || !ks || !vs || !(headSize > 0)) return undefined;
  const nodes = new Set<Node>([softmax, scores, context.node, ...context.path, ...qt.path, ...kt.path, ...vt.path]);
  const tail: Node[] = [];
  const out = findOutputProjection(context.node.outputs[0]!, layers, tail);
  for (const n of tail) nodes.add(n);
  let merge: HeadReshape | undefined;
  if (out?.merge) {
    const inputRank = rankOf(out.merge.inputs[0]);
    if (inputRank !== undefined) merge = { node: out.merge, role: 'merge', inputRank };
  }
  const heads = qt.width / headSize;
  const kvHeads = kt.width / headSize;
  const q = layerPart(qt, qs.split);
  const k = layerPart(kt, ks.split);
  const v = layerPart(vt, vs.split);
  const packedFirst = [qs, ks, vs].some((s) => s.split.role === 'packed-split');
  const form: AttentionForm = packedFirst ? 'packed-reshape-first' : q.layer === k.layer || q.layer === v.layer ? 'packed' : 'decomposed';
  if (!Number.isInteger(heads) || vt.width / valueHeadSize !== kvHeads) blockers.push(blocker('attention', `its Q, K and V widths (${qt.width}, ${kt.width}, ${vt.width}) do not split into heads of ${headSize}`, softmax));
  if (!out) blockers.push(blocker('attention', 'no linear output projection reads its heads', context.node));
  else if (!merge) blockers.push(blocker('attention', 'the Reshape that joins its heads was not found', context.node));
  return { id, form, heads, kvHeads, headSize, valueHeadSize, q, k, v, ...(out ? { output: out.output } : {}), ...(merge ? { merge } : {}), softmax, nodes, blockers };
}

/** Fused ops whose Q, K and V inputs come from projections (3-D: [B, T, H*d]). */
const fusedProjectionOps: Record<string, { form: AttentionForm; heads: (n: Node) => number; kvHeads: (n: Node) => number }> = {
  'com.microsoft:MultiHeadAttention': { form: 'com.microsoft.MultiHeadAttention', heads: (n) => n.getInt('num_heads', 0), kvHeads: (n) => n.getInt('num_heads', 0) },
  'com.microsoft:GroupQueryAttention': { form: 'com.microsoft.GroupQueryAttention', heads: (n) => n.getInt('num_heads', 0), kvHeads: (n) => n.getInt('kv_num_heads', 0) },
  ':Attention': { form: 'Attention', heads: (n) => n.getInt('q_num_heads', 0), kvHeads: (n) => n.getInt('kv_num_heads', 0) },
};

function opKey(n: Node): string {
  return `${n.domain === 'ai.onnx' ? '' : n.domain}:${n.opType}`;
}

function fusedBlock(node: Node, layers: NeuronLayer[], byOutput: Map<Value, NeuronLayer>, id: string): AttentionBlock | undefined {
  const blockers: Blocker[] = [];
  const tail: Node[] = [];
  const out = node.outputs[0] ? findOutputProjection(node.outputs[0], layers, tail) : undefined;
  const nodes = new Set<Node>([node, ...tail]);
  if (!out) blockers.push(blocker('attention', `no linear output projection reads the output of ${node.opType} "${node.label}"`, node));
  if (opKey(node) === 'com.microsoft:Attention') {
    const w = node.inputs[1]?.constantTensor();
    const heads = node.getInt('num_heads', 0);
    if (!w || w.dims.length !== 2 || !(heads > 0)) return undefined;
    const sizes = node.getInts('qkv_hidden_sizes') ?? [w.dims[1]! / 3, w.dims[1]! / 3, w.dims[1]! / 3];
    const [hq, hk, hv] = sizes as [number, number, number];
    const headSize = hq / heads;
    if (!Number.isInteger(headSize)) return undefined;
    const part = (offset: number, width: number): ProjectionPart => ({
      name: node.inputs[1]!.name,
      weight: node.inputs[1]!,
      outAxis: 1,
      weightScale: 1,
      ...(node.inputs[2]?.constantTensor() ? { bias: node.inputs[2] } : {}),
      biasScale: 1,
      offset,
      width,
      repeated: false,
      rotary: false,
      path: [],
      indexMap: { kind: 'head-blocks', heads, headSize: width / heads },
    });
    if (node.inputs.slice(4).some((x) => x)) blockers.push(blocker('attention', `${node.opType} "${node.label}" reads past state or attention bias inputs, which head merges do not rewrite`, node));
    return { id, form: 'com.microsoft.Attention', heads, kvHeads: heads, headSize, valueHeadSize: hv / heads, q: part(0, hq), k: part(hq, hk), v: part(hq + hk, hv), ...(out ? { output: out.output } : {}), fused: node, nodes, blockers: uniqueBlockers(blockers) };
  }
  const op = fusedProjectionOps[opKey(node)];
  if (!op) return undefined;
  const traced = [0, 1, 2].map((i) => (node.inputs[i] ? traceHeadPath(node.inputs[i]!, byOutput) : undefined));
  if (traced.some((t) => !t)) return undefined;
  const [qt, kt, vt] = traced as [Traced, Traced, Traced];
  for (const t of traced) for (const n of t!.path) nodes.add(n);
  const heads = op.heads(node);
  const kvHeads = op.kvHeads(node) || heads;
  if (!(heads > 0) || qt.reshapes.length) {
    // 4-D inputs: the heads were split upstream; audit as found, merges not applied.
    const split = headSplit(qt);
    if (!split) return undefined;
    blockers.push(blocker('attention', `${node.opType} "${node.label}" reads 4-D inputs; head merges rewrite only its 3-D form`, node));
    const h = qt.width / split.headSize;
    return { id, form: op.form, heads: h, kvHeads: kt.width / split.headSize, headSize: split.headSize, valueHeadSize: vt.width / (kt.width / split.headSize), q: layerPart(qt, split.split), k: layerPart(kt, undefined), v: layerPart(vt, undefined), ...(out ? { output: out.output } : {}), fused: node, nodes, blockers: uniqueBlockers(blockers) };
  }
  if (node.inputs.slice(3).some((x) => x)) blockers.push(blocker('attention', `${node.opType} "${node.label}" reads bias, mask or past-state inputs, which head merges do not rewrite`, node));
  const headSize = qt.width / heads;
  return {
    id,
    form: op.form,
    heads,
    kvHeads,
    headSize,
    valueHeadSize: vt.width / kvHeads,
    q: layerPart(qt, undefined),
    k: layerPart(kt, undefined),
    v: layerPart(vt, undefined),
    ...(out ? { output: out.output } : {}),
    fused: node,
    nodes,
    blockers: uniqueBlockers(blockers),
  };
}

/** Every attention block of the main graph, decomposed or fused, in graph order. */
export function findAttention(model: Model, layers: NeuronLayer[]): AttentionBlock[] {
  const byOutput = new Map<Value, NeuronLayer>();
  for (const l of layers) {
    if (l.subgraphOf) continue;
    byOutput.set(l.activation.output, l);
  }
  const blocks: AttentionBlock[] = [];
  for (const node of model.graph.nodes) {
    const id = `attn${blocks.length + 1}`;
    let block: AttentionBlock | undefined;
    if (node.is('Softmax') && isStandard(node)) block = decomposedBlock(node, layers, byOutput, id);
    else if (node.domain === 'com.microsoft' || isStandard(node)) block = fusedBlock(node, layers, byOutput, id);
    if (block) blocks.push(finishBlock(block));
  }
  return blocks;
}

/** Head-merge blockers every form shares, and the head-block index maps of its parts. */
function finishBlock(block: AttentionBlock): AttentionBlock {
  const { q, k, v } = block;
  q.indexMap = { kind: 'head-blocks', heads: block.heads, headSize: block.headSize };
  k.indexMap = { kind: 'head-blocks', heads: block.kvHeads, headSize: block.headSize };
  v.indexMap = { kind: 'head-blocks', heads: block.kvHeads, headSize: block.valueHeadSize };
  const blockers = block.blockers;
  if (block.kvHeads !== block.heads) {
    blockers.push(blocker('attention', `grouped-query attention (${block.heads} query heads share ${block.kvHeads} key/value heads): dropping a query head would leave the groups uneven`, block.fused ?? block.softmax));
  }
  for (const part of [q, k, v]) {
    const tile = part.path.find((n) => n.is('Tile'));
    if (tile) blockers.push(blocker('attention', `projection "${part.name}" is repeated over heads by Tile "${tile.label}", which head merges do not rewrite`, tile));
    const shared = part.layer?.blockers.find((b) => b.code === 'shared-weights');
    if (shared) blockers.push(blocker('attention', `projection "${part.name}": ${shared.message}`, shared.node));
    if (part.layer && part.layer.activation.nodes.length) blockers.push(blocker('attention', `projection "${part.name}" has activation ${part.layer.activation.name} before its heads`, part.layer.producer));
    if (part.layer?.activation.output.isGraphOutput) blockers.push(blocker('attention', `projection "${part.name}" is a graph output`, part.layer.producer));
  }
  const cutNodes = [q.cut, k.cut, v.cut].filter((c): c is Node => !!c);
  // A projection read by anything but the block (and Shape ops, which read no values) ties its channels elsewhere.
  const own = new Set([...block.nodes, ...cutNodes]);
  for (const part of [q, k, v]) {
    const out = part.layer?.activation.output;
    if (!out) continue;
    const foreign = out.uses().find((u) => !own.has(u.node) && !u.node.is('Shape'));
    if (foreign) blockers.push(blocker('attention', `projection "${part.name}" is also read by "${foreign.node.label}" (${foreign.node.opType})`, foreign.node));
  }
  block.blockers = uniqueBlockers(blockers);
  return block;
}

/**
 * Marks the projections of recognised blocks: the blockers that came from the block itself (its
 * Reshape, Slice or Split, Shape reads) give way to one 'attention' blocker naming the block,
 * since their channels merge as head blocks, not as single neurons.
 */
export function markAttentionLayers(blocks: AttentionBlock[]): void {
  for (const block of blocks) {
    for (const part of [block.q, block.k, block.v]) {
      const layer = part.layer;
      if (!layer) continue;
      const own = new Set([...block.nodes, ...(part.cut ? [part.cut] : []), block.q.cut, block.k.cut, block.v.cut].filter((n): n is Node => !!n));
      const rest = layer.blockers.filter((b) => !(b.node && (own.has(b.node) || b.node.is('Shape'))));
      if (rest.some((b) => b.code === 'attention')) continue;
      const role = [block.q, block.k, block.v].filter((p) => p.layer === layer).map((p) => (p === block.q ? 'Q' : p === block.k ? 'K' : 'V')).join('/');
      layer.blockers = [blocker('attention', `projects the ${role} heads of attention block ${block.id}: its channels merge as whole heads (see the attention audit)`, block.softmax ?? block.fused), ...rest];
      layer.mergeable = false;
    }
  }
}
