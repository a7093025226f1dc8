// Carrying out a MergePlan on a model: consumers absorb merged and static neurons, then the
// neurons' slices are cut from the producer's weights, bias and per-neuron activation constants.

import type { Consumer, NeuronLayer } from '../analysis/find-layers.js';
import { applyHeadMerges } from './merge-heads.js';
import { channelwiseOps, consumerRules, flatteningViews, producerRules, ruleFor } from '../analysis/layer-rules.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import type { Value } from '../ir/value.js';
import { axisToRows, rowsToAxis } from '../numeric/axis-slices.js';
import { solveSymmetricPositive } from '../numeric/linear-solve.js';
import { refitOnPivots } from '../numeric/pivoted-cholesky.js';
import { integerValues } from '../analysis/shape-values.js';
import { factorOn } from './refit-factors.js';
import type { StreamingMoments } from '../numeric/streaming-moments.js';
import { findChannelGroups, groupChannels, groupStatisticsKey, type ChannelGroup, type GroupMember } from '../analysis/channel-groups.js';
import { coupleAt, rankOf, type ChannelLink } from '../analysis/coupling-rules.js';
import { findLayers } from '../analysis/find-layers.js';
import { streamParts } from '../analysis/residual-stream.js';
import { rewriteStreamConstants } from './merge-stream.js';
import type { Node } from '../ir/node.js';
import type { GroupMergePlan, LayerMergePlan, MergePlan } from './plan-merges.js';

/**
 * Applies `plan` to `model` in place. `layers` must be found on this same model (findLayers);
 * `statistics` (per layer name) are needed for refit plans.
 */
export function applyMergePlan(model: Model, layers: NeuronLayer[], plan: MergePlan, statistics?: ReadonlyMap<string, StreamingMoments>): void {
  applyLayerAndGroupPlans(model, layers, plan, statistics);
  // Head merges last, on layers found again: the layer and group merges may have cut the output projection.
  if (plan.heads?.length) applyHeadMerges(model, findLayers(model), plan.heads);
}

function applyLayerAndGroupPlans(model: Model, layers: NeuronLayer[], plan: MergePlan, statistics?: ReadonlyMap<string, StreamingMoments>): void {
  const byName = new Map(layers.map((l) => [l.name, l]));
  for (const lp of plan.layers) {
    const layer = byName.get(lp.layer);
    if (!layer) throw new Error(`merge plan names layer "${lp.layer}", which the model does not have`);
    if (!layer.mergeable) throw new Error(`merge plan names layer "${lp.layer}", which is not mergeable: ${layer.blockers.map((b) => b.message).join('; ')}`);
    applyLayerPlan(model, layer, lp, statistics?.get(lp.layer));
  }
  // Each group is found again on the model as rewritten so far: a group's consumers may be another
  // group's producers (a stage's expand conv reads the residual stream), and their weights changed.
  for (const gp of plan.groups) {
    const group = findChannelGroups(findLayers(model)).find((g) => g.id === gp.group);
    if (!group || !(group.mergeable || (gp.stream && group.approximateOnly))) throw new Error(`merge plan names channel group "${gp.group}", which the model does not have as a mergeable group`);
    applyGroupPlan(model, group, gp, statistics);
  }
}

/** Group channel -> local channel of `member` (padding channels included). */
function localChannels(member: GroupMember, groupWidth: number): Map<number, number> {
  return new Map(groupChannels(member, groupWidth).map((g, c) => [g, c]));
}

/**
 * A group merge: every consumer folds channel j into r with the scale t on the member it reads,
 * every member loses the removed channels at its own index map (producers' rows, a depthwise
 * conv's filters, zero constants), and the ops whose constants count channels are rewritten.
 */
