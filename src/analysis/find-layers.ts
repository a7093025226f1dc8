// Layer discovery: every weight-bearing node with constant weights becomes a NeuronLayer; those
// whose activation and consumers allow exact rewriting are marked mergeable, the others carry
// structured blockers. Op knowledge comes from layer-rules.ts; no op names are tested here. Reads the IR only; runs nothing.

import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { isFloatType } from '../ir/data-type.js';
import type { Value } from '../ir/value.js';
import { blocker, uniqueBlockers, type Blocker } from './blocker.js';
import { channelwiseOps, consumerBlocker, consumerRules, consumerView, flatteningViews, producerRules, ruleFor, shapeSkipsChannels, type ChannelAxis } from './layer-rules.js';
import { traceActivation, type Activation } from './trace-activation.js';
import { combineGatedMlps, type GatedMlp } from './gated-mlp.js';
import { quantizedWeightBlocker } from './dequantized-weight.js';

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
  blockers: Blocker[];
  /** False when a MaxPool sits between the layer and a consumer: max(-h) != -max(h). */
  allowsNegativeScale: boolean;
  /** False when padding between the layer and a consumer turns a constant channel non-constant. */
  keepsConstants: boolean;
  /** Set for layers inside a subgraph: the node whose attribute holds it. */
  subgraphOf?: Node;
  /** Set for a gated MLP (SwiGLU, GeGLU): a neuron is the pair (gate row, up row); see gated-mlp.ts. */
  gated?: GatedMlp;
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
          layer.blockers.unshift(blocker('subgraph', `is inside the body of ${owner.opType} "${owner.label}"`, owner));
        }
        layers.push(layer);
      }
      for (const sub of node.subgraphs()) visit(sub, owner ?? node);
    }
  };
  visit(model.graph, undefined);
  const joined = combineGatedMlps(layers);
  // ONNX does not require unique node names; layer names are keys, so make them unique.
  const seen = new Map<string, number>();
  for (const layer of joined) {
    const n = (seen.get(layer.name) ?? 0) + 1;
    seen.set(layer.name, n);
    if (n > 1) layer.name = `${layer.name}#${n}`;
  }
  return joined;
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
  const rule = ruleFor(producerRules, node);
  if (!rule) return undefined;
  const weight = weightRef(node.inputs[rule.weightInput], rule.weightScale(node));
  if (!weight || !rule.accepts(node, weight.dims)) return undefined;
  const blockers: Blocker[] = [];
  const outAxis = rule.outAxis(node);
  const width = weight.dims[outAxis] ?? 0;
  const unsupported = rule.unsupported?.(node);
  if (unsupported) blockers.push(unsupported);
  const quantized = quantizedWeightBlocker(weight.value);
  if (quantized) blockers.push(quantized);
  const sharedWith = otherReaders(weight.value, node);
  if (sharedWith[0]) blockers.push(blocker('shared-weights', `its weights are shared with "${sharedWith[0].label}"`, sharedWith[0]));

  let op = node.opType;
  let z = node.outputs[0]!;
  let biasNode: Node | undefined;
  let bias: NeuronLayer['bias'];
  const takeBias = (v: Value | null | undefined, scale: number, owner: Node): void => {
    if (!v) return;
    const ref = weightRef(v, scale);
    if (!ref) {
      blockers.push(blocker('bias', `its bias "${v.name}" is not a constant`, owner));
      return;
    }
    const count = ref.dims.reduce((a, b) => a * b, 1);
    if (count === 1) bias = { ...ref, perNeuron: false };
    else if (count === width && ref.dims[ref.dims.length - 1] === width && !rule.isChannelFirst) bias = { ...ref, perNeuron: true };
    else if (count === width && ref.dims.length === 1) bias = { ...ref, perNeuron: true };
    else blockers.push(blocker('bias', `its bias "${v.name}" has shape [${ref.dims.join(', ')}], not one value per neuron`, owner));
    const sharer = otherReaders(v, owner)[0];
    if (sharer) blockers.push(blocker('shared-weights', `its bias "${v.name}" is shared with "${sharer.label}"`, sharer));
  };
  if (rule.biasInput !== undefined) takeBias(node.inputs[rule.biasInput], rule.biasScale(node), node);
  if (rule.hasBiasAdd) {
    const found = biasAddAfter(node);
    if (found) {
      op = `${node.opType}+Add`;
      biasNode = found.add;
      takeBias(found.add.inputs[found.inputIndex], 1, found.add);
      z = found.add.outputs[0]!;
    }
  }

  // A channel-first op's output has the rank of its kernel (batch, channels, spatial...); dense layers put neurons last.
  const rank = z.shape?.length ?? (rule.isChannelFirst ? weight.dims.length : 2);
  const neuronAxisFromEnd = rule.neuronAxisFromEnd(node, rank);
  const activation = traceActivation(z, width, neuronAxisFromEnd, constantNumbers, constantDims);
  blockers.push(...activation.blockers);
  const h = activation.output;
  const traced = traceConsumers(h, new Set(activation.nodes), width, isFeatureMapAxis(rank, neuronAxisFromEnd), { axisFromEnd: neuronAxisFromEnd, rank });
  blockers.push(...traced.problems);
  if (traced.consumers.length === 0 && blockers.length === 0) blockers.push(blocker('no-consumer', 'its output has no linear consumer'));
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
    consumers: traced.consumers,
    mergeable: blockers.length === 0,
    blockers: uniqueBlockers(blockers),
    allowsNegativeScale: traced.allowsNegativeScale,
    keepsConstants: traced.keepsConstants,
  };
}

