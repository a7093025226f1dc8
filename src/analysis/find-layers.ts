// Layer discovery: every weight-bearing node with constant weights becomes a NeuronLayer; those
// whose activation and consumers allow exact rewriting are marked mergeable, the others carry
// the reason in words. Reads the IR only; runs nothing.

import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { isFloatType } from '../ir/data-type.js';
import type { Value } from '../ir/value.js';
import { consumerBlockReason, consumerRules, producerRules } from './layer-rules.js';
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
  /** Weight axis whose slice k multiplies neuron k. */
  inAxis: number;
  /** The bias the consumer adds: Gemm's C, or the constant of an Add right after a MatMul. */
  bias?: WeightRef & { node: Node; inputIndex: number };
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
    else if (count === width && ref.dims[ref.dims.length - 1] === width && node.opType !== 'Conv' && node.opType !== 'ConvTranspose') bias = { ...ref, perNeuron: true };
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

  const rank = z.shape?.length ?? (node.opType === 'Conv' ? weight.dims.length : 2);
  const neuronAxisFromEnd = rule.neuronAxisFromEnd(node, rank);
  const activation = traceActivation(z, width, neuronAxisFromEnd, constantNumbers, constantDims);
  reasons.push(...activation.blockers);
  const h = activation.output;
  if (h.isGraphOutput) reasons.push(`its output "${h.name}" is a graph output`);

  const consumers: Consumer[] = [];
  const inChain = new Set(activation.nodes);
  for (const use of h.uses()) {
    if (inChain.has(use.node)) continue;
    const c = matchConsumer(use.node, use.inputIndex);
    if (typeof c === 'string') reasons.push(c);
    else consumers.push(c);
  }
  if (consumers.length > 0 && consumers.length === h.useCount && reasons.length === 0) {
    // Every reader is linear: the layer can be rewritten.
  } else if (consumers.length === 0 && reasons.length === 0) {
    reasons.push('its output has no linear consumer');
  }
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
  };
}

function matchConsumer(node: Node, inputIndex: number): Consumer | string {
  const rule = (node.domain === '' || node.domain === 'ai.onnx') ? consumerRules[node.opType] : undefined;
  if (!rule || inputIndex !== rule.dataInput) return consumerBlockReason(node);
  const unsupported = rule.unsupported?.(node);
  if (unsupported) return `consumer "${node.label}" ${unsupported}`;
  const weight = weightRef(node.inputs[rule.weightInput], rule.weightScale(node));
  if (!weight) return `consumer "${node.label}" (${node.opType}) multiplies by a non-constant`;
  if (weight.dims.length !== 2) return `consumer "${node.label}" has ${weight.dims.length}-D weights`;
  if (otherReaders(weight.value, node).length) return `consumer "${node.label}" shares its weights with "${otherReaders(weight.value, node)[0]!.label}"`;
  const consumer: Consumer = { node, weight, inAxis: rule.inAxis(node) };
  const outWidth = weight.dims[1 - consumer.inAxis]!;
  const biasOf = (owner: Node, index: number, scale: number): Consumer['bias'] | string => {
    const v = owner.inputs[index];
    if (!v) return undefined as unknown as Consumer['bias'];
    const ref = weightRef(v, scale);
    if (!ref) return `consumer "${node.label}" adds a non-constant bias`;
    const count = ref.dims.reduce((a, b) => a * b, 1);
    if (count !== outWidth || ref.dims[ref.dims.length - 1] !== outWidth) return `consumer "${node.label}" has a bias of shape [${ref.dims.join(', ')}]`;
    if (otherReaders(v, owner).length) return `consumer "${node.label}" shares its bias`;
    return { ...ref, node: owner, inputIndex: index };
  };
  if (rule.biasInput !== undefined && node.inputs[rule.biasInput]) {
    const b = biasOf(node, rule.biasInput, rule.biasScale(node));
    if (typeof b === 'string') return b;
    if (b) consumer.bias = b;
  } else if (node.opType === 'MatMul') {
    const out = node.outputs[0]!;
    const uses = out.uses();
    if (uses.length === 1 && !out.isGraphOutput && uses[0]!.node.is('Add')) {
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