function applyGroupPlan(model: Model, group: ChannelGroup, gp: GroupMergePlan, statistics: ReadonlyMap<string, StreamingMoments> | undefined): void {
  const removed = new Set<number>(gp.refit ? gp.refit.dropped : [...gp.merges.map((m) => m.neuron), ...gp.statics.map((s) => s.neuron)]);
  const memberOf = new Map(group.members.map((m) => [m.value, m]));
  const keptOfMember = (m: GroupMember): number[] => groupChannels(m, group.width).flatMap((g, c) => (removed.has(g) ? [] : [c]));
  // Read how each coupling node links channels before any weight or count changes.
  const couplings = group.couplingNodes.map((node) => ({ node, links: nodeLinks(node, memberOf) }));
  // A residual stream: embedding tables and normalisations lose the channels too (merge-stream.ts).
  if (gp.stream) rewriteStreamConstants(model, group, gp);
  for (const consumer of group.consumers) {
    const m = memberOf.get(consumer.member)!;
    const width = m.width ?? group.width;
    const local = localChannels(m, group.width);
    if (gp.refit) {
      const stats = statistics?.get(groupStatisticsKey(group, m.value));
      if (!stats) throw new Error(`group "${gp.group}" has a refit plan but no statistics for "${m.value.name}"`);
      refitConsumer(model, { name: groupStatisticsKey(group, m.value), width, neuronAxisFromEnd: m.axisFromEnd }, consumer, keptOfMember(m), stats);
      continue;
    }
    const rows = consumerRows(consumer);
    const len = rows.length / width;
    for (const merge of gp.merges) {
      const scale = merge.scales[m.value.name];
      const lj = local.get(merge.neuron);
      const lr = local.get(merge.into);
      // A member that holds neither channel (or only as padding zeros) has nothing to fold.
      if (scale === undefined || lj === undefined) continue;
      if (lr === undefined) throw new Error(`group "${gp.group}": "${m.value.name}" holds channel ${merge.neuron} but not ${merge.into}`);
      for (let i = 0; i < len; i++) rows[lr * len + i]! += scale * rows[lj * len + i]!;
    }
    writeConsumer(model, { width, neuronAxisFromEnd: m.axisFromEnd }, consumer, rows, len, keptOfMember(m), undefined);
  }
  for (const producer of group.producers) {
    const kept = keptOfMember(memberOf.get(producer.activation.output)!);
    cutProducer(model, producer, kept);
    const rule = ruleFor(producerRules, producer.producer);
    if (group.diagonalInputs.has(producer) && rule?.diagonalWidthAttribute) producer.producer.setAttribute({ name: rule.diagonalWidthAttribute, type: 'int', value: BigInt(kept.length) });
  }
  for (const { node, links } of couplings) if (links) rewriteChannelCounts(model, node, links, memberOf, keptOfMember);
  for (const m of group.members) {
    const kept = keptOfMember(m);
    if (m.value.constantTensor()) {
      const dims = m.value.constantTensor()!.dims;
      model.graph.setConstant(m.value, keepAlongAxis(m.value, dims.length - m.axisFromEnd, kept));
    } else updateNeuronDim(m.value, m.axisFromEnd, m.width ?? group.width, kept.length);
  }
  if (gp.stream) {
    // Values inside a decomposed normalisation (x^2, x / rms) carry the channels too.
    const widthAfter = gp.refit!.kept.length;
    for (const n of streamParts(group).normalisations) for (const node of n.nodes) for (const v of node.outputs) updateNeuronDim(v, 1, group.width, widthAfter);
  }
}

/**
 * Ops whose constants count channels (Pad's pads, Split's sizes, Slice's bounds, Resize's sizes)
 * get the counts after the cut; the coupling rule that joined the node says which ranges it links.
 */
/** How a coupling node links its members' channels, read from its coupling rule. */
function nodeLinks(node: Node, memberOf: Map<Value, GroupMember>): ChannelLink[] | undefined {
  if (node.is('ConstantOfShape')) return [];
  const input = node.inputs[0];
  const inMember = input ? memberOf.get(input) : undefined;
  if (!input || !inMember) return undefined;
  return coupleAt(node, input, inMember.axisFromEnd, inMember.rank)?.coupling.links;
}

