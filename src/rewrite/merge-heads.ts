// Whole-head merges: a duplicate head b (Q K^T equal to head a's, V_b = M V_a) is dropped and its
// output rows folded into a's: softmax(q k^T) v is the same attention pattern for both, so
//   P V_b O_b = P (M V_a) O_b = P V_a (M^T O_b)   and   O_a <- O_a + M^T O_b
// is exact. The rewrite cuts head b's rows from W_Q, W_K, W_V (and biases; offsets move in packed
// projections), its row block from W_O, and writes the new head count wherever the graph holds it:
// Reshape shapes (rewritten as constants with 0 = "copy this dim" and -1 = "the rest", so a
// dynamic Shape -> Gather -> Concat subgraph no longer matters), constant Split/Slice offsets, and
// fused ops' num_heads attributes. Plan (pure, serialisable) and apply are separate, as for layers.

import { findAttention, type AttentionBlock, type ProjectionPart } from '../analysis/attention.js';
import type { AttentionAudit } from '../analysis/head-audit.js';
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
}

/** Plans the merges of every duplicate head in blocks whose heads can be merged in place. Pure. */
export function planHeadMerges(audits: readonly AttentionAudit[]): HeadMergePlan[] {
  const plans: HeadMergePlan[] = [];
  for (const a of audits) {
    const b = a.block;
    if (b.blockers.length || !a.duplicates.length || !b.output) continue;
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
    });
  }
  return plans;
}

/** Neurons (projection rows) the plans remove: Q, K and V rows of every dropped head. */
export function headMergeNeurons(plans: readonly HeadMergePlan[]): number {
  return plans.reduce((s, p) => s + p.merges.length * (2 * p.headSize + p.valueHeadSize), 0);
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
  const keptOut = [...Array(block.heads * dv).keys()].filter((c) => !dropped.has(Math.floor(c / dv)));
  g.setConstant(out.weight, keepRows(ot, rows, out.inAxis, keptOut));

  // Projections: the channels of dropped heads, per weight (a packed weight holds all three parts).
  const byWeight = new Map<Value, { part: ProjectionPart; channels: Set<number> }>();
  for (const [part, size] of [[block.q, block.headSize], [block.k, block.headSize], [block.v, dv]] as const) {
    const entry = byWeight.get(part.weight) ?? { part, channels: new Set<number>() };
    for (const h of dropped) for (let c = 0; c < size; c++) entry.channels.add(part.offset + h * size + c);
    byWeight.set(part.weight, entry);
  }
  for (const [weight, { part, channels }] of byWeight) {
    const t = weight.constantTensor()!;
    const total = t.dims[part.outAxis]!;
    const kept = [...Array(total).keys()].filter((c) => !channels.has(c));
    g.setConstant(weight, keepRows(t, axisToRows(t.toFloat64(), t.dims, part.outAxis), part.outAxis, kept));
    if (part.bias) {
      const bt = part.bias.constantTensor()!;
      g.setConstant(part.bias, keepRows(bt, axisToRows(bt.toFloat64(), bt.dims, bt.dims.length - 1), bt.dims.length - 1, kept));
    }
    // Constant Split sizes and Slice offsets move with the cut channels.
    const shift = (i: number): number => i - [...channels].filter((c) => c < i).length;
    const cuts = new Set([block.q, block.k, block.v].filter((p) => p.weight === weight && p.cut).map((p) => p.cut!));
    for (const cut of cuts) rewriteCut(model, cut, shift, total);
  }

  // Head counts wherever the graph holds them.
  const staleShapes: Value[] = [];
  const setShape = (node: Node, shape: number[]): void => {
    const old = node.inputs[1];
    if (old) staleShapes.push(old);
    node.setInput(1, g.addInitializer(g.uniqueName(`${node.name || 'reshape'}_heads_shape`), Tensor.fromInt64([shape.length], shape)));
    if (node.attributes.has('allowzero')) node.setAttribute({ name: 'allowzero', type: 'int', value: 0n });
  };
  for (const [part, size] of [[block.q, block.headSize], [block.k, block.headSize], [block.v, dv]] as const) {
    const s = part.split;
    if (!s) continue;
    const zeros = (n: number): number[] => Array.from({ length: n }, () => 0);
    setShape(s.node, s.role === 'split' ? [...zeros(s.inputRank - 1), headsAfter, size] : [...zeros(s.inputRank - 2), -1, size]);
  }
  // K/V "repeated" once per head (torch's repeat_kv with one query head per key head): the Expand
  // becomes a broadcast of ones and the Reshape after it [B, H, T, d] takes the new head count.
  for (const [part, size] of [[block.k, block.headSize], [block.v, dv]] as const) {
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
    if (block.q.split?.role === 'split' && shapeLength === r - 1) setShape(block.merge.node, [...Array.from({ length: r - 2 }, () => 0), headsAfter * dv]);
    else if (shapeLength === 2) setShape(block.merge.node, [-1, headsAfter * dv]);
    else throw new Error(`attention block "${block.id}": cannot rewrite the head count of Reshape "${block.merge.node.label}" (${r}-D input to ${shapeLength}-D)`);
  }
  const fused = block.fused;
  if (fused) {
    for (const name of ['num_heads', 'q_num_heads', 'kv_num_heads']) {
      if (fused.attributes.has(name)) fused.setAttribute({ name, type: 'int', value: BigInt(headsAfter) });
    }
    const sizes = fused.getInts('qkv_hidden_sizes');
    if (sizes) fused.setAttribute({ name: 'qkv_hidden_sizes', type: 'ints', value: [headsAfter * block.headSize, headsAfter * block.headSize, headsAfter * dv].map(BigInt) });
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
