// Removal candidates for a budgeted prune: per layer (and, through the same interface, per
// dependency group), the neurons in the order they should go and the error each prefix of that
// order is predicted to cost, from the probe statistics already collected.
//
// A layer's order comes from a greedy pivoted Cholesky of its output covariance S (Schur
// complements, condensation.md "data-driven compensation"): the neuron whose output the kept ones
// predict worst, weighted by how much its consumers read it (|a_k|^2), is kept first; the last
// pivots go first, and neurons the pivots predict exactly (copies, statics, tight clusters) go
// before any of them. Removing a set D and refitting the consumers on the kept set K leaves the
// residual variance S_DD|K = S_DD - S_DK S_KK^-1 S_KD, whose weighted trace is the prediction.

import type { LayerCondensation } from '../analysis/measure-condensation.js';
import { inputWeightVectors } from '../analysis/input-weights.js';
import { greedyPivotedCholesky, type PartialCholesky } from '../numeric/pivoted-cholesky.js';
import { covarianceOf, rememberFactor } from './refit-factors.js';
import { planGroupMerges, planLayerExact, type GroupMergePlan, type LayerMergePlan, type MergePlan, type StaticRemoval } from './plan-merges.js';
import { groupChannels, groupStatisticsKey, type DependencyGroup } from '../analysis/channel-groups.js';
import type { Value } from '../ir/value.js';
import { streamParts } from '../analysis/residual-stream.js';
import { streamPlan, streamReadTensors, streamVariances } from './plan-stream-merges.js';
import type { StreamingMoments } from '../numeric/streaming-moments.js';

/**
 * Something a budget search can shrink step by step: a layer or a dependency group. Group kinds
 * (coupled channels, attention heads) plug in by implementing this; the search reads nothing else.
 */
export interface RemovalCandidate {
  /** The layer or group name reports show. */
  name: string;
  /** 'layer', or the group kind ('residual', 'heads', ...). */
  kind: string;
  /** Neurons (channels, heads) before any removal. */
  width: number;
  /** Removed by the exact plan (count 0), at no predicted cost. */
  exactRemoved: number;
  /** Removals available beyond the exact ones. */
  steps: number;
  /**
   * predictedEnergy[r], r = 0..steps: output variance the consumers are predicted to lose after
   * the first r removals (0 at r = 0, nondecreasing).
   */
  predictedEnergy: Float64Array;
  /** The variance this layer feeds its consumers: predictedEnergy / outputEnergy is a relative error squared. */
  outputEnergy: number;
  /** Parameters and multiply-add FLOPs per sample that one removal saves (approximately). */
  paramsPerStep: number;
  flopsPerStep: number;
  /** The merge plan that removes the exact ones and the first `count` further ones. */
  planFor(count: number): MergePlan;
}

export interface RankOptions {
  exactTolerance?: number;
  /** Output positions per sample of this layer (1 for dense layers): FLOPs scale with it. */
  positionsPerSample?: number;
  /** Output positions per sample of the layer a consumer node computes (its own resolution, after any pooling). */
  positionsOf?: (node: string) => number;
}