function rewriteChannelCounts(model: Model, node: Node, links: ChannelLink[], memberOf: Map<Value, GroupMember>, keptOf: (m: GroupMember) => number[]): void {
  if (node.is('ConstantOfShape')) {
    zerosWithChannels(model, node, memberOf.get(node.outputs[0]!)!, keptOf);
    return;
  }
  if (node.is('BatchNormalization')) {
    // Its per-channel scale, bias, mean and variance lose the input's removed channels.
    const kept = keptOf(memberOf.get(node.inputs[0]!)!);
    for (const v of node.inputs.slice(1, 5)) if (v) model.graph.setConstant(v, keepAlongAxis(v, 0, kept));
    return;
  }
  const input = node.inputs[0]!;
  const inMember = memberOf.get(input)!;
  const keptBefore = (v: Value, start: number, count: number): { start: number; count: number } => {
    const m = memberOf.get(v)!;
    const kept = new Set(keptOf(m));
    let newStart = 0;
    let newCount = 0;
    for (let c = 0; c < start + count; c++) if (kept.has(c)) (c < start ? newStart++ : newCount++);
    return { start: newStart, count: newCount };
  };
  const rank = inMember.rank ?? rankOf(input);
  if (rank === undefined) return;
  const axis = rank - inMember.axisFromEnd;
  if (node.is('Pad')) {
    const link = links[0]!;
    const out = memberOf.get(node.outputs[0]!);
    if (!out || link.toStart === 0 && link.count === (out.width ?? 0)) return;
    const to = keptBefore(link.to, link.toStart, link.count);
    const pads = readInts(node, 1, 'pads')!;
    pads[axis] = to.start;
    pads[axis + rank] = keptOf(out).length - to.start - to.count;
    writeInts(model, node, 1, 'pads', pads);
  } else if (node.is('Slice')) {
    const link = links[0]!;
    const starts = readInts(node, 1, 'starts')!;
    const axes = readInts(node, 3, 'axes') ?? starts.map((_, i) => i);
    const i = axes.findIndex((a) => (a < 0 ? a + rank : a) === axis);
    if (i < 0) return;
    const ends = readInts(node, 2, 'ends')!;
    const from = keptBefore(link.from, link.fromStart, link.count);
    starts[i] = from.start;
    ends[i] = from.start + from.count;
    writeInts(model, node, 1, 'starts', starts);
    writeInts(model, node, 2, 'ends', ends);
  } else if (node.is('Split')) {
    const sizes = links.map((l) => keptBefore(l.from, l.fromStart, l.count).count);
    if (links.every((l) => l.fromStart === 0)) return;
    if (readInts(node, 1, 'split')) writeInts(model, node, 1, 'split', sizes);
    else if (sizes.some((x) => x !== sizes[0])) {
      if (node.getInt('num_outputs', 0) || model.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx')!.version >= 13) {
        node.attributes.delete('num_outputs');
        node.setInput(1, model.graph.addInitializer(model.graph.uniqueName(`${node.name || 'split'}_sizes`), Tensor.fromInt64([sizes.length], sizes)));
      } else node.setAttribute({ name: 'split', type: 'ints', value: sizes.map((x) => BigInt(x)) });
    }
  } else if (node.is('Resize') && node.inputs[3]?.constantTensor()) {
    const sizes = readInts(node, 3, 'sizes')!;
    const out = memberOf.get(node.outputs[0]!);
    if (out && sizes.length === rank) {
      sizes[axis] = keptOf(out).length;
      writeInts(model, node, 3, 'sizes', sizes);
    }
  }
}

/**
 * zeros_like(x) padding the channels keeps the zero channels the merge kept, which need not be
 * as many as x keeps: its shape becomes Shape(x) with the channel entry replaced by that count.
 */
function zerosWithChannels(model: Model, node: Node, member: GroupMember, keptOf: (m: GroupMember) => number[]): void {
  const g = model.graph;
  const shape = node.inputs[0]!;
  const rank = member.rank ?? rankOf(member.value) ?? rankOf(shape.producer!.inputs[0]!);
  if (rank === undefined) throw new Error(`cannot rewrite zeros_like "${node.label}": the rank of its shape is unknown`);
  const axis = rank - member.axisFromEnd;
  const name = (base: string): string => g.uniqueName(`${node.name || 'zeros_like'}_${base}`);
  const ints = (base: string, values: number[]): Value => g.addInitializer(name(base), Tensor.fromInt64([values.length], values));
  const parts: Value[] = [];
  if (axis > 0) parts.push(g.addNode({ opType: 'Slice', inputs: [shape, ints('head_start', [0]), ints('head_end', [axis])], outputs: [name('head')], after: node.inputs[0]!.producer! }).outputs[0]!);
  parts.push(ints('channels', [keptOf(member).length]));
  if (axis < rank - 1) parts.push(g.addNode({ opType: 'Slice', inputs: [shape, ints('tail_start', [axis + 1]), ints('tail_end', [rank])], outputs: [name('tail')], after: node.inputs[0]!.producer! }).outputs[0]!);
  const joined = g.addNode({ opType: 'Concat', inputs: parts, outputs: [name('shape')], attributes: [{ name: 'axis', type: 'int', value: 0n }], after: node.inputs[0]!.producer! }).outputs[0]!;
  node.setInput(0, joined);
}