/** The single Add that adds a constant to `node`'s output (a MatMul's bias), and the constant's input index. */
function biasAddAfter(node: Node): { add: Node; inputIndex: number } | undefined {
  const product = node.outputs[0]!;
  const uses = product.uses();
  const use = uses.length === 1 && !product.isGraphOutput ? uses[0] : undefined;
  if (!use || !use.node.is('Add')) return undefined;
  const inputIndex = 1 - use.inputIndex;
  return use.node.inputs[inputIndex]?.constantTensor() ? { add: use.node, inputIndex } : undefined;
}

export interface TracedConsumers {
  consumers: Consumer[];
  problems: Blocker[];
  /** The readers behind each problem (the dependency-group analysis looks at ties among them). */
  blockedReaders: { node: Node; inputIndex: number; problem: Blocker }[];
  allowsNegativeScale: boolean;
  keepsConstants: boolean;
}

/**
 * Follows the layer output h through channel-wise ops (pooling, padding, resizing, global pooling;
 * only for channel-first feature maps) and at most one flattening view to the linear consumers.
 * `at` says where h's channels are (a reduction with keepdims=0 moves them on the way).
 */
export function traceConsumers(h: Value, activationNodes: Set<Node>, width: number, isFeatureMap: boolean, at: ChannelAxis = { axisFromEnd: isFeatureMap ? 3 : 1 }): TracedConsumers {
  const out: TracedConsumers = { consumers: [], problems: [], blockedReaders: [], allowsNegativeScale: true, keepsConstants: true };
  const block = (node: Node, inputIndex: number, problem: Blocker): void => {
    out.problems.push(problem);
    out.blockedReaders.push({ node, inputIndex, problem });
  };
  const visit = (v: Value, path: Node[], flattened: boolean, here: ChannelAxis, featureMap: boolean): void => {
    if (v.isGraphOutput) out.problems.push(blocker('graph-output', `its output "${v.name}" is a graph output`));
    for (const use of v.uses()) {
      const n = use.node;
      if (activationNodes.has(n)) continue;
      // Reads the batch or spatial size only: the same after channels go.
      if (!flattened && shapeSkipsChannels(n, here)) continue;
      const channelwise = flattened ? undefined : ruleFor(channelwiseOps, n);
      if (channelwise && use.inputIndex === 0 && (featureMap || channelwise.isLayoutFree)) {
        const problem = channelwise.check?.(n, here);
        if (problem) {
          // A reduction over the channels is a normaliser (a decomposed LayerNorm), not a pooling.
          const known = consumerBlocker(n);
          block(n, use.inputIndex, known.code === 'normaliser' ? known : blocker('channelwise-op', `"${n.label}" ${problem}`, n));
          continue;
        }
        out.allowsNegativeScale &&= channelwise.allowsNegativeScale;
        out.keepsConstants &&= channelwise.keepsConstants(n);
        const axisFromEnd = channelwise.outputAxisFromEnd?.(n, here.axisFromEnd, here.rank) ?? here.axisFromEnd;
        const rank = here.rank === undefined ? undefined : here.rank - (here.axisFromEnd - axisFromEnd);
        const next = { axisFromEnd, rank };
        visit(n.outputs[0]!, [...path, n], false, next, featureMap && (rank === undefined ? axisFromEnd > 1 : isFeatureMapAxis(rank, axisFromEnd)));
        continue;
      }
      const view = flattened ? undefined : ruleFor(flatteningViews, n);
      if (view && use.inputIndex === 0 && view.accepts(n) && (featureMap || !view.onlyFeatureMaps)) {
        visit(n.outputs[0]!, [...path, n], true, { axisFromEnd: 1, rank: 2 }, false);
        continue;
      }
      const c = matchConsumer(n, use.inputIndex, width, flattened, path, here);
      if ('code' in c) block(n, use.inputIndex, c);
      else {
        if (!(ruleFor(consumerRules, c.node)?.keepsConstants(c.node) ?? true)) out.keepsConstants = false;
        out.consumers.push(c);
      }
    }
  };
  visit(h, [], false, at, isFeatureMap);
  return out;
}

