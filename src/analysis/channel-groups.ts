// Dependency groups of tied channels. A residual Add makes channel k of its inputs one channel:
// the layers writing the stream (the stem, each block's last conv) and every reader of it must
// drop or merge channel k together, or not at all (as dependency-graph structural pruning does).
//
//   stem_conv -> Relu -> s ---------------> Add -> Relu -> s2 -> block2 ...
//                        \-> conv1 -> Relu -> conv2 -/
//
// Here stem_conv and conv2 are the group's producers; conv1 (reading s) and whatever reads s2
// are its consumers; s, conv2's output, the Add's output and s2 are its members (each with its
// channel axis and an index map onto the group's channels). A depthwise conv is a diagonal
// producer: its input and output channel c are one group channel, so expand -> depthwise ->
// project is one group whose neuron is the composite filter. Concat, Split, Slice and channel
// padding place members at offsets; a gate (x * sigmoid(...)) multiplies the scales of its
// factors. Which ops couple channels, and how, is data: coupling-rules.ts. When a merge
// h_j = t h_r is exact, member by member: group-ratios.ts.

import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import { blocker, uniqueBlockers, type Blocker } from './blocker.js';
import { channelCount, coupleAt, couplingRules, startsGroup, IDENTITY, type ChannelLink, type Coupling, type CouplingRule, type GroupMember, type IndexMap } from './coupling-rules.js';
import { isFeatureMapAxis, traceConsumers, type Consumer, type NeuronLayer } from './find-layers.js';
import { producerRules, ruleFor } from './layer-rules.js';
import { isApproximatelyMergeable } from './residual-stream.js';

export type { CouplingRule, GroupMember, IndexMap } from './coupling-rules.js';

/** A linear reader of a group tensor, and which member it reads. */
export interface GroupConsumer extends Consumer {
  member: Value;
}

/** How merge scales relate across the group's ops (condensation.md: exact merges need one t per channel pair). */
export type RatioRelation =
  /** The scale is the same on every one of these values (Add, Concat, Relu, pooling, Transpose). */
  | { kind: 'same'; values: Value[] }
  /** The output's scale is the product of the factors' (a gate: x * g). */
  | { kind: 'product'; factors: Value[]; output: Value }
  /** A non-homogeneous op reads the value: exact merges need scale 1 there. */
  | { kind: 'unit'; value: Value; node: Node }
  /** Output channel c = scale[c] * input channel c + shift[c] (local channels of the input). */
  | { kind: 'affine'; input: Value; output: Value; scale: Float64Array; shift: Float64Array };

export interface DependencyGroup {
  id: string;
  /** Channels of the group's index space (each member maps its channels onto these). */
  width: number;
  /** Layers whose channels feed the group (a depthwise conv is one, reading the group too). */
  producers: NeuronLayer[];
  /** Linear readers of any tensor of the group, each with the member it reads. */
  consumers: GroupConsumer[];
  /** The ops that tie channels of different tensors (Adds, Concats, gates, depthwise convs). */
  ties: Node[];
  /** The tensors whose channels change together, each with its channel axis and index map. */
  members: GroupMember[];
  /** The members' values (producer outputs, sums, outputs of ops inside the group). */
  values: Set<Value>;
  /** Every node inside the group that couples channels (ties and pass-throughs). */
  couplingNodes: Node[];
  /** Producers that are diagonal (depthwise conv), with the member they read. */
  diagonalInputs: Map<NeuronLayer, Value>;
  /** How merge scales relate across the group's ops. */
  relations: RatioRelation[];
  /** Per member, its local channels that are constant zeros (channel padding). */
  zeroChannels: Map<Value, Set<number>>;
  /** Group channels that are constant zeros in every member (padding only): static channels. */
  staticChannels: number[];
  mergeable: boolean;
  /**
   * Not mergeable exactly, but a residual stream that prune --approximate merges (normalisations mix
   * its channels, embedding tables write them; rewrite/merge-stream.ts): residual-stream.ts
   * isApproximatelyMergeable. False for every exactly mergeable group.
   */
  approximateOnly: boolean;
  /** Why the group cannot be merged (empty when it can). */
  blockers: Blocker[];
}

/** The name the first release used; a channel group is a dependency group. */
export type ChannelGroup = DependencyGroup;

/** Local channel c of `member` is group channel groupChannels(member)[c]. */
export function groupChannels(member: GroupMember, groupWidth: number): number[] {
  const m = member.indexMap;
  const width = member.width ?? groupWidth;
  if (m.kind === 'identity') return [...Array(width).keys()];
  if (m.kind === 'offset') return [...Array(width).keys()].map((c) => c + m.offset);
  if (m.kind === 'channel-map') return [...m.groupChannelOf];
  return [...Array(width).keys()];
}