/** Integers held by a constant input (newer opsets) or an attribute (older ones). */
function readInts(node: Node, input: number, attribute: string): number[] | undefined {
  const v = node.inputs[input];
  if (v) {
    const t = v.constantTensor();
    return t ? [...t.toFloat64()] : undefined;
  }
  return node.getInts(attribute);
}

/** Writes integers where readInts found them; a constant other nodes read too is copied first. */
function writeInts(model: Model, node: Node, input: number, attribute: string, values: number[]): void {
  const v = node.inputs[input];
  if (!v) {
    node.setAttribute({ name: attribute, type: 'ints', value: values.map((x) => BigInt(x)) });
    return;
  }
  const t = Tensor.fromInt64(v.constantTensor()!.dims, values);
  if (v.useCount > 1 || v.isGraphOutput) node.setInput(input, model.graph.addInitializer(model.graph.uniqueName(`${v.name}_${node.name || node.opType}`), t));
  else model.graph.setConstant(v, t);
}

function applyLayerPlan(model: Model, layer: NeuronLayer, lp: LayerMergePlan, stats: StreamingMoments | undefined): void {
  const dropped = new Set<number>(lp.refit ? lp.refit.dropped : [...lp.merges.map((m) => m.neuron), ...lp.statics.map((s) => s.neuron)]);
  const kept = [...Array(layer.width).keys()].filter((k) => !dropped.has(k));
  for (const consumer of layer.consumers) {
    if (lp.refit?.ordered) refitConsumerPivoted(model, layer, consumer, lp, stats);
    else if (lp.refit) refitConsumer(model, layer, consumer, lp.refit.kept, stats);
    else foldIntoConsumer(model, layer, consumer, lp);
  }
  cutProducer(model, layer, kept);
}

/** Producer side of a merge: keep only the surviving neurons' weights, bias and activation constants. */
function cutProducer(model: Model, layer: NeuronLayer, kept: number[]): void {
  if (layer.gated) {
    // A gated MLP's neuron is a (gate row, up row) pair: both projections lose it, and so does the product.
    cutProducer(model, layer.gated.gate, kept);
    cutProducer(model, layer.gated.up, kept);
    for (const v of layer.gated.mul.outputs) updateNeuronDim(v, 1, layer.width, kept.length);
    return;
  }
  const g = model.graph;
  g.setConstant(layer.weight.value, keepAlongAxis(layer.weight.value, layer.outAxis, kept));
  if (layer.bias?.perNeuron) {
    const dims = layer.bias.value.constantTensor()!.dims;
    g.setConstant(layer.bias.value, keepAlongAxis(layer.bias.value, dims.length - 1, kept));
  }
  for (const v of layer.activation.perNeuron) {
    const dims = v.constantTensor()!.dims;
    g.setConstant(v, keepAlongAxis(v, dims.length - layer.neuronAxisFromEnd, kept));
  }
  // Declared shapes of the layer's inner values now have the new width on the neuron axis.
  const inner: Value[] = [...layer.producer.outputs, ...(layer.biasNode?.outputs ?? []), ...layer.activation.nodes.flatMap((n) => n.outputs)];
  for (const v of inner) updateNeuronDim(v, layer.neuronAxisFromEnd, layer.width, kept.length);
}

/** A declared shape's neuron axis goes from `width` to `widthAfter`. */
function updateNeuronDim(v: Value, neuronAxisFromEnd: number, width: number, widthAfter: number): void {
  if (v.type?.kind !== 'tensor' || !v.type.shape) return;
  const axis = v.type.shape.length - neuronAxisFromEnd;
  const d = v.type.shape[axis];
  if (d?.value === width) v.type = { ...v.type, shape: v.type.shape.map((x, i) => (i === axis ? { ...x, value: widthAfter } : x)) };
}

