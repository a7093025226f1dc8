// Whole-head merges: a duplicate head b (Q K^T equal to head a's, V_b = M V_a) is dropped and its
// output rows folded into a's: softmax(q k^T) v is the same attention pattern for both, so
//   P V_b O_b = P (M V_a) O_b = P V_a (M^T O_b)   and   O_a <- O_a + M^T O_b
// is exact. The rewrite cuts head b's rows from W_Q, W_K, W_V (and biases; offsets move in packed
// projections), its row block from W_O, and writes the new head count wherever the graph holds it:
// Reshape shapes (rewritten as constants with 0 = "copy this dim" and -1 = "the rest", so a
// dynamic Shape -> Gather -> Concat subgraph no longer matters), constant Split/Slice offsets, and
// fused ops' num_heads attributes. Plan (pure, serialisable) and apply are separate, as for layers.
//
// Within a head, q_j = t q_i makes q_i k_i + q_j k_j = q_i (k_i + t k_j): neuron j leaves Q and K,
// k_i absorbs t k_j (and the reverse for k_j = t k_i); v_j = t v_i folds t O_j into O_i. One
// Reshape sets every head's size, so each head drops the same number of neurons (the smallest
// count any head allows; the rest are reported); none under a rotary embedding, which mixes Q/K
// channels in pairs.

import { findAttention, type AttentionBlock, type ProjectionPart } from '../analysis/attention.js';
import { partRows, proportionalPairs, type AttentionAudit, type RowRelation } from '../analysis/head-audit.js';
import type { NeuronLayer } from '../analysis/find-layers.js';
import { integerValues, rankOf } from '../analysis/shape-values.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import type { Value } from '../ir/value.js';
import { axisToRows, rowsToAxis } from '../numeric/axis-slices.js';

export interface HeadMerge {
  head: number;
  into: number;
  /** V_head = valueMap V_into (valueHeadSize x valueHeadSize, row-major). */
  valueMap: number[];
}

export interface HeadMergePlan {
  /** The attention block's id (attn1, ...), in findAttention order. */
  block: string;
  form: string;
  heads: number;
  headsAfter: number;
  headSize: number;
  valueHeadSize: number;
  /** The projections whose rows are cut (q, k, v) and the output projection whose row blocks are summed. */
  projections: string[];
  output: string;
  merges: HeadMerge[];
  /** Neuron merges inside the surviving heads; absent when none. */
  withinHead?: WithinHeadMerges;
}

/** Exact merges inside heads (indices within the head), the same count in every surviving head. */
export interface WithinHeadMerges {
  headSizeAfter: number;
  valueHeadSizeAfter: number;
  /** side 'q': q_neuron = scale q_into, so k_into absorbs scale k_neuron; side 'k': the reverse. */
  queryKey: ({ head: number; side: 'q' | 'k' } & RowRelation)[];
  /** v_neuron = scale v_into: O_into absorbs scale O_neuron. */
  valueOutput: ({ head: number } & RowRelation)[];
  /** Exact relations found but left so that heads keep one size (or under a rotary embedding). */
  notApplied: string[];
}

/**
 * Plans the merges of every duplicate head, and the uniform within-head merges of the heads that
 * stay, in blocks whose heads can be merged in place. Pure: reads weights, changes nothing.
 */
export function planHeadMerges(audits: readonly AttentionAudit[], exactTolerance: number): HeadMergePlan[] {
  const plans: HeadMergePlan[] = [];
  for (const a of audits) {
    const b = a.block;
    if (b.blockers.length || !b.output) continue;
    const withinHead = planWithinHead(a, exactTolerance);
    if (!a.duplicates.length && !withinHead) continue;
    plans.push({
      block: b.id,
      form: b.form,
      heads: b.heads,
      headsAfter: b.heads - a.duplicates.length,
      headSize: b.headSize,
      valueHeadSize: b.valueHeadSize,
      projections: [...new Set([b.q.name, b.k.name, b.v.name])],
      output: b.output.name,
      merges: a.duplicates.map((d) => ({ head: d.head, into: d.into, valueMap: [...d.valueMap] })),
      ...(withinHead ? { withinHead } : {}),
    });
  }
  return plans;
}

