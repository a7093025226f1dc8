// Layer discovery: every weight-bearing node with constant weights becomes a NeuronLayer; those
// whose activation and consumers allow exact rewriting are marked mergeable, the others carry
// the reason in words. Reads the IR only; runs nothing.

import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { isFloatType } from '../ir/data-type.js';
import type { Value } from '../ir/value.js';
import { channelwiseOps, consumerBlockReason, consumerOutputAxis, consumerRules, producerRules } from './layer-rules.js';
import { traceActivation, type Activation } from './trace-activation.js';

/** A constant operand of a layer: its value, and the scale attributes apply to it. */
export interface WeightRef {
  value: Value;
  dims: readonly number[];
  scale: number;
}

/** A linear reader of the layer's output: y = scale * h . W (+ bias). */
export interface Consumer {
  node: Node;
  weight: WeightRef;
  /**
   * The weight seen with neuron k's slice on one axis: the weight's own dims, except that after a
   * Flatten the input axis is split into [channels, block] (each channel owns a block of columns).
   */
  viewDims: number[];
  /** Axis of viewDims whose slice k multiplies neuron k. */
  inAxis: number;
  /** Axis of viewDims that indexes the consumer's outputs (the axis its bias adds along). */
  outAxis: number;
  /** The bias the consumer adds: Gemm's C, Conv's B, or the constant of an Add after a MatMul. */
  bias?: WeightRef & { node: Node; inputIndex: number };
  /** Channel-wise nodes between the layer and this consumer (pooling, padding, Flatten). */
  path: Node[];
}

export interface NeuronLayer {
  /** The weight-bearing node's name (or opType(output) when unnamed). */
  name: string;
  /** 'Gemm', 'MatMul+Add', 'MatMul', 'Conv', ... */
  op: string;
  producer: Node;
  /** The Add that applies a MatMul's bias. */
  biasNode?: Node;
  width: number;
  weight: WeightRef;
  /** Weight axis along which neuron k's input weights lie. */
  outAxis: number;
  bias?: WeightRef & { perNeuron: boolean };
  /** Axis of the activation tensor that indexes neurons, counted from the last. */
  neuronAxisFromEnd: number;
  preActivation: Value;
  activation: Activation;
  consumers: Consumer[];
  mergeable: boolean;
  /** Why the layer is not mergeable (empty when it is). */
  reasons: string[];
  /** False when a MaxPool sits between the layer and a consumer: max(-h) != -max(h). */
  allowsNegativeScale: boolean;
  /** False when padding between the layer and a consumer turns a constant channel non-constant. */
  keepsConstants: boolean;
  /** Set for layers inside a subgraph: the node whose attribute holds it. */
  subgraphOf?: Node;
}

/** Reads a constant's numbers (float types only); undefined for anything else. */
export function constantNumbers(v: Value): Float64Array | undefined {
  const t = v.constantTensor();
  if (!t || !isFloatType(t.dataType)) return undefined;
  return t.toFloat64();
}

function constantDims(v: Value): readonly number[] | undefined {
  return v.constantTensor()?.dims;
}

/** Finds the neuron layers of a model, including (audit only) those inside subgraphs. */
export function findLayers(model: Model): NeuronLayer[] {
  const layers: NeuronLayer[] = [];
  const visit = (graph: Graph, owner: Node | undefined): void => {
    for (const node of graph.nodes) {
      const layer = matchLayer(node);
      if (layer) {
        if (owner) {
          layer.subgraphOf = owner;
          layer.mergeable = false;
          layer.reasons.unshift(`is inside the body of ${owner.opType} "${owner.label}"`);
        }
        layers.push(layer);
      }
      for (const sub of node.subgraphs()) visit(sub, owner ?? node);
    }
  };
  visit(model.graph, undefined);
  // ONNX does not require unique node names; layer names are keys, so make them unique.
  const seen = new Map<string, number>();
  for (const layer of layers) {
    const n = (seen.get(layer.name) ?? 0) + 1;
    seen.set(layer.name, n);
    if (n > 1) layer.name = `${layer.name}#${n}`;
  }
  return layers;
}

function weightRef(v: Value | null | undefined, scale: number): WeightRef | undefined {
  if (!v) return undefined;
  const t = v.constantTensor();
  if (!t || !isFloatType(t.dataType)) return undefined;
  return { value: v, dims: t.dims, scale };
}

function otherReaders(v: Value, node: Node): Node[] {
  return v.uses().map((u) => u.node).filter((n) => n !== node);
}

