// Dependency groups of tied channels. A residual Add makes channel k of its inputs one channel:
// the layers writing the stream (the stem, each block's last conv) and every reader of it must
// drop or merge channel k together, or not at all (as dependency-graph structural pruning does).
//
//   stem_conv -> Relu -> s ---------------> Add -> Relu -> s2 -> block2 ...
//                        \-> conv1 -> Relu -> conv2 -/
//
// Here stem_conv and conv2 are the group's producers; conv1 (reading s) and whatever reads s2
// are its consumers; s, conv2's output, the Add's output and s2 are its members (each with its
// channel axis and an identity index map). A merge u_j = t u_r (t > 0) is exact when it holds with
// the same t in every producer and every op inside the group is positively homogeneous (Add, Relu,
// pooling). Which ops couple channels, and how, is data: coupling-rules.ts.

import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import { blocker, uniqueBlockers, type Blocker } from './blocker.js';
import { coupleAt, couplingRules, IDENTITY, type CouplingRule, type GroupMember, type IndexMap } from './coupling-rules.js';
import { isFeatureMapAxis, traceConsumers, type Consumer, type NeuronLayer } from './find-layers.js';

export type { CouplingRule, GroupMember, IndexMap } from './coupling-rules.js';

export interface DependencyGroup {
  id: string;
  /** Channels of the group's index space (every identity member has this many). */
  width: number;
  /** Layers whose channels feed the group. */
  producers: NeuronLayer[];
  /** Linear readers of any tensor of the group. */
  consumers: Consumer[];
  /** The ops that tie the producers' channels together (Adds). */
  ties: Node[];
  /** The tensors whose channels change together, each with its channel axis and index map. */
  members: GroupMember[];
  /** The members' values (producer outputs, sums, outputs of ops inside the group). */
  values: Set<Value>;
  mergeable: boolean;
  /** Why the group cannot be merged (empty when it can). */
  blockers: Blocker[];
}

/** The name the first release used; a channel group is a dependency group. */
export type ChannelGroup = DependencyGroup;

/** Groups the layers whose channels are tied by coupling ops (layers in no group are left out). */
export function findChannelGroups(layers: NeuronLayer[], rules: readonly CouplingRule[] = couplingRules): DependencyGroup[] {
  const byOutput = new Map<Value, NeuronLayer>();
  for (const l of layers) {
    if (l.subgraphOf) continue;
    byOutput.set(l.activation.output, l);
    byOutput.set(l.preActivation, l);
  }
  const grouped = new Set<NeuronLayer>();
  const groups: DependencyGroup[] = [];
  for (const start of layers) {
    if (start.subgraphOf || grouped.has(start)) continue;
    const rank = start.activation.output.shape?.length ?? start.weight.dims.length;
    const featureMap = isFeatureMapAxis(rank, start.neuronAxisFromEnd);
    const axisFromEnd = start.neuronAxisFromEnd;
    const firstTrace = traceConsumers(start.activation.output, new Set(start.activation.nodes), start.width, featureMap);
    if (!firstTrace.blockedReaders.some((b) => coupleAt(b.node, axisFromEnd, rules)?.rule.kind === 'tie')) continue;

    const group: DependencyGroup = { id: `group${groups.length + 1}`, width: start.width, producers: [], consumers: [], ties: [], members: [], values: new Set(), mergeable: true, blockers: [] };
    const queue: Value[] = [];
    const addMember = (member: GroupMember): void => {
      if (group.values.has(member.value)) {
        // A producer's output enters as identity; a coupling rule may place it (a Concat offset).
        const i = group.members.findIndex((m) => m.value === member.value);
        const known = group.members[i]!;
        if (member.indexMap.kind === 'identity' || sameIndexMap(known.indexMap, member.indexMap)) return;
        if (known.indexMap.kind === 'identity') group.members[i] = member;
        else group.blockers.push(blocker('index-map', `member "${member.value.name}" is coupled by two different index maps`, member.value.producer ?? undefined));
        return;
      }
      group.values.add(member.value);
      group.members.push(member);
      queue.push(member.value);
    };
    const addProducer = (l: NeuronLayer): void => {
      if (group.producers.includes(l)) return;
      group.producers.push(l);
      grouped.add(l);
      if (l.width !== group.width) group.blockers.push(blocker('width-mismatch', `"${l.name}" has ${l.width} channels, the group ${group.width}`, l.producer));
      addMember({ value: l.activation.output, axisFromEnd: l.neuronAxisFromEnd, indexMap: IDENTITY });
    };
    addProducer(start);
    while (queue.length) {
      const v = queue.shift()!;
      // Backward: where do this value's channels come from?
      const producerLayer = byOutput.get(v);
      const coupling = v.producer ? coupleAt(v.producer, axisFromEnd, rules) : undefined;
      if (producerLayer) {
        if (producerLayer.activation.output !== v) group.blockers.push(blocker('activation-exit', `the pre-activation of "${producerLayer.name}" is read inside the group`, producerLayer.producer));
        addProducer(producerLayer);
      } else if (v.producer && coupling) {
        for (const m of coupling.members) addMember(m);
        const exact = coupling.rule.exactBlocker?.({ node: v.producer, axisFromEnd });
        if (exact) group.blockers.push(exact);
      } else if (v.producer) {
        group.blockers.push(blocker('foreign-source', `its channels also come from "${v.producer.label}" (${v.producer.opType})`, v.producer));
      } else {
        group.blockers.push(blocker('foreign-source', `its channels also come from graph input "${v.name}"`));
      }
      // Forward: who reads it?
      const layer = byOutput.get(v);
      const own = new Set(layer ? layer.activation.nodes : []);
      const trace = traceConsumers(v, own, group.width, featureMap);
      for (const c of trace.consumers) if (!group.consumers.some((x) => x.node === c.node)) group.consumers.push(c);
      for (const b of trace.blockedReaders) {
        const reader = coupleAt(b.node, axisFromEnd, rules);
        const exact = reader && (reader.rule.kind === 'tie' || b.inputIndex === 0) ? reader.rule.exactBlocker?.({ node: b.node, axisFromEnd }) : undefined;
        if (exact) group.blockers.push(exact);
        if (reader?.rule.kind === 'tie') {
          if (!group.ties.includes(b.node)) group.ties.push(b.node);
          for (const m of reader.members) addMember(m);
        } else if (reader && b.inputIndex === 0) {
          for (const m of reader.members) addMember(m);
        } else {
          group.blockers.push(b.problem);
        }
      }
    }
    for (const p of group.producers) {
      // A producer is blocked by the ties that make the group; only its other blockers count.
      const own = p.blockers.filter((b) => !b.node || !group.ties.includes(b.node));
      if (own.length) group.blockers.push(blocker('member', `"${p.name}": ${own.map((b) => b.message).join('; ')}`, p.producer));
      if (!p.activation.isPositivelyHomogeneous) group.blockers.push(blocker('not-homogeneous', `"${p.name}" has activation ${p.activation.name}, which is not positively homogeneous`, p.producer));
    }
    for (const m of group.members) {
      if (m.indexMap.kind !== 'identity') group.blockers.push(blocker('index-map', `member "${m.value.name}" maps channels by ${m.indexMap.kind}, which merges cannot apply yet`, m.value.producer ?? undefined));
    }
    group.blockers = uniqueBlockers(group.blockers);
    group.mergeable = group.blockers.length === 0;
    groups.push(group);
  }
  return groups;
}

function sameIndexMap(a: IndexMap, b: IndexMap): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