/** The within-head merges every surviving head can make (the same number in each). */
function planWithinHead(a: AttentionAudit, tolerance: number): WithinHeadMerges | undefined {
  const b = a.block;
  const { headSize: d, valueHeadSize: dv } = b;
  const dropped = new Set(a.duplicates.map((x) => x.head));
  const survivors = [...Array(b.heads).keys()].filter((h) => !dropped.has(h));
  const q = partRows(b.q);
  const k = partRows(b.k);
  const v = partRows(b.v);
  const notApplied: string[] = [];
  const qk = survivors.map((h): WithinHeadMerges['queryKey'] => {
    const byQ: WithinHeadMerges['queryKey'] = proportionalPairs(q.rows.subarray(h * d * q.cols, (h + 1) * d * q.cols), d, q.cols, tolerance).map((r) => ({ head: h, side: 'q', ...r }));
    const byK: WithinHeadMerges['queryKey'] = proportionalPairs(k.rows.subarray(h * d * k.cols, (h + 1) * d * k.cols), d, k.cols, tolerance).map((r) => ({ head: h, side: 'k', ...r }));
    return byQ.length >= byK.length ? byQ : byK;
  });
  const vo = survivors.map((h) => proportionalPairs(v.rows.subarray(h * dv * v.cols, (h + 1) * dv * v.cols), dv, v.cols, tolerance).map((r) => ({ head: h, ...r })));
  let mQK = Math.min(...qk.map((r) => r.length));
  let mVO = Math.min(...vo.map((r) => r.length));
  const foundQK = qk.reduce((s, r) => s + r.length, 0);
  const foundVO = vo.reduce((s, r) => s + r.length, 0);
  if (foundQK === 0 && foundVO === 0) return undefined;
  let qkMax = Math.max(...qk.map((r) => r.length));
  if ((b.q.rotary || b.k.rotary) && foundQK) {
    notApplied.push(`${foundQK} Q/K merges: a rotary embedding mixes Q/K channels in pairs`);
    mQK = qkMax = 0;
  }
  // Fused ops, packed projections cut by computed offsets and reshape-first packing ([.., 3, H, d]:
  // one d for all three parts) expect Q, K and V heads of one size.
  const computedCut = [b.q, b.k, b.v].some((p) => p.cut?.is('Slice') && !(p.cut.inputs[1]?.constantTensor() && p.cut.inputs[2]?.constantTensor()));
  const packedFirst = [b.q, b.k, b.v].some((p) => p.split?.role === 'packed-split');
  if ((b.fused || computedCut || packedFirst) && mQK !== mVO) {
    mQK = mVO = Math.min(mQK, mVO);
    notApplied.push(`${b.fused ? `${b.fused.opType} expects` : packedFirst ? 'the packed projection is reshaped into' : 'the packed projection is cut into'} Q, K and V heads of one size: each head drops the same number of Q/K and V/O neurons`);
  }
  if (mQK < qkMax || mVO < Math.max(...vo.map((r) => r.length))) {
    notApplied.push(`every head keeps one size: ${mQK} Q/K and ${mVO} V/O merges per head applied of ${qkMax ? foundQK : 0} and ${foundVO} found`);
  }
  if (mQK === 0 && mVO === 0) return undefined;
  if (mQK >= d || mVO >= dv) return undefined;
  return {
    headSizeAfter: d - mQK,
    valueHeadSizeAfter: dv - mVO,
    queryKey: qk.flatMap((r) => r.slice(0, mQK)),
    valueOutput: vo.flatMap((r) => r.slice(0, mVO)),
    notApplied,
  };
}

/** Neurons (projection rows) the plans remove: Q, K and V rows of every dropped head. */
export function headMergeNeurons(plans: readonly HeadMergePlan[]): number {
  return plans.reduce((s, p) => s + p.merges.length * (2 * p.headSize + p.valueHeadSize) + 2 * (p.withinHead?.queryKey.length ?? 0) + (p.withinHead?.valueOutput.length ?? 0), 0);
}