/** True when the neurons are the channels (axis 1) of a feature map of rank 3 or more. */
export function isFeatureMapAxis(rank: number, neuronAxisFromEnd: number): boolean {
  return rank - neuronAxisFromEnd === 1 && rank > 2;
}

function matchConsumer(node: Node, inputIndex: number, width: number, flattened: boolean, path: Node[], at: ChannelAxis): Consumer | Blocker {
  const rule = ruleFor(consumerRules, node);
  if (!rule || inputIndex !== rule.dataInput) return consumerBlocker(node);
  const shape = (message: string): Blocker => blocker('consumer-shape', message, node);
  if (flattened && rule.isChannelFirst) return shape(`consumer "${node.label}" reads a flattened tensor`);
  // A dense op contracts the last axis, a Conv axis 1: the channels must be there.
  if (!flattened && !rule.isChannelFirst && at.axisFromEnd !== 1) return shape(`consumer "${node.label}" contracts the last axis, not the channel axis`);
  if (rule.isChannelFirst && at.rank !== undefined && at.rank - at.axisFromEnd !== 1) return shape(`consumer "${node.label}" reads channels on axis 1, where these are not`);
  const unsupported = rule.unsupported?.(node);
  if (unsupported) return { ...unsupported, message: `consumer "${node.label}" ${unsupported.message}` };
  const weight = weightRef(node.inputs[rule.weightInput], rule.weightScale(node));
  if (!weight) return blocker('nonlinear-consumer', `consumer "${node.label}" (${node.opType}) multiplies by a non-constant`, node);
  const quantized = quantizedWeightBlocker(weight.value);
  if (quantized) return { ...quantized, message: `consumer "${node.label}" reads it with quantized weights: a merge would rewrite them` };
  if (!rule.accepts(node, weight.dims)) return shape(`consumer "${node.label}" has ${weight.dims.length}-D weights`);
  const sharer = otherReaders(weight.value, node)[0];
  if (sharer) return blocker('shared-weights', `consumer "${node.label}" shares its weights with "${sharer.label}"`, node);
  const inAxis = rule.inAxis(node);
  const inFeatures = weight.dims[inAxis]!;
  if (inFeatures % width !== 0 || (!flattened && inFeatures !== width)) {
    return shape(`consumer "${node.label}" reads ${inFeatures} features, which do not split into ${width} channels`);
  }
  const view = consumerView(rule, node, weight.dims, width);
  const consumer: Consumer = { node, weight, ...view, path };
  const outWidth = weight.dims[rule.outAxis(node, inAxis)]!;
  const biasOf = (owner: Node, index: number, scale: number): Consumer['bias'] | Blocker => {
    const v = owner.inputs[index];
    if (!v) return undefined;
    const ref = weightRef(v, scale);
    if (!ref) return blocker('bias', `consumer "${node.label}" adds a non-constant bias`, node);
    const count = ref.dims.reduce((a, b) => a * b, 1);
    const lastAxisOk = rule.isChannelFirst ? ref.dims.length === 1 : ref.dims[ref.dims.length - 1] === outWidth;
    if (count !== outWidth || !lastAxisOk) return blocker('bias', `consumer "${node.label}" has a bias of shape [${ref.dims.join(', ')}]`, node);
    if (otherReaders(v, owner).length) return blocker('shared-weights', `consumer "${node.label}" shares its bias`, node);
    return { ...ref, node: owner, inputIndex: index };
  };
  let found: Consumer['bias'] | Blocker = undefined;
  if (rule.biasInput !== undefined && node.inputs[rule.biasInput]) found = biasOf(node, rule.biasInput, rule.biasScale(node));
  else if (rule.hasBiasAdd) {
    const add = biasAddAfter(node);
    if (add) found = biasOf(add.add, add.inputIndex, 1);
  }
  if (found && 'code' in found) return found;
  if (found) consumer.bias = found;
  return consumer;
}
