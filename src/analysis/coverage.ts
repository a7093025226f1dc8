// Coverage: how much of a model prune can act on. Every hidden neuron (an output channel or unit of
// a layer that is not a read-out) is rewritable when its layer merges on its own, its dependency
// group merges as a whole, or it projects the heads of an attention block whose heads merge
// (merge-heads.ts: whole duplicate heads, within-head Q/K and V/O pairs); otherwise the codes of what blocks it are counted, so a report can say
// at once "prune can rewrite 73% of this model; 20% is behind grouped convolutions". Reads layers
// and groups only; runs nothing.

import type { AttentionBlock } from './attention.js';
import type { Blocker, BlockerCode } from './blocker.js';
import type { DependencyGroup } from './channel-groups.js';
import type { NeuronLayer } from './find-layers.js';
import { isReadoutLayer } from './readout-layer.js';
import type { UnsupportedLayer } from './unsupported-layers.js';

/** Neurons and layers one blocker code stops (a layer with several codes counts under each). */
export interface BlockerCount {
  code: BlockerCode;
  layers: number;
  neurons: number;
}

export interface Coverage {
  /** Layers and neurons outside read-out layers (quantized and other unsupported layers included). */
  layers: number;
  neurons: number;
  /** Of those, the ones prune may rewrite: in a layer that merges alone or in a group that merges. */
  rewritableLayers: number;
  rewritableNeurons: number;
  /** rewritableNeurons / neurons; 0 for a model without hidden neurons. */
  rewritableShare: number;
  /** Rewritable neurons of layers that merge on their own. */
  aloneNeurons: number;
  /** Rewritable neurons of layers whose dependency group merges, and how many such groups. */
  groupedNeurons: number;
  mergeableGroups: number;
  /** Rewritable neurons of Q/K/V projections whose attention block merges heads, and how many blocks. */
  headNeurons: number;
  headBlocks: number;
  /** Rewritable neurons of groups that merge only approximately (a transformer's residual stream, with --approximate). */
  approximateGroupNeurons: number;
  approximateGroups: number;
  /** Read-out layers (linear, nothing reads them): their neurons are the model's outputs. */
  readoutLayers: number;
  readoutNeurons: number;
  /** What blocks the other neurons, most neurons first. */
  blockers: BlockerCount[];
}

/**
 * The codes that keep a layer from being rewritten: its own blockers when it stands alone; in a
 * group, the group's blockers and every member's own (a group merges as a whole or not at all),
 * leaving out the ties that make the group and the 'member' wrapper the group's own list repeats.
 */
function blockingCodes(layer: NeuronLayer, group: DependencyGroup | undefined): Set<BlockerCode> {
  if (!group) return new Set(layer.blockers.map((b) => b.code));
  const outsideTies = (b: Blocker): boolean => !b.node || !group.ties.includes(b.node);
  const codes = new Set<BlockerCode>(group.blockers.filter((b) => b.code !== 'member').map((b) => b.code));
  for (const member of group.producers) for (const b of member.blockers.filter(outsideTies)) codes.add(b.code);
  if (codes.size === 0) codes.add('member');
  return codes;
}

const OUTPUT_CODES: ReadonlySet<BlockerCode> = new Set(['graph-output', 'no-consumer']);

/**
 * A read-out as coverage counts it: no layer reads it, it is in no group, and nothing but being an
 * output holds it back: the classifier of readout-layer.ts, or a head whose activation (Sigmoid,
 * Tanh) is the graph output, or one whose Softmax is. A conv feeding a residual Add has no linear reader either, but the Add
 * blocks it, so it is no read-out.
 */
function isReadout(layer: NeuronLayer, group: DependencyGroup | undefined): boolean {
  if (group || layer.subgraphOf || layer.consumers.length > 0) return false;
  if (layer.blockers.length > 0 && layer.blockers.every(isOutputSoftmax)) return true;
  return layer.blockers.length > 0 && layer.blockers.every((b) => OUTPUT_CODES.has(b.code)) && (isReadoutLayer(layer) || layer.blockers.some((b) => b.code === 'graph-output'));
}

/** A classifier's Softmax/LogSoftmax whose result is a graph output (a CTC or class head): the read-out's own normalisation. */
function isOutputSoftmax(b: Blocker): boolean {
  if (OUTPUT_CODES.has(b.code)) return true;
  return b.code === 'normaliser' && !!b.node && (b.node.opType === 'Softmax' || b.node.opType === 'LogSoftmax') && b.node.outputs.every((o) => o.isGraphOutput);
}

/**
 * The attention block whose heads merge that `layer` projects Q, K or V for, when that is all that
 * holds the layer back: markAttentionLayers put the 'attention' blocker on it and nothing else, and
 * its group (a packed projection's, cut by Split/Slice) is held back only by the block's own nodes.
 */
function headBlockOf(layer: NeuronLayer, group: DependencyGroup | undefined, attention: readonly AttentionBlock[]): AttentionBlock | undefined {
  if (layer.blockers.length === 0 || layer.blockers.some((b) => b.code !== 'attention')) return undefined;
  // planHeadMerges takes exactly these blocks: no blocker of their own, and an output projection to fold into.
  const block = attention.find((b) => b.blockers.length === 0 && !!b.output && [b.q, b.k, b.v].some((p) => p.layer === layer));
  if (!block || !group) return block;
  const own = new Set([...block.nodes, ...[block.q, block.k, block.v].map((p) => p.cut)]);
  const outside = group.blockers.filter((b) => b.code !== 'member' && b.code !== 'attention' && !(b.node && own.has(b.node)));
  return outside.length || group.producers.length > 1 ? undefined : block;
}