/** The removal candidate of one measured layer; undefined when the layer cannot be merged or has no statistics. */
export function rankLayerRemovals(m: LayerCondensation, options: RankOptions = {}): RemovalCandidate | undefined {
  const { layer } = m;
  if (!layer.mergeable || !m.outgoingWeightNorms) return undefined;
  const exact = planLayerExact(m, options.exactTolerance);
  const stats = m.statistics;
  const width = m.width;
  const exactGone = new Set([...exact.merges.map((x) => x.neuron), ...exact.statics.map((s) => s.neuron)]);
  const { dim } = inputWeightVectors(layer);
  const fanIn = layer.bias ? dim - 1 : dim;
  const positions = options.positionsPerSample ?? 1;
  let consumerParams = 0;
  let consumerFlops = 0;
  for (const c of layer.consumers) {
    const perNeuron = c.viewDims.reduce((p, d) => p * d, 1) / width;
    consumerParams += perNeuron;
    consumerFlops += 2 * perNeuron * (options.positionsOf?.(c.node.label) ?? 1);
  }
  const paramsPerStep = dim + consumerParams + layer.activation.perNeuron.length;
  const flopsPerStep = 2 * fanIn * positions + consumerFlops;
  const exactPlan = (): MergePlan => ({ layers: exact.widthAfter < width ? [exact] : [], groups: [] });
  const base = { name: layer.name, kind: 'layer', width, exactRemoved: exactGone.size, paramsPerStep, flopsPerStep };
  if (!stats || stats.count < 2) {
    return { ...base, steps: 0, predictedEnergy: Float64Array.of(0), outputEnergy: 0, planFor: exactPlan };
  }
  const cov = covarianceOf(stats);
  const weights = m.outgoingWeightNorms.map((a) => a * a);
  const candidates = [...Array(width).keys()].filter((k) => !exactGone.has(k));
  // At most half as many regressors as fit rows: a fit with as many regressors as samples explains
  // every other neuron exactly on the probes and nothing on new data (a layer wider than its
  // probes); past the cap the rest are ranked by what half the rows leave unexplained.
  const maxPivots = Math.max(1, Math.floor(stats.count / 2));
  const { factor, order, steps, predictedEnergy } = removalOrder(cov, width, candidates, weights, maxPivots);
  rememberFactor(stats, factor);
  let outputEnergy = 0;
  for (let k = 0; k < width; k++) outputEnergy += weights[k]! * Math.max(0, cov[k * width + k]!);
  const variance = stats.variance();
  const pivotRank = new Map(factor.pivots.map((p, i) => [p, i]));
  const planFor = (count: number): MergePlan => {
    if (count <= 0) return exactPlan();
    const removed = new Set(order.slice(0, Math.min(count, steps)));
    // Kept neurons in pivot order (the refit pivots on them in this order), unpivoted ones last.
    const kept = candidates.filter((k) => !removed.has(k)).sort((a, b) => (pivotRank.get(a) ?? Infinity) - (pivotRank.get(b) ?? Infinity) || a - b);
    const statics: StaticRemoval[] = [...exact.statics];
    for (const k of [...removed].sort((a, b) => a - b)) {
      if (variance[k] === 0) statics.push({ neuron: k, value: stats.mean[k]!, kind: 'constant-on-probes' });
    }
    const dropped = [...exactGone, ...removed].sort((a, b) => a - b);
    // The dropped neurons are fit from the kept pivots (a prefix of the greedy order, whose factor
    // ranking already made); kept unpivoted neurons keep their weights.
    const regressors = kept.filter((k) => pivotRank.has(k)).length;
    const plan: LayerMergePlan = { layer: layer.name, width, widthAfter: kept.length, merges: exact.merges, statics, refit: { kept, dropped, ordered: true, regressors } };
    return { layers: [plan], groups: [] };
  };
  return { ...base, steps, predictedEnergy, outputEnergy, planFor };
}

/** What ranking a dependency group's removals reads: its exact plan and the statistics of the tensors its consumers read. */
export interface GroupRankContext {
  /** Statistics of the group tensors consumers read (groupStatisticsKey). */
  statistics: ReadonlyMap<string, StreamingMoments>;
  exactTolerance?: number;
  /** Output positions per sample of a layer or consumer node (its own resolution), by name. */
  positionsOf?: (name: string) => number;
}

/**
 * The removal candidate of a mergeable dependency group (coupled channels: residual stages,
 * Concat, gates, depthwise chains): every member loses the same group channels, and every
 * consumer is refit by least squares on the statistics of the member it reads (the group path of
 * applyMergePlan). The order comes from a greedy pivoted Cholesky of the read tensors' covariances
 * summed in group-channel space: a channel that the kept ones predict in every tensor read goes
 * first. Undefined when a read tensor has no statistics (the group then merges exactly only).
 */
