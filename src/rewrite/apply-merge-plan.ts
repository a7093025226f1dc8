// Carrying out a MergePlan on a model: consumers absorb merged and static neurons, then the
// neurons' slices are cut from the producer's weights, bias and per-neuron activation constants.

import { findLayers, type Consumer, type NeuronLayer } from '../analysis/find-layers.js';
import { applyHeadMerges } from './merge-heads.js';
import { consumerRules, ruleFor } from '../analysis/layer-rules.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import type { Value } from '../ir/value.js';
import { axisToRows, rowsToAxis } from '../numeric/axis-slices.js';
import { solveSymmetricPositive } from '../numeric/linear-solve.js';
import type { StreamingMoments } from '../numeric/streaming-moments.js';
import { findChannelGroups, type ChannelGroup } from '../analysis/channel-groups.js';
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
  if (plan.groups.length === 0) return;
  const groups = new Map(findChannelGroups(layers).map((g) => [g.id, g]));
  for (const gp of plan.groups) {
    const group = groups.get(gp.group);
    if (!group || !group.mergeable) throw new Error(`merge plan names channel group "${gp.group}", which the model does not have as a mergeable group`);
    applyGroupPlan(model, group, gp);
  }
}

/** A group merge: every consumer absorbs, every producer loses the merged channels. */
function applyGroupPlan(model: Model, group: ChannelGroup, gp: GroupMergePlan): void {
  const lp: LayerMergePlan = { layer: gp.group, width: gp.width, widthAfter: gp.widthAfter, merges: gp.merges, statics: [] };
  const kept = keptOf(gp.width, lp);
  const shapeCarrier = group.producers[0]!;
  for (const consumer of group.consumers) foldIntoConsumer(model, shapeCarrier, consumer, lp);
  for (const producer of group.producers) cutProducer(model, producer, kept);
  for (const v of group.values) updateNeuronDim(v, shapeCarrier.neuronAxisFromEnd, gp.width, kept.length);
}

function applyLayerPlan(model: Model, layer: NeuronLayer, lp: LayerMergePlan, stats: StreamingMoments | undefined): void {
  const dropped = new Set<number>(lp.refit ? lp.refit.dropped : [...lp.merges.map((m) => m.neuron), ...lp.statics.map((s) => s.neuron)]);
  const kept = [...Array(layer.width).keys()].filter((k) => !dropped.has(k));
  for (const consumer of layer.consumers) {
    if (lp.refit) refitConsumer(model, layer, consumer, lp.refit.kept, stats);
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
function refitConsumer(model: Model, layer: NeuronLayer, consumer: Consumer, kept: number[], stats: StreamingMoments | undefined): void {
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

/** Writes the consumer's rows (only `kept`) back and adds `biasDelta` (in y's units) to its bias. */
function writeConsumer(model: Model, layer: NeuronLayer, consumer: Consumer, rows: Float64Array, len: number, keep: number[], biasDelta: Float64Array | undefined): void {
  const g = model.graph;
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