function isDiagonal(layer: NeuronLayer): boolean {
  return ruleFor(producerRules, layer.producer)?.isDiagonal?.(layer.producer, layer.weight.dims) ?? false;
}

/** Groups the layers whose channels are tied by coupling ops (layers in no group are left out). */
export function findChannelGroups(layers: NeuronLayer[], rules: readonly CouplingRule[] = couplingRules): DependencyGroup[] {
  const byOutput = new Map<Value, NeuronLayer>();
  const byNode = new Map<Node, NeuronLayer>();
  for (const l of layers) {
    if (l.subgraphOf) continue;
    byOutput.set(l.activation.output, l);
    byOutput.set(l.preActivation, l);
    byNode.set(l.producer, l);
  }
  const rankOfLayer = (l: NeuronLayer): number => l.activation.output.shape?.length ?? (ruleFor(producerRules, l.producer)?.isChannelFirst ? l.weight.dims.length : 2);
  const grouped = new Set<NeuronLayer>();
  const groups: DependencyGroup[] = [];
  for (const start of layers) {
    if (start.subgraphOf || grouped.has(start)) continue;
    const rank = rankOfLayer(start);
    const firstTrace = traceConsumers(start.activation.output, new Set(start.activation.nodes), start.width, isFeatureMapAxis(rank, start.neuronAxisFromEnd), { axisFromEnd: start.neuronAxisFromEnd, rank });
    const coupled = firstTrace.blockedReaders.some((b) => {
      const reader = byNode.get(b.node);
      if (reader && b.inputIndex === 0 && isDiagonal(reader)) return true;
      const c = coupleAt(b.node, start.activation.output, start.neuronAxisFromEnd, rank, rules);
      return c !== undefined && startsGroup(c.rule);
    });
    if (!coupled && !isDiagonal(start)) continue;
    groups.push(buildGroup(`group${groups.length + 1}`, start, byOutput, byNode, rankOfLayer, rules, grouped));
  }
  return groups;
}