function matchLayer(node: Node): NeuronLayer | undefined {
  if (node.domain !== '' && node.domain !== 'ai.onnx') return undefined;
  const rule = producerRules[node.opType];
  if (!rule) return undefined;
  const weight = weightRef(node.inputs[rule.weightInput], rule.weightScale(node));
  if (!weight) return undefined;
  if (node.opType === 'MatMul' && weight.dims.length !== 2) return undefined;
  if (node.opType === 'Gemm' && weight.dims.length !== 2) return undefined;
  const reasons: string[] = [];
  const outAxis = rule.outAxis(node);
  const width = weight.dims[outAxis] ?? 0;
  const unsupported = rule.unsupported?.(node);
  if (unsupported) reasons.push(unsupported);
  if (node.opType === 'Gemm' && node.getInt('transA', 0)) reasons.push('reads its input transposed (transA=1)');
  const sharedWith = otherReaders(weight.value, node);
  if (sharedWith.length) reasons.push(`its weights are shared with "${sharedWith[0]!.label}"`);

  const isConvLike = node.opType === 'Conv' || node.opType === 'ConvTranspose';
  let op = node.opType;
  let z = node.outputs[0]!;
  let biasNode: Node | undefined;
  let bias: NeuronLayer['bias'];
  const takeBias = (v: Value | null | undefined, scale: number, owner: Node): void => {
    if (!v) return;
    const ref = weightRef(v, scale);
    if (!ref) {
      reasons.push(`its bias "${v.name}" is not a constant`);
      return;
    }
    const count = ref.dims.reduce((a, b) => a * b, 1);
    if (count === 1) bias = { ...ref, perNeuron: false };
    else if (count === width && ref.dims[ref.dims.length - 1] === width && !isConvLike) bias = { ...ref, perNeuron: true };
    else if (count === width && ref.dims.length === 1) bias = { ...ref, perNeuron: true };
    else reasons.push(`its bias "${v.name}" has shape [${ref.dims.join(', ')}], not one value per neuron`);
    if (otherReaders(v, owner).length) reasons.push(`its bias "${v.name}" is shared with "${otherReaders(v, owner)[0]!.label}"`);
  };
  if (rule.biasInput !== undefined) takeBias(node.inputs[rule.biasInput], rule.biasScale(node), node);
  if (node.opType === 'MatMul') {
    const uses = z.uses();
    const add = uses.length === 1 && !z.isGraphOutput ? uses[0]!.node : undefined;
    if (add && add.is('Add')) {
      const other = add.inputs[1 - uses[0]!.inputIndex];
      if (other && other.constantTensor()) {
        op = 'MatMul+Add';
        biasNode = add;
        takeBias(other, 1, add);
        z = add.outputs[0]!;
      }
    }
  }

  // A conv's output has the rank of its kernel (batch, channels, spatial...); dense layers put neurons last.
  const rank = z.shape?.length ?? (isConvLike ? weight.dims.length : 2);
  const neuronAxisFromEnd = rule.neuronAxisFromEnd(node, rank);
  const activation = traceActivation(z, width, neuronAxisFromEnd, constantNumbers, constantDims);
  reasons.push(...activation.blockers);
  const h = activation.output;
  const { consumers, problems, allowsNegativeScale, keepsConstants } = traceConsumers(h, new Set(activation.nodes), width, isFeatureMapAxis(rank, neuronAxisFromEnd));
  reasons.push(...problems);
  if (consumers.length === 0 && reasons.length === 0) reasons.push('its output has no linear consumer');
  return {
    name: node.label,
    op,
    producer: node,
    ...(biasNode ? { biasNode } : {}),
    width,
    weight,
    outAxis,
    ...(bias ? { bias } : {}),
    neuronAxisFromEnd,
    preActivation: z,
    activation,
    consumers,
    mergeable: reasons.length === 0,
    reasons: [...new Set(reasons)],
    allowsNegativeScale,
    keepsConstants,
  };
}

export interface TracedConsumers {
  consumers: Consumer[];
  problems: string[];
  /** The readers behind each problem (the channel-group analysis looks at Adds among them). */
  blockedReaders: { node: Node; inputIndex: number; problem: string }[];
  allowsNegativeScale: boolean;
  keepsConstants: boolean;
}

/**
 * Follows the layer output h through channel-wise ops (pooling, padding, resizing; only for
 * channel-first feature maps) and at most one Flatten to the linear consumers.
 */
export function traceConsumers(h: Value, activationNodes: Set<Node>, width: number, isFeatureMap: boolean): TracedConsumers {
  const out: TracedConsumers = { consumers: [], problems: [], blockedReaders: [], allowsNegativeScale: true, keepsConstants: true };
  const block = (node: Node, inputIndex: number, problem: string): void => {
    out.problems.push(problem);
    out.blockedReaders.push({ node, inputIndex, problem });
  };
  const visit = (v: Value, path: Node[], flattened: boolean): void => {
    if (v.isGraphOutput) out.problems.push(`its output "${v.name}" is a graph output`);
    for (const use of v.uses()) {
      const n = use.node;
      if (activationNodes.has(n)) continue;
      const channelwise = (n.domain === '' || n.domain === 'ai.onnx') && !flattened ? channelwiseOps[n.opType] : undefined;
      if (channelwise && use.inputIndex === 0 && (isFeatureMap || n.is('Identity') || n.is('Dropout'))) {
        const problem = channelwise.check?.(n);
        if (problem) {
          block(n, use.inputIndex, `"${n.label}" ${problem}`);
          continue;
        }
        out.allowsNegativeScale &&= channelwise.allowsNegativeScale;
        out.keepsConstants &&= channelwise.keepsConstants(n);
        visit(n.outputs[0]!, [...path, n], false);
        continue;
      }
      if (!flattened && use.inputIndex === 0 && (isFlatten(n) || (isFeatureMap && isReshapeTo2d(n)))) {
        visit(n.outputs[0]!, [...path, n], true);
        continue;
      }
      const c = matchConsumer(n, use.inputIndex, width, flattened, path);
      if (typeof c === 'string') block(n, use.inputIndex, c);
      else {
        if (c.node.is('Conv') && convPads(c.node)) out.keepsConstants = false;
        out.consumers.push(c);
      }
    }
  };
  visit(h, [], false);
  return out;
}