/** The constant `v` with only the slices `kept` along `axis`, in its own element type. */
function keepAlongAxis(v: Value, axis: number, kept: number[]): Tensor {
  const t = v.constantTensor()!;
  const rows = axisToRows(t.toFloat64(), t.dims, axis);
  const len = rows.length / t.dims[axis]!;
  const out = new Float64Array(kept.length * len);
  kept.forEach((k, i) => out.set(rows.subarray(k * len, (k + 1) * len), i * len));
  const dims = t.dims.map((d, i) => (i === axis ? kept.length : d));
  return Tensor.fromNumbers(t.dataType, dims, rowsToAxis(out, kept.length, dims, axis), t.name);
}

/**
 * The ops between a layer and its consumer that name the channel count: a Reshape to
 * [batch, C*H*W] before a Gemm gets (kept*H*W), and the declared shapes on the path get the new
 * count (a model whose Reshape still says C*H*W is refused by onnxruntime).
 */
function rewritePath(model: Model, consumer: Consumer, width: number, axisFromEnd: number, widthAfter: number): void {
  const flatAt = consumer.path.findIndex((n) => ruleFor(flatteningViews, n) !== undefined);
  const block = flatAt >= 0 ? consumer.viewDims.reduce((p, d, i) => (i === consumer.inAxis || i === consumer.outAxis ? p : p * d), 1) : 1;
  let axis = axisFromEnd;
  consumer.path.forEach((n, i) => {
    const out = n.outputs[0]!;
    if (flatAt >= 0 && i >= flatAt) {
      if (n.is('Reshape')) {
        const shape = readInts(n, 1, 'shape');
        if (shape && shape[shape.length - 1] === width * block) {
          shape[shape.length - 1] = widthAfter * block;
          writeInts(model, n, 1, 'shape', shape);
        } else if (!shape && integerValues(n.inputs[1])?.[1] === width * block && n.getInt('allowzero', 0) === 0) {
          // A computed [batch, C*H*W] (the batch from Shape): [0, kept*H*W] copies the batch dim
          // and needs no computing; the shape subgraph left unread goes with cleanUp.
          n.setInput(1, model.graph.addInitializer(model.graph.uniqueName(`${n.name || 'Reshape'}_shape`), Tensor.fromInt64([2], [0, widthAfter * block])));
        }
      }
      updateNeuronDim(out, 1, width * block, widthAfter * block);
      return;
    }
    const rank = out.shape?.length;
    axis = ruleFor(channelwiseOps, n)?.outputAxisFromEnd?.(n, axis, rank) ?? axis;
    updateNeuronDim(out, axis, width, widthAfter);
  });
}

/** Exact merges: A[:, r] += t A[:, j]; statics: c += A[:, j] * value (condensation.md). */
function foldIntoConsumer(model: Model, layer: NeuronLayer, consumer: Consumer, lp: LayerMergePlan): void {
  const rows = consumerRows(consumer);
  const len = rows.length / layer.width;
  for (const m of lp.merges) {
    for (let i = 0; i < len; i++) rows[m.into * len + i]! += m.scale * rows[m.neuron * len + i]!;
  }
  const outputs = consumerOutputCount(consumer);
  const biasDelta = new Float64Array(outputs);
  let hasDelta = false;
  for (const s of lp.statics) {
    if (s.value === 0) continue;
    hasDelta = true;
    const perOutput = sumPerOutput(rows.subarray(s.neuron * len, (s.neuron + 1) * len), consumer);
    for (let o = 0; o < outputs; o++) biasDelta[o]! += s.value * perOutput[o]!;
  }
  writeConsumer(model, layer, consumer, rows, len, keptOf(layer.width, lp), hasDelta ? biasDelta : undefined);
}

/** The consumer's weight as one row per input neuron (the neuron's slice of viewDims). */
function consumerRows(consumer: Consumer): Float64Array {
  return axisToRows(consumer.weight.value.constantTensor()!.toFloat64(), consumer.viewDims, consumer.inAxis);
}

function consumerOutputCount(consumer: Consumer): number {
  return consumer.viewDims[consumer.outAxis]!;
}

/**
 * What a constant input of 1 on this neuron's slice adds to each consumer output: the sum of the
 * slice over everything but the output axis (kernel positions, a Flatten block).
 */