function buildGroup(
  id: string,
  start: NeuronLayer,
  byOutput: Map<Value, NeuronLayer>,
  byNode: Map<Node, NeuronLayer>,
  rankOfLayer: (l: NeuronLayer) => number,
  rules: readonly CouplingRule[],
  grouped: Set<NeuronLayer>,
): DependencyGroup {
  const group: DependencyGroup = {
    id, width: 0, producers: [], consumers: [], ties: [], members: [], values: new Set(), couplingNodes: [],
    diagonalInputs: new Map(), relations: [], zeroChannels: new Map(), staticChannels: [], mergeable: true, approximateOnly: false, blockers: [],
  };
  const memberOf = new Map<Value, GroupMember>();
  const links: ChannelLink[] = [];
  const queue: Value[] = [];
  const addMember = (value: Value, axisFromEnd: number, rank: number | undefined, width?: number): void => {
    const known = memberOf.get(value);
    if (known) {
      if (known.axisFromEnd !== axisFromEnd) group.blockers.push(blocker('index-map', `"${value.name}" is reached with its channels on two different axes`, value.producer ?? undefined));
      return;
    }
    const w = width ?? channelCount(value, axisFromEnd);
    const member: GroupMember = { value, axisFromEnd, indexMap: IDENTITY, ...(w !== undefined ? { width: w } : {}), ...(rank !== undefined ? { rank } : {}) };
    if (w === undefined) group.blockers.push(blocker('width-mismatch', `the channel count of "${value.name}" is unknown`, value.producer ?? undefined));
    memberOf.set(value, member);
    group.values.add(value);
    group.members.push(member);
    queue.push(value);
  };
  const addCoupling = (node: Node, rule: CouplingRule, c: Coupling): void => {
    if (!group.couplingNodes.includes(node)) group.couplingNodes.push(node);
    // A normalisation or an embedding table in the group: it can only merge approximately.
    const exact = rule.exactBlocker?.({ node, value: c.members[0]?.value ?? node.outputs[0]!, axisFromEnd: c.members[0]?.axisFromEnd ?? 1 });
    if (exact) group.blockers.push(exact);
    if (rule.kind === 'tie' && !group.ties.includes(node)) group.ties.push(node);
    for (const m of c.members) addMember(m.value, m.axisFromEnd, m.rank, m.width);
    links.push(...c.links);
    const values = c.members.map((m) => m.value);
    if (c.affine) group.relations.push({ kind: 'affine', ...c.affine });
    else if (c.ratio === 'same') group.relations.push({ kind: 'same', values });
    else {
      const output = node.outputs[0]!;
      group.relations.push({ kind: 'product', factors: values.filter((v) => v !== output), output });
    }
    for (const v of c.unitRatio ?? []) group.relations.push({ kind: 'unit', value: v, node });
    for (const z of c.zeros ?? []) {
      const set = group.zeroChannels.get(z.value) ?? new Set<number>();
      for (let i = 0; i < z.count; i++) set.add(z.start + i);
      group.zeroChannels.set(z.value, set);
    }
  };
  const addProducer = (l: NeuronLayer): void => {
    if (group.producers.includes(l)) return;
    group.producers.push(l);
    grouped.add(l);
    const rank = rankOfLayer(l);
    addMember(l.activation.output, l.neuronAxisFromEnd, rank, l.width);
    if (isDiagonal(l)) {
      const input = l.producer.inputs[0]!;
      group.diagonalInputs.set(l, input);
      if (!group.ties.includes(l.producer)) group.ties.push(l.producer);
      if (!group.couplingNodes.includes(l.producer)) group.couplingNodes.push(l.producer);
      addMember(input, l.neuronAxisFromEnd, rank, l.width);
      links.push({ from: input, fromStart: 0, to: l.activation.output, toStart: 0, count: l.width });
    }
  };
  addProducer(start);
  while (queue.length) {
    const v = queue.shift()!;
    const member = memberOf.get(v)!;
    const { axisFromEnd } = member;
    const rank = member.rank;
    // Backward: where do this value's channels come from?
    const producerLayer = byOutput.get(v);
    if (producerLayer) {
      if (producerLayer.activation.output !== v) group.blockers.push(blocker('activation-exit', `the pre-activation of "${producerLayer.name}" is read inside the group`, producerLayer.producer));
      else addProducer(producerLayer);
    } else if (v.constantTensor()) {
      if (!group.zeroChannels.has(v)) group.blockers.push(blocker('foreign-source', `its channels also come from the constant "${v.name}"`));
    } else if (v.producer) {
      const coupling = coupleAt(v.producer, v, axisFromEnd, rank, rules);
      if (coupling) addCoupling(v.producer, coupling.rule, coupling.coupling);
      else group.blockers.push(blocker('foreign-source', `its channels also come from "${v.producer.label}" (${v.producer.opType})`, v.producer));
    } else {
      group.blockers.push(blocker('foreign-source', `its channels also come from graph input "${v.name}"`));
    }
    // Forward: who reads it?
    const layer = byOutput.get(v);
    const own = new Set(layer && layer.activation.output === v ? layer.activation.nodes : []);
    const width = member.width ?? 0;
    const trace = traceConsumers(v, own, width, rank !== undefined ? isFeatureMapAxis(rank, axisFromEnd) : axisFromEnd > 1, { axisFromEnd, rank });
    for (const p of trace.problems) if (p.code === 'graph-output') group.blockers.push(p);
    for (const c of trace.consumers) if (!group.consumers.some((x) => x.node === c.node)) group.consumers.push({ ...c, member: v });
    for (const b of trace.blockedReaders) {
      const reader = byNode.get(b.node);
      if (reader && b.inputIndex === 0 && isDiagonal(reader) && b.node.inputs[0] === v) {
        addProducer(reader);
        continue;
      }
      // A reader past channel-wise ops (pooling) that traceConsumers walked: those ops join the group first.
      const reached = b.node.inputs[b.inputIndex] === v ? { value: v, axisFromEnd, rank } : walkPath(v, b.node.inputs[b.inputIndex]!, axisFromEnd, rank, rules, addCoupling);
      const coupling = reached ? coupleAt(b.node, reached.value, reached.axisFromEnd, reached.rank, rules) : undefined;
      if (coupling) addCoupling(b.node, coupling.rule, coupling.coupling);
      else group.blockers.push(b.problem);
    }
  }
  assignIndexMaps(group, memberOf, links);
  const coupling = new Set(group.couplingNodes);
  for (const p of group.producers) {
    // A producer is blocked by the couplings that make the group; only its other blockers count.
    const own = p.blockers.filter((b) => !(b.node && coupling.has(b.node)) && !(b.code === 'grouped-conv' && group.diagonalInputs.has(p)) && b.code !== 'no-consumer');
    if (own.length) group.blockers.push(blocker('member', `"${p.name}": ${own.map((b) => b.message).join('; ')}`, p.producer));
  }
  group.blockers = uniqueBlockers(group.blockers);
  group.mergeable = group.blockers.length === 0;
  group.approximateOnly = isApproximatelyMergeable(group);
  return group;
}

/**
 * Couples the channel-wise ops on the path from member `from` to `to` (following input 0 back),
 * and says where `to` holds the channels; undefined when a step does not couple.
 */