/** True when the neurons are the channels (axis 1) of a feature map of rank 3 or more. */
export function isFeatureMapAxis(rank: number, neuronAxisFromEnd: number): boolean {
  return rank - neuronAxisFromEnd === 1 && rank > 2;
}

function isFlatten(n: Node): boolean {
  return n.is('Flatten') && n.getInt('axis', 1) === 1;
}

/** A Reshape to [batch, features] (shape constant of two entries, the first 0, -1 or fixed). */
function isReshapeTo2d(n: Node): boolean {
  if (!n.is('Reshape')) return false;
  const shape = n.inputs[1]?.constantTensor();
  return !!shape && shape.elementCount === 2;
}

function convPads(n: Node): boolean {
  const autoPad = n.getString('auto_pad', 'NOTSET');
  return (autoPad !== 'NOTSET' && autoPad !== 'VALID') || (n.getInts('pads') ?? []).some((p) => p !== 0);
}

function matchConsumer(node: Node, inputIndex: number, width: number, flattened: boolean, path: Node[]): Consumer | string {
  const rule = (node.domain === '' || node.domain === 'ai.onnx') ? consumerRules[node.opType] : undefined;
  if (!rule || inputIndex !== rule.dataInput) return consumerBlockReason(node);
  if (flattened && node.is('Conv')) return `consumer "${node.label}" reads a flattened tensor`;
  const unsupported = rule.unsupported?.(node);
  if (unsupported) return `consumer "${node.label}" ${unsupported}`;
  const weight = weightRef(node.inputs[rule.weightInput], rule.weightScale(node));
  if (!weight) return `consumer "${node.label}" (${node.opType}) multiplies by a non-constant`;
  if (!node.is('Conv') && weight.dims.length !== 2) return `consumer "${node.label}" has ${weight.dims.length}-D weights`;
  if (otherReaders(weight.value, node).length) return `consumer "${node.label}" shares its weights with "${otherReaders(weight.value, node)[0]!.label}"`;
  const inAxis = rule.inAxis(node);
  const outAxis = consumerOutputAxis(node, inAxis);
  const inFeatures = weight.dims[inAxis]!;
  if (inFeatures % width !== 0 || (!flattened && inFeatures !== width)) {
    return `consumer "${node.label}" reads ${inFeatures} features, which do not split into ${width} channels`;
  }
  // After a Flatten each channel owns a contiguous block of inFeatures / width columns.
  const block = inFeatures / width;
  const viewDims = node.is('Conv') ? [...weight.dims] : inAxis === 0 ? [width, block, weight.dims[1]!] : [weight.dims[0]!, width, block];
  const consumer: Consumer = { node, weight, viewDims, inAxis: node.is('Conv') ? 1 : inAxis === 0 ? 0 : 1, outAxis: node.is('Conv') ? 0 : inAxis === 0 ? 2 : 0, path };
  const outWidth = weight.dims[outAxis]!;
  const biasOf = (owner: Node, index: number, scale: number): Consumer['bias'] | string => {
    const v = owner.inputs[index];
    if (!v) return undefined;
    const ref = weightRef(v, scale);
    if (!ref) return `consumer "${node.label}" adds a non-constant bias`;
    const count = ref.dims.reduce((a, b) => a * b, 1);
    const lastAxisOk = node.is('Conv') ? ref.dims.length === 1 : ref.dims[ref.dims.length - 1] === outWidth;
    if (count !== outWidth || !lastAxisOk) return `consumer "${node.label}" has a bias of shape [${ref.dims.join(', ')}]`;
    if (otherReaders(v, owner).length) return `consumer "${node.label}" shares its bias`;
    return { ...ref, node: owner, inputIndex: index };
  };
  if (rule.biasInput !== undefined && node.inputs[rule.biasInput]) {
    const b = biasOf(node, rule.biasInput, rule.biasScale(node));
    if (typeof b === 'string') return b;
    if (b) consumer.bias = b;
  } else if (node.is('MatMul')) {
    const product = node.outputs[0]!;
    const uses = product.uses();
    if (uses.length === 1 && !product.isGraphOutput && uses[0]!.node.is('Add')) {
      const add = uses[0]!.node;
      const other = 1 - uses[0]!.inputIndex;
      if (add.inputs[other]?.constantTensor()) {
        const b = biasOf(add, other, 1);
        if (typeof b === 'string') return b;
        if (b) consumer.bias = b;
      }
    }
  }
  return consumer;
}