/**
 * Applies head plans to `model` in place; `layers` must be found on this model (findLayers). The
 * blocks are found again on it and must match the plan (heads, head size).
 */
export function applyHeadMerges(model: Model, layers: NeuronLayer[], plans: readonly HeadMergePlan[]): void {
  if (!plans.length) return;
  const blocks = new Map(findAttention(model, layers).map((b) => [b.id, b]));
  for (const plan of plans) {
    const block = blocks.get(plan.block);
    if (!block || block.heads !== plan.heads || block.headSize !== plan.headSize || block.blockers.length) {
      throw new Error(`head merge plan names attention block "${plan.block}" with ${plan.heads} heads of ${plan.headSize}, which the model does not have as a mergeable block`);
    }
    applyHeadPlan(model, block, plan);
  }
}

function applyHeadPlan(model: Model, block: AttentionBlock, plan: HeadMergePlan): void {
  const g = model.graph;
  const dropped = new Set(plan.merges.map((m) => m.head));
  const headsAfter = block.heads - dropped.size;
  const dv = block.valueHeadSize;

  // Output projection: O_a += M^T O_b, then drop head b's rows.
  const out = block.output!;
  const ot = out.weight.constantTensor()!;
  const rows = axisToRows(ot.toFloat64(), ot.dims, out.inAxis);
  const len = rows.length / ot.dims[out.inAxis]!;
  for (const m of plan.merges) {
    for (let j = 0; j < dv; j++) {
      for (let i = 0; i < dv; i++) {
        const f = m.valueMap[i * dv + j]!;
        if (f === 0) continue;
        const src = (m.head * dv + i) * len;
        const dst = (m.into * dv + j) * len;
        for (let c = 0; c < len; c++) rows[dst + c]! += f * rows[src + c]!;
      }
    }
  }
  const within = plan.withinHead;
  const d = block.headSize;
  // Within-head V/O: O_into += t O_neuron.
  const droppedOut = new Set<number>();
  for (const r of within?.valueOutput ?? []) {
    const src = (r.head * dv + r.neuron) * len;
    const dst = (r.head * dv + r.into) * len;
    for (let c = 0; c < len; c++) rows[dst + c]! += r.scale * rows[src + c]!;
    droppedOut.add(r.head * dv + r.neuron);
  }
  const keptOut = [...Array(block.heads * dv).keys()].filter((c) => !dropped.has(Math.floor(c / dv)) && !droppedOut.has(c));
  g.setConstant(out.weight, keepRows(ot, rows, out.inAxis, keptOut));

  // Projections: the channels of dropped heads, per weight (a packed weight holds all three parts).
  const byWeight = new Map<Value, { part: ProjectionPart; channels: Set<number>; rows: Float64Array; bias?: Float64Array }>();
  for (const [part, size] of [[block.q, d], [block.k, d], [block.v, dv]] as const) {
    let entry = byWeight.get(part.weight);
    if (!entry) {
      const t = part.weight.constantTensor()!;
      entry = { part, channels: new Set<number>(), rows: axisToRows(t.toFloat64(), t.dims, part.outAxis), ...(part.bias ? { bias: part.bias.constantTensor()!.toFloat64() } : {}) };
      byWeight.set(part.weight, entry);
    }
    for (const h of dropped) for (let c = 0; c < size; c++) entry.channels.add(part.offset + h * size + c);
  }
  // Within-head Q/K: the other side's row `into` absorbs t times its row `neuron`; both lose `neuron`.
  for (const r of within?.queryKey ?? []) {
    const [target, source] = r.side === 'q' ? [block.k, block.q] : [block.q, block.k];
    const entry = byWeight.get(target.weight)!;
    const fanIn = entry.rows.length / target.weight.constantTensor()!.dims[target.outAxis]!;
    const dst = target.offset + r.head * d + r.into;
    const src = target.offset + r.head * d + r.neuron;
    // Rows are scaled as the op applies them; the scale is common to every row, so it cancels.
    for (let c = 0; c < fanIn; c++) entry.rows[dst * fanIn + c]! += r.scale * entry.rows[src * fanIn + c]!;
    if (entry.bias) entry.bias[dst]! += r.scale * entry.bias[src]!;
    entry.channels.add(src);
    byWeight.get(source.weight)!.channels.add(source.offset + r.head * d + r.neuron);
  }
  for (const r of within?.valueOutput ?? []) byWeight.get(block.v.weight)!.channels.add(block.v.offset + r.head * dv + r.neuron);
  for (const [weight, { part, channels, rows: weightRows, bias }] of byWeight) {
    const t = weight.constantTensor()!;
    const total = t.dims[part.outAxis]!;
    const kept = [...Array(total).keys()].filter((c) => !channels.has(c));
    g.setConstant(weight, keepRows(t, weightRows, part.outAxis, kept));
    if (part.bias && bias) {
      const bt = part.bias.constantTensor()!;
      g.setConstant(part.bias, keepRows(bt, bias, bt.dims.length - 1, kept));
    }
    // Constant Split sizes and Slice offsets move with the cut channels.
    const shift = (i: number): number => i - [...channels].filter((c) => c < i).length;
    const cuts = new Set([block.q, block.k, block.v].filter((p) => p.weight === weight && p.cut).map((p) => p.cut!));
    for (const cut of cuts) rewriteCut(model, cut, shift, total);
  }

  // Head counts and head sizes wherever the graph holds them.
  const dAfter = within?.headSizeAfter ?? d;
  const dvAfter = within?.valueHeadSizeAfter ?? dv;
  const staleShapes: Value[] = [];
  const setShape = (node: Node, shape: number[]): void => {
    const old = node.inputs[1];
    if (old) staleShapes.push(old);
    node.setInput(1, g.addInitializer(g.uniqueName(`${node.name || 'reshape'}_heads_shape`), Tensor.fromInt64([shape.length], shape)));
    if (node.attributes.has('allowzero')) node.setAttribute({ name: 'allowzero', type: 'int', value: 0n });
  };
  const rewritten = new Set<Node>();
  for (const [part, size] of [[block.q, dAfter], [block.k, dAfter], [block.v, dvAfter]] as const) {
    const s = part.split;
    if (!s || rewritten.has(s.node)) continue;
    rewritten.add(s.node);
    const zeros = (n: number): number[] => Array.from({ length: n }, () => 0);
    // A packed reshape-first split ([.., P, H, d]) is shared by Q, K and V, whose heads keep one size.
    if (s.role === 'packed-split') setShape(s.node, [...zeros(s.inputRank - 1), s.parts!, headsAfter, size]);
    else setShape(s.node, s.role === 'split' ? [...zeros(s.inputRank - 1), headsAfter, size] : [...zeros(s.inputRank - 2), -1, size]);
  }
  // K/V "repeated" once per head (torch's repeat_kv with one query head per key head): the Expand
  // becomes a broadcast of ones and the Reshape after it [B, H, T, d] takes the new head count.
  for (const [part, size] of [[block.k, dAfter], [block.v, dvAfter]] as const) {
    if (!part.repeated) continue;
    for (const n of part.path) {
      if (n.is('Expand')) {
        const rank = integerValues(n.inputs[1])?.length ?? rankOf(n.inputs[0]);
        if (!rank) throw new Error(`attention block "${block.id}": cannot read the shape of Expand "${n.label}"`);
        const old = n.inputs[1];
        if (old) staleShapes.push(old);
        n.setInput(1, g.addInitializer(g.uniqueName(`${n.name || 'expand'}_heads_shape`), Tensor.fromInt64([rank], Array.from({ length: rank }, () => 1))));
      } else if (n.is('Reshape') && n !== part.split?.node) {
        const length = integerValues(n.inputs[1])?.length;
        if (length !== 4) throw new Error(`attention block "${block.id}": cannot rewrite the head count of Reshape "${n.label}"`);
        setShape(n, [0, headsAfter, -1, size]);
      }
    }
  }
  if (block.merge) {
    const shapeLength = integerValues(block.merge.node.inputs[1])?.length ?? 0;
    const r = block.merge.inputRank;
    if ((block.q.split?.role === 'split' || block.q.split?.role === 'packed-split') && shapeLength === r - 1) setShape(block.merge.node, [...Array.from({ length: r - 2 }, () => 0), headsAfter * dvAfter]);
    else if (shapeLength === 2) setShape(block.merge.node, [-1, headsAfter * dvAfter]);
    else throw new Error(`attention block "${block.id}": cannot rewrite the head count of Reshape "${block.merge.node.label}" (${r}-D input to ${shapeLength}-D)`);
  }
  const fused = block.fused;
  if (fused) {
    for (const name of ['num_heads', 'q_num_heads', 'kv_num_heads']) {
      if (fused.attributes.has(name)) fused.setAttribute({ name, type: 'int', value: BigInt(headsAfter) });
    }
    const sizes = fused.getInts('qkv_hidden_sizes');
    if (sizes) fused.setAttribute({ name: 'qkv_hidden_sizes', type: 'ints', value: [headsAfter * dAfter, headsAfter * dAfter, headsAfter * dvAfter].map(BigInt) });
    // The op's default scale is 1/sqrt(head size): keep the one the scores were computed with.
    if (dAfter !== d && !fused.attributes.has('scale')) fused.setAttribute({ name: 'scale', type: 'float', value: 1 / Math.sqrt(d) });
  }
  removeDeadProducers(model, staleShapes);
  // Declared shapes inside the block held the old widths.
  const inner = [...block.nodes, ...[block.q, block.k, block.v].flatMap((p) => [p.layer?.producer, p.layer?.biasNode, p.cut])].filter((n): n is Node => !!n);
  for (const n of inner) {
    for (const v of n.outputs) if (v.type?.kind === 'tensor' && v.type.shape && !v.isGraphOutput) v.type = { kind: 'tensor', elemType: v.type.elemType };
  }
}