/** The share of hidden neurons prune can rewrite, and the blocker codes behind the rest. */
export function measureCoverage(layers: readonly NeuronLayer[], groups: readonly DependencyGroup[], unsupported: readonly UnsupportedLayer[] = [], attention: readonly AttentionBlock[] = []): Coverage {
  const coverage: Coverage = { layers: 0, neurons: 0, rewritableLayers: 0, rewritableNeurons: 0, rewritableShare: 0, aloneNeurons: 0, groupedNeurons: 0, mergeableGroups: 0, headNeurons: 0, headBlocks: 0, approximateGroupNeurons: 0, approximateGroups: 0, readoutLayers: 0, readoutNeurons: 0, blockers: [] };
  const counts = new Map<BlockerCode, BlockerCount>();
  const count = (codes: Iterable<BlockerCode>, width: number): void => {
    for (const code of codes) {
      const c = counts.get(code) ?? { code, layers: 0, neurons: 0 };
      c.layers++;
      c.neurons += width;
      counts.set(code, c);
    }
  };
  const mergingGroups = new Set<DependencyGroup>();
  const mergingBlocks = new Set<AttentionBlock>();
  const approximateGroups = new Set<DependencyGroup>();
  for (const layer of layers) {
    const group = groups.find((g) => g.producers.includes(layer));
    if (isReadout(layer, group)) {
      coverage.readoutLayers++;
      coverage.readoutNeurons += layer.width;
      continue;
    }
    coverage.layers++;
    coverage.neurons += layer.width;
    const rewritable = (bucket: 'aloneNeurons' | 'groupedNeurons' | 'approximateGroupNeurons' | 'headNeurons'): void => {
      coverage.rewritableLayers++;
      coverage.rewritableNeurons += layer.width;
      coverage[bucket] += layer.width;
    };
    if (group ? group.mergeable : layer.mergeable) {
      if (group) mergingGroups.add(group);
      rewritable(group ? 'groupedNeurons' : 'aloneNeurons');
      continue;
    }
    if (group?.approximateOnly && layer.blockers.every((b) => !b.node || group.ties.includes(b.node) || b.code === 'member')) {
      // Merged with --approximate (or under a budget) only: channels refit through the normalisations, verified.
      approximateGroups.add(group);
      rewritable('approximateGroupNeurons');
      continue;
    }
    const block = headBlockOf(layer, group, attention);
    if (block) {
      mergingBlocks.add(block);
      rewritable('headNeurons');
    } else count(blockingCodes(layer, group), layer.width);
  }
  for (const u of unsupported) {
    coverage.layers++;
    coverage.neurons += u.width;
    count([u.blocker.code], u.width);
  }
  coverage.mergeableGroups = mergingGroups.size;
  coverage.headBlocks = mergingBlocks.size;
  coverage.approximateGroups = approximateGroups.size;
  coverage.rewritableShare = coverage.neurons ? coverage.rewritableNeurons / coverage.neurons : 0;
  coverage.blockers = [...counts.values()].sort((a, b) => b.neurons - a.neurons || b.layers - a.layers || a.code.localeCompare(b.code));
  return coverage;
}

/** One line for people: the share prune can rewrite and the blockers behind the rest. */
export function describeCoverage(c: Omit<Coverage, 'blockers'> & { blockers: readonly { code: string; layers: number; neurons: number }[] }): string {
  if (c.neurons === 0) return `coverage: no hidden neurons${c.readoutLayers ? ` (only ${c.readoutLayers} read-out layer${c.readoutLayers === 1 ? '' : 's'})` : ''}`;
  const pct = (x: number): string => `${(100 * x).toFixed(x > 0 && x < 0.001 ? 2 : 1)}%`;
  const parts = [`coverage: prune can rewrite ${c.rewritableNeurons.toLocaleString('en-US')} of ${c.neurons.toLocaleString('en-US')} neurons outside read-out layers (${pct(c.rewritableShare)}), exactly where they agree or by refit (--approximate)`];
  const kinds = [
    ...(c.aloneNeurons ? [`${c.aloneNeurons.toLocaleString('en-US')} in layers merged alone`] : []),
    ...(c.groupedNeurons ? [`${c.groupedNeurons.toLocaleString('en-US')} in ${c.mergeableGroups} mergeable group${c.mergeableGroups === 1 ? '' : 's'}`] : []),
    ...(c.approximateGroupNeurons ? [`${c.approximateGroupNeurons.toLocaleString('en-US')} in ${c.approximateGroups} approximate-only group${c.approximateGroups === 1 ? '' : 's'} (residual stream, --approximate)`] : []),
    ...(c.headNeurons ? [`${c.headNeurons.toLocaleString('en-US')} in the Q/K/V projections of ${c.headBlocks} attention block${c.headBlocks === 1 ? '' : 's'} (whole heads and within-head pairs)`] : []),
  ];
  if (kinds.length) parts.push(kinds.join(', '));
  const blocked = c.blockers.map((b) => `${b.code} ${b.neurons.toLocaleString('en-US')} neurons (${b.layers} layer${b.layers === 1 ? '' : 's'})`);
  return `${parts.join('; ')}${blocked.length ? `; blocked by ${blocked.join(', ')}` : ''}`;
}