export function rankGroupRemovals(group: DependencyGroup, context: GroupRankContext): RemovalCandidate | undefined {
  if (!group.mergeable || group.producers.length === 0) return undefined;
  const width = group.width;
  const exact = planGroupMerges(group, { ...(context.exactTolerance !== undefined ? { exactTolerance: context.exactTolerance } : {}) });
  const exactGone = new Set(exact ? [...exact.merges.map((x) => x.neuron), ...exact.statics.map((s) => s.neuron)] : []);
  // Group channels each tensor holds (a Concat input holds a slice), by local channel.
  const channelsOf = (value: Value): number[] => {
    const member = group.members.find((m) => m.value === value);
    return member ? groupChannels(member, width) : [];
  };
  const read: ChannelReads[] = [];
  for (const value of new Set(group.consumers.map((c) => c.member))) {
    const stats = context.statistics.get(groupStatisticsKey(group, value));
    if (!stats || stats.count < 2) return undefined;
    const local = covarianceOf(stats);
    const n = stats.mean.length;
    read.push({ channels: channelsOf(value), count: stats.count, cov: (a, b) => local[a * n + b]! });
  }
  if (read.length === 0) return undefined;
  const cov = summedCovariance(width, read);
  const { paramsPerStep, flopsPerStep } = channelCost(group, channelsOf, context);
  const exactPlan = (): MergePlan => ({ layers: [], groups: exact ? [exact] : [] });
  const base = { name: group.id, kind: 'group', width, exactRemoved: exactGone.size, paramsPerStep, flopsPerStep };
  const count = Math.min(...read.map((r) => r.count));
  const candidates = [...Array(width).keys()].filter((k) => !exactGone.has(k));
  const { order, steps, predictedEnergy } = removalOrder(cov, width, candidates, new Float64Array(width).fill(1), Math.max(1, Math.floor(count / 2)));
  const outputEnergy = traceOf(cov, width);
  const planFor = (removedCount: number): MergePlan => {
    if (removedCount <= 0) return exactPlan();
    const removed = new Set(order.slice(0, Math.min(removedCount, steps)));
    const dropped = [...exactGone, ...removed].sort((a, b) => a - b);
    const gone = new Set(dropped);
    const kept = [...Array(width).keys()].filter((k) => !gone.has(k));
    const neuronsRemoved = group.producers.reduce((n, p) => n + channelsOf(p.activation.output).filter((g) => gone.has(g)).length, 0);
    const plan: GroupMergePlan = { group: group.id, members: group.producers.map((p) => p.name), width, widthAfter: kept.length, merges: exact?.merges ?? [], statics: exact?.statics ?? [], refit: { kept, dropped }, neuronsRemoved };
    return { layers: [], groups: [plan] };
  };
  return { ...base, steps, predictedEnergy, outputEnergy, planFor };
}

/**
 * The removal candidate of a residual stream (an approximateOnly group, merged by prune
 * --approximate only): its channels go from every embedding table, writer, normalisation and
 * reader at once, readers refit on the kept channels. The order comes from a greedy pivoted
 * Cholesky of the read tensors' (the normalisations' outputs) covariances summed; nothing is
 * free (a normalisation mixes channels), so exactRemoved is 0. Undefined without statistics.
 */
export function rankStreamRemovals(group: DependencyGroup, context: GroupRankContext & { similarityThreshold?: number }): RemovalCandidate | undefined {
  if (!group.approximateOnly) return undefined;
  const read = streamReadTensors(group, context.statistics);
  if (!read) return undefined;
  const width = group.width;
  const all = [...Array(width).keys()];
  // Every read tensor (a normalisation's output) holds every stream channel.
  const cov = summedCovariance(width, read.map((m) => ({ channels: all, count: m.count, cov: m.cov })));
  const cost = channelCost(group, () => all, context);
  const parts = streamParts(group);
  // A stream channel is also a column of every embedding table and an entry of every norm constant.
  const paramsPerStep = cost.paramsPerStep + parts.embeddings.reduce((n, e) => n + (e.table.constantTensor()?.elementCount ?? 0) / width, 0) + parts.normalisations.reduce((n, norm) => n + norm.parameters.length, 0);
  const flopsPerStep = cost.flopsPerStep;
  const count = Math.min(...read.map((m) => m.count));
  const { order, steps, predictedEnergy } = removalOrder(cov, width, all, new Float64Array(width).fill(1), Math.max(1, Math.floor(count / 2)));
  const outputEnergy = traceOf(cov, width);
  const threshold = context.similarityThreshold ?? 0.95;
  const variances = streamVariances(read, width);
  const planFor = (removedCount: number): MergePlan => {
    if (removedCount <= 0) return { layers: [], groups: [] };
    const removed = new Set(order.slice(0, Math.min(removedCount, steps)));
    // Kept in variance order, so a fold names the strongest partner first (as planStreamMerges does).
    const kept = all.filter((k) => !removed.has(k)).sort((a, b) => variances[b]! - variances[a]! || a - b);
    return { layers: [], groups: [streamPlan(group, read, kept, threshold, variances)] };
  };
  return { name: group.id, kind: 'residual stream', width, exactRemoved: 0, paramsPerStep, flopsPerStep, steps, predictedEnergy, outputEnergy, planFor };
}

