// Dependency groups of tied channels. A residual Add makes channel k of its inputs one channel:
// the layers writing the stream (the stem, each block's last conv) and every reader of it must
// drop or merge channel k together, or not at all (as dependency-graph structural pruning does).
//
//   stem_conv -> Relu -> s ---------------> Add -> Relu -> s2 -> block2 ...
//                        \-> conv1 -> Relu -> conv2 -/
//
// Here stem_conv and conv2 are the group's producers; conv1 (reading s) and whatever reads s2
// are its consumers. A merge u_j = t u_r (t > 0) is exact when it holds with the same t in every
// producer and every op inside the group is positively homogeneous (Add, Relu, pooling).

import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import { isElementwiseOp } from './elementwise-function.js';
import { isFeatureMapAxis, traceConsumers, type Consumer, type NeuronLayer } from './find-layers.js';
import { channelwiseOps } from './layer-rules.js';

export interface ChannelGroup {
  id: string;
  width: number;
  /** Layers whose channels feed the group. */
  producers: NeuronLayer[];
  /** Linear readers of any tensor of the group. */
  consumers: Consumer[];
  /** The ops that tie the producers' channels together (Adds). */
  ties: Node[];
  /** The group's tensors: producer outputs, sums, and the outputs of ops inside the group. */
  values: Set<Value>;
  mergeable: boolean;
  reasons: string[];
}

/** Ops that tie their operands' channels and keep positive scales: (t a) + (t b) = t (a + b). */
const tyingOps = new Set(['Add', 'Sum']);
/** Elementwise ops a group may pass through and stay positively homogeneous. */
const homogeneousOps = new Set(['Relu', 'LeakyRelu', 'Identity', 'Dropout']);

function isTie(node: Node): boolean {
  return (node.domain === '' || node.domain === 'ai.onnx') && tyingOps.has(node.opType) && node.inputs.filter((v) => v && !v.constantTensor()).length >= 2;
}

/** Groups the layers whose channels are tied by residual Adds (layers in no group are left out). */
export function findChannelGroups(layers: NeuronLayer[]): ChannelGroup[] {
  const byOutput = new Map<Value, NeuronLayer>();
  for (const l of layers) {
    if (l.subgraphOf) continue;
    byOutput.set(l.activation.output, l);
    byOutput.set(l.preActivation, l);
  }
  const grouped = new Set<NeuronLayer>();
  const groups: ChannelGroup[] = [];
  for (const start of layers) {
    if (start.subgraphOf || grouped.has(start)) continue;
    const rank = start.activation.output.shape?.length ?? start.weight.dims.length;
    const featureMap = isFeatureMapAxis(rank, start.neuronAxisFromEnd);
    const firstTrace = traceConsumers(start.activation.output, new Set(start.activation.nodes), start.width, featureMap);
    if (!firstTrace.blockedReaders.some((b) => isTie(b.node))) continue;

    const group: ChannelGroup = { id: `group${groups.length + 1}`, width: start.width, producers: [], consumers: [], ties: [], values: new Set(), mergeable: true, reasons: [] };
    const queue: Value[] = [];
    const addValue = (v: Value): void => {
      if (group.values.has(v)) return;
      group.values.add(v);
      queue.push(v);
    };
    const addProducer = (l: NeuronLayer): void => {
      if (group.producers.includes(l)) return;
      group.producers.push(l);
      grouped.add(l);
      if (l.width !== group.width) group.reasons.push(`"${l.name}" has ${l.width} channels, the group ${group.width}`);
      addValue(l.activation.output);
    };
    addProducer(start);
    while (queue.length) {
      const v = queue.shift()!;
      // Backward: where do this value's channels come from?
      const producerLayer = byOutput.get(v);
      if (producerLayer) {
        if (producerLayer.activation.output !== v) group.reasons.push(`the pre-activation of "${producerLayer.name}" is read inside the group`);
        addProducer(producerLayer);
      } else if (v.producer && (isTie(v.producer) || isPassThrough(v.producer))) {
        for (const input of v.producer.inputs) if (input && !input.constantTensor()) addValue(input);
      } else if (v.producer) {
        group.reasons.push(`its channels also come from "${v.producer.label}" (${v.producer.opType})`);
      } else {
        group.reasons.push(`its channels also come from graph input "${v.name}"`);
      }
      // Forward: who reads it?
      const layer = byOutput.get(v);
      const own = new Set(layer ? layer.activation.nodes : []);
      const trace = traceConsumers(v, own, group.width, featureMap);
      for (const c of trace.consumers) if (!group.consumers.some((x) => x.node === c.node)) group.consumers.push(c);
      for (const b of trace.blockedReaders) {
        if (isTie(b.node)) {
          if (!group.ties.includes(b.node)) group.ties.push(b.node);
          addValue(b.node.outputs[0]!);
        } else if (isPassThrough(b.node) && b.inputIndex === 0) {
          addValue(b.node.outputs[0]!);
        } else {
          group.reasons.push(b.problem);
        }
      }
    }
    for (const p of group.producers) {
      const own = p.reasons.filter((r) => !isTieReason(r, group));
      if (own.length) group.reasons.push(`"${p.name}": ${own.join('; ')}`);
      if (!p.activation.isPositivelyHomogeneous) group.reasons.push(`"${p.name}" has activation ${p.activation.name}, which is not positively homogeneous`);
    }
    group.reasons = [...new Set(group.reasons)];
    group.mergeable = group.reasons.length === 0;
    groups.push(group);
  }
  return groups;
}

/** An op inside a group that keeps channels apart and positive scales intact (Relu, pooling). */
function isPassThrough(node: Node): boolean {
  if (node.domain !== '' && node.domain !== 'ai.onnx') return false;
  if (homogeneousOps.has(node.opType) && isElementwiseOp(node)) return node.inputs.slice(1).every((v) => !v || v.constantTensor());
  const op = channelwiseOps[node.opType];
  return !!op && !op.check?.(node);
}

function isTieReason(reason: string, group: ChannelGroup): boolean {
  return group.ties.some((t) => reason.includes(`"${t.label}"`));
}