function sumPerOutput(row: Float64Array, consumer: Consumer): Float64Array {
  const rowDims = consumer.viewDims.filter((_, i) => i !== consumer.inAxis);
  const outAxis = consumer.outAxis < consumer.inAxis ? consumer.outAxis : consumer.outAxis - 1;
  const byOutput = axisToRows(row, rowDims, outAxis);
  const outputs = rowDims[outAxis]!;
  const per = byOutput.length / outputs;
  const sums = new Float64Array(outputs);
  for (let o = 0; o < outputs; o++) for (let i = 0; i < per; i++) sums[o]! += byOutput[o * per + i]!;
  return sums;
}

function keptOf(width: number, lp: LayerMergePlan): number[] {
  const dropped = new Set([...lp.merges.map((m) => m.neuron), ...lp.statics.map((s) => s.neuron)]);
  return [...Array(width).keys()].filter((k) => !dropped.has(k));
}

/**
 * Least-squares refit on the probe statistics: with mean mu and covariance S of h,
 * A' = A S[:, K] S[K, K]^-1 and c' = c + A mu - A' mu_K (condensation.md, data-driven compensation).
 */
function refitConsumer(model: Model, layer: Pick<NeuronLayer, 'name' | 'width' | 'neuronAxisFromEnd'>, consumer: Consumer, kept: number[], stats: StreamingMoments | undefined): void {
  if (!stats) throw new Error(`layer "${layer.name}" has a refit plan but no statistics`);
  const width = layer.width;
  const rows = consumerRows(consumer);
  const len = rows.length / width;
  const cov = stats.covariance();
  const n = kept.length;
  const skk = new Float64Array(n * n);
  for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) skk[a * n + b] = cov[kept[a]! * width + kept[b]!]!;
  // Right-hand side S[K, :] R, with R the consumer's rows (width x len).
  const rhs = new Float64Array(n * len);
  for (let a = 0; a < n; a++) {
    const ka = kept[a]! * width;
    for (let k = 0; k < width; k++) {
      const s = cov[ka + k]!;
      if (s === 0) continue;
      for (let i = 0; i < len; i++) rhs[a * len + i]! += s * rows[k * len + i]!;
    }
  }
  const refit = solveSymmetricPositive(skk, n, rhs, len, 1e-9);
  const mu = stats.mean;
  // Bias change: (R^T mu - R'^T mu_K), summed per consumer output.
  const delta = new Float64Array(len);
  for (let k = 0; k < width; k++) for (let i = 0; i < len; i++) delta[i]! += rows[k * len + i]! * mu[k]!;
  kept.forEach((k, a) => {
    for (let i = 0; i < len; i++) delta[i]! -= refit[a * len + i]! * mu[k]!;
  });
  const full = new Float64Array(rows.length);
  kept.forEach((k, a) => full.set(refit.subarray(a * len, (a + 1) * len), k * len));
  writeConsumer(model, layer, consumer, full, len, kept, sumPerOutput(delta, consumer));
}

/**
 * The same least-squares refit through a Cholesky pivoted on the first `regressors` of `kept`, in
 * order: the dropped neurons' outputs are fit from those (x_D ~ B x_K, B = L_K^-T L_D^T); the other
 * kept neurons, and a regressor the earlier ones already predict, keep their consumer weights, so
 * a rank-deficient S_KK (more neurons than fit samples, copies) needs no ridge. A'_K = A_K + B A_D
 * and c' = c + A^T mu - A'^T mu (condensation.md, data-driven compensation).
 */