/**
 * The removal order of `variables` from a greedy pivoted Cholesky of `cov` (weighted by how much
 * the consumers read each one), and the residual energy each prefix of it leaves:
 * predictedEnergy[r] for r = 0..steps, nondecreasing. Unpivoted variables are predicted (almost)
 * exactly by the pivots: they go first, least read first; then the pivots, last chosen first.
 * The first pivot stays: a layer or group keeps at least one channel.
 */
function removalOrder(cov: Float64Array, width: number, variables: number[], weights: ArrayLike<number>, maxPivots: number): { factor: PartialCholesky; order: number[]; steps: number; predictedEnergy: Float64Array } {
  const factor = greedyPivotedCholesky(cov, width, variables, weights, 1e-12, maxPivots);
  const pivoted = new Set(factor.pivots);
  const tail = variables
    .filter((k) => !pivoted.has(k))
    .sort((a, b) => weights[a]! * factor.residual[a]! - weights[b]! * factor.residual[b]! || weights[a]! * cov[a * width + a]! - weights[b]! * cov[b * width + b]! || a - b);
  const order = [...tail, ...[...factor.pivots].reverse()];
  const steps = Math.max(0, order.length - 1);
  const predictedEnergy = new Float64Array(steps + 1);
  let tailEnergy = 0;
  for (let r = 1; r <= steps; r++) {
    if (r <= tail.length) {
      const k = tail[r - 1]!;
      tailEnergy += weights[k]! * factor.residual[k]!;
      predictedEnergy[r] = tailEnergy;
    } else {
      // Keep the first (steps - r) pivots: what is left unexplained is the greedy residual then.
      predictedEnergy[r] = factor.weightedResidual[order.length - r]!;
    }
    predictedEnergy[r] = Math.max(predictedEnergy[r]!, predictedEnergy[r - 1]!);
  }
  return { factor, order, steps, predictedEnergy };
}

/** A tensor a group's consumers read: the group channels it holds (by local channel) and its covariance. */
interface ChannelReads {
  channels: readonly number[];
  count: number;
  cov(a: number, b: number): number;
}

/** The read tensors' covariances summed in group-channel space: what every consumer's refit must match together. */
function summedCovariance(width: number, read: readonly ChannelReads[]): Float64Array {
  const cov = new Float64Array(width * width);
  for (const { channels, cov: local } of read) {
    const n = channels.length;
    for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) cov[channels[a]! * width + channels[b]!]! += local(a, b);
  }
  return cov;
}

function traceOf(cov: Float64Array, width: number): number {
  let trace = 0;
  for (let k = 0; k < width; k++) trace += Math.max(0, cov[k * width + k]!);
  return trace;
}

/**
 * What removing one group channel saves: its rows in each producer (weighted by the share of the
 * group's channels that producer writes) and its columns in each consumer, in parameters and in
 * multiply-add FLOPs per sample.
 */
function channelCost(group: DependencyGroup, channelsOf: (value: Value) => readonly number[], context: Pick<GroupRankContext, 'positionsOf'>): { paramsPerStep: number; flopsPerStep: number } {
  const positions = (name: string): number => context.positionsOf?.(name) ?? 1;
  let paramsPerStep = 0;
  let flopsPerStep = 0;
  for (const p of group.producers) {
    const { dim } = inputWeightVectors(p);
    const share = channelsOf(p.activation.output).length / group.width;
    paramsPerStep += share * (dim + p.activation.perNeuron.length);
    flopsPerStep += share * 2 * (p.bias ? dim - 1 : dim) * positions(p.name);
  }
  for (const c of group.consumers) {
    const perChannel = c.viewDims.reduce((q, d) => q * d, 1) / Math.max(1, channelsOf(c.member).length);
    paramsPerStep += perChannel;
    flopsPerStep += 2 * perChannel * positions(c.node.label);
  }
  return { paramsPerStep, flopsPerStep };
}