/** `t` with only the rows `kept` (rows given along `axis`), in its own element type. */
function keepRows(t: Tensor, rows: Float64Array, axis: number, kept: number[]): Tensor {
  const len = rows.length / t.dims[axis]!;
  const out = new Float64Array(kept.length * len);
  kept.forEach((k, i) => out.set(rows.subarray(k * len, (k + 1) * len), i * len));
  const dims = t.dims.map((d, i) => (i === axis ? kept.length : d));
  return Tensor.fromNumbers(t.dataType, dims, rowsToAxis(out, kept.length, dims, axis), t.name);
}

/** A Split's constant sizes or a Slice's constant starts/ends, moved to the kept channels. */
function rewriteCut(model: Model, cut: Node, shift: (i: number) => number, total: number): void {
  const g = model.graph;
  const replace = (index: number, values: number[]): void => {
    cut.setInput(index, g.addInitializer(g.uniqueName(`${cut.name || cut.opType}_heads_${index}`), Tensor.fromInt64([values.length], values)));
  };
  if (cut.is('Split')) {
    const sizes = cut.inputs[1] ? integerValues(cut.inputs[1]) : cut.getInts('split');
    if (!sizes) return; // equal parts: they stay equal when every part loses the same heads
    let start = 0;
    const next = sizes.map((s) => {
      const n = shift(start + s) - shift(start);
      start += s;
      return n;
    });
    if (cut.inputs[1]) replace(1, next);
    else cut.setAttribute({ name: 'split', type: 'ints', value: next.map(BigInt) });
    return;
  }
  for (const index of [1, 2]) {
    const v = cut.inputs[index];
    const t = v?.constantTensor();
    if (!t) continue; // computed from the projection's shape: follows the new width by itself
    const values = [...t.toFloat64()].map((i) => (i >= total ? i : shift(i < 0 ? i + total : i)));
    replace(index, values);
  }
}

/** Removes the nodes that computed `values` once nothing reads them (a dynamic shape subgraph). */
function removeDeadProducers(model: Model, values: Value[]): void {
  const g = model.graph;
  const queue = [...values];
  while (queue.length) {
    const v = queue.shift()!;
    const n = v.producer;
    if (!n || v.isGraphOutput || n.outputs.some((o) => o.useCount > 0 || o.isGraphOutput)) continue;
    const inputs = n.inputs.filter((x): x is Value => !!x);
    g.removeNodes([n]);
    queue.push(...inputs);
  }
}