function refitConsumerPivoted(model: Model, layer: NeuronLayer, consumer: Consumer, lp: LayerMergePlan, stats: StreamingMoments | undefined): void {
  if (!stats) throw new Error(`layer "${layer.name}" has a refit plan but no statistics`);
  const { kept } = lp.refit!;
  const regressors = lp.refit!.regressors ?? kept.length;
  const width = layer.width;
  const rows = consumerRows(consumer);
  const len = rows.length / width;
  // Exact merges fold exactly first (A[:, r] += t A[:, j]); the refit then sees j as gone.
  for (const m of lp.merges) {
    for (let i = 0; i < len; i++) rows[m.into * len + i]! += m.scale * rows[m.neuron * len + i]!;
    rows.fill(0, m.neuron * len, (m.neuron + 1) * len);
  }
  const keptSet = new Set(kept);
  const dropped = [...Array(width).keys()].filter((k) => !keptSet.has(k));
  const factor = factorOn(stats, kept.slice(0, regressors));
  const update = refitOnPivots(factor, dropped, rows, len);
  const full = new Float64Array(rows.length);
  for (const j of kept) full.set(rows.subarray(j * len, (j + 1) * len), j * len);
  factor.pivots.forEach((p, s) => {
    for (let o = 0; o < len; o++) full[p * len + o]! += update[s * len + o]!;
  });
  const mu = stats.mean;
  const delta = new Float64Array(len);
  for (let j = 0; j < width; j++) {
    const m = mu[j]!;
    if (m === 0) continue;
    const isKept = keptSet.has(j);
    for (let o = 0; o < len; o++) delta[o]! += (rows[j * len + o]! - (isKept ? full[j * len + o]! : 0)) * m;
  }
  writeConsumer(model, layer, consumer, full, len, kept.slice().sort((a, b) => a - b), sumPerOutput(delta, consumer));
}

/** Writes the consumer's rows (only `kept`) back and adds `biasDelta` (in y's units) to its bias. */
function writeConsumer(model: Model, layer: Pick<NeuronLayer, 'width' | 'neuronAxisFromEnd'>, consumer: Consumer, rows: Float64Array, len: number, keep: number[], biasDelta: Float64Array | undefined): void {
  const g = model.graph;
  rewritePath(model, consumer, layer.width, layer.neuronAxisFromEnd, keep.length);
  const t = consumer.weight.value.constantTensor()!;
  const out = new Float64Array(keep.length * len);
  keep.forEach((k, i) => out.set(rows.subarray(k * len, (k + 1) * len), i * len));
  const view = consumer.viewDims.map((d, i) => (i === consumer.inAxis ? keep.length : d));
  const kept = rowsToAxis(out, keep.length, view, consumer.inAxis);
  // The view splits a flattened axis; the tensor keeps the weight's own rank.
  const dims = [...t.dims];
  const inAxis = t.dims.length === view.length ? consumer.inAxis : consumer.inAxis === 0 ? 0 : 1;
  dims[inAxis] = kept.length / t.dims.reduce((p, d, i) => (i === inAxis ? p : p * d), 1);
  g.setConstant(consumer.weight.value, Tensor.fromNumbers(t.dataType, dims, kept, t.name));
  if (!biasDelta) return;
  // y = scale * (h . A) + biasScale * c: a change d of y needs c += d * scale / biasScale.
  const weightScale = consumer.weight.scale;
  if (consumer.bias) {
    const bt = consumer.bias.value.constantTensor()!;
    const c = bt.toFloat64();
    const factor = weightScale / consumer.bias.scale;
    for (let i = 0; i < biasDelta.length; i++) c[i]! += factor * biasDelta[i]!;
    g.setConstant(consumer.bias.value, Tensor.fromNumbers(bt.dataType, bt.dims, c, bt.name));
    return;
  }
  const dataType = t.dataType;
  const values = biasDelta.map((d) => d * weightScale);
  const outputs = values.length;
  const node = consumer.node;
  const insertion = ruleFor(consumerRules, node)?.biasInsertion;
  if (!insertion) throw new Error(`consumer "${node.label}" (${node.opType}) has no rule for inserting a bias`);
  if (insertion.kind === 'input') {
    if (insertion.resetAttribute && node.getFloat(insertion.resetAttribute, 1) !== 1) node.setAttribute({ name: insertion.resetAttribute, type: 'float', value: 1 });
    node.setInput(insertion.index, g.addInitializer(`${node.name || node.opType.toLowerCase()}_bias`, Tensor.fromNumbers(dataType, [outputs], values)));
    return;
  }
  // An Add after the node; the Add takes over the product's name so that downstream names (and
  // graph output names) stay as they were.
  const product = node.outputs[0]!;
  const bias = g.addInitializer(`${node.name || node.opType.toLowerCase()}_bias`, Tensor.fromNumbers(dataType, [outputs], values));
  const add = g.addNode({ opType: 'Add', inputs: [product, bias], outputs: [`${product.name}_biased`], after: node });
  const sum = add.outputs[0]!;
  g.replaceAllUses(product, sum);
  add.setInput(0, product);
  g.handOverName(product, sum, sum.name);
}