function walkPath(from: Value, to: Value, axisFromEnd: number, rank: number | undefined, rules: readonly CouplingRule[], add: (node: Node, rule: CouplingRule, c: Coupling) => void): { value: Value; axisFromEnd: number; rank: number | undefined } | undefined {
  const chain: Node[] = [];
  let v: Value | undefined = to;
  while (v && v !== from && chain.length < 32) {
    const p: Node | null = v.producer;
    if (!p) return undefined;
    chain.unshift(p);
    v = p.inputs[0] ?? undefined;
  }
  if (v !== from) return undefined;
  let at = { value: from, axisFromEnd, rank };
  for (const node of chain) {
    const c = coupleAt(node, at.value, at.axisFromEnd, at.rank, rules);
    const out = c?.coupling.members.find((m) => m.value === node.outputs[0]);
    if (!c || !out) return undefined;
    add(node, c.rule, c.coupling);
    at = { value: out.value, axisFromEnd: out.axisFromEnd, rank: out.rank };
  }
  return at;
}

/**
 * Joins the members' channels through the links (union-find over every member channel): each
 * class is one group channel. A member's channels then map onto group channels by identity, an
 * offset, or a channel map; a class whose channels are all padding zeros is a static channel.
 */
function assignIndexMaps(group: DependencyGroup, memberOf: Map<Value, GroupMember>, links: ChannelLink[]): void {
  const base = new Map<Value, number>();
  let slots = 0;
  for (const m of group.members) {
    base.set(m.value, slots);
    slots += m.width ?? 0;
  }
  const parent = Int32Array.from({ length: slots }, (_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  for (const l of links) {
    const a = memberOf.get(l.from);
    const b = memberOf.get(l.to);
    if (!a || !b || a.width === undefined || b.width === undefined) continue;
    if (l.fromStart + l.count > a.width || l.toStart + l.count > b.width) {
      group.blockers.push(blocker('width-mismatch', `"${l.to.name}" has ${b.width} channels, "${l.from.name}" ${a.width}`, l.to.producer ?? undefined));
      continue;
    }
    for (let i = 0; i < l.count; i++) {
      const x = find(base.get(l.from)! + l.fromStart + i);
      const y = find(base.get(l.to)! + l.toStart + i);
      if (x !== y) parent[Math.max(x, y)] = Math.min(x, y);
    }
  }
  const channelOfRoot = new Map<number, number>();
  const nonZero = new Set<number>();
  for (const m of group.members) {
    const zeros = group.zeroChannels.get(m.value);
    const b = base.get(m.value)!;
    const map: number[] = [];
    for (let c = 0; c < (m.width ?? 0); c++) {
      const root = find(b + c);
      if (!channelOfRoot.has(root)) channelOfRoot.set(root, channelOfRoot.size);
      const g = channelOfRoot.get(root)!;
      map.push(g);
      if (!zeros?.has(c)) nonZero.add(g);
    }
    if (new Set(map).size !== map.length) group.blockers.push(blocker('index-map', `"${m.value.name}" holds one channel twice`, m.value.producer ?? undefined));
    m.indexMap = map.every((g, c) => g === c) ? IDENTITY : map.every((g, c) => g === map[0]! + c) ? { kind: 'offset', offset: map[0]! } : { kind: 'channel-map', groupChannelOf: map };
  }
  group.width = channelOfRoot.size;
  for (const m of group.members) if (m.indexMap.kind === 'identity' && m.width !== group.width) m.indexMap = { kind: 'offset', offset: 0 };
  group.staticChannels = [...Array(group.width).keys()].filter((g) => !nonZero.has(g));
}

/** The key under which statistics of a group tensor are collected (approximate group merges refit on them). */
export function groupStatisticsKey(group: DependencyGroup, value: Value): string {
  return `${group.id}:${value.name}`;
}

/**
 * Watch points for the statistics of the group tensors that consumers read, shaped as layers
 * (name = groupStatisticsKey, width and channel axis of the member), so the layer statistics
 * collector observes them alongside the layers.
 */
export function groupWatchLayers(groups: readonly DependencyGroup[]): NeuronLayer[] {
  const watches: NeuronLayer[] = [];
  for (const g of groups) {
    const anchor = g.producers[0];
    if (!(g.mergeable || g.approximateOnly) || !anchor) continue;
    for (const value of new Set(g.consumers.map((c) => c.member))) {
      const m = g.members.find((x) => x.value === value);
      if (!m?.width) continue;
      // The collector reads the rank from the shape, else from the weights: skip a tensor whose rank neither gives.
      // A stream member holds its channels on the last axis: read as [positions, channels] whatever its rank.
      if (!value.shape && m.rank !== anchor.weight.dims.length && !(g.approximateOnly && m.axisFromEnd === 1)) continue;
      watches.push({ ...anchor, name: groupStatisticsKey(g, value), width: m.width, neuronAxisFromEnd: m.axisFromEnd, activation: { ...anchor.activation, output: value } });
    }
  }
  return watches;
}
