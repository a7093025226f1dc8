// Planning the approximate merge of a residual stream (a group residual-stream.ts marks
// approximateOnly): normalisations divide each position by a statistic of all its channels, so no
// stream merge is exact, and prune plans one only in approximate mode, then verifies it.
//
//   embed -> x0 -> Add -> x1 -> RMSNorm -> q/k/v     channel j of x0, x1 is t times channel r:
//            \-> RMSNorm -> ... o_proj -/            every writer, norm and reader loses j
//
// Channel j goes when, on every tensor a reader takes from the stream (the normalisations'
// outputs), it correlates (either sign) with a kept channel r at the similarity threshold (then readers fold it
// into r by least-squares refit), or when it is constant there (dead). For an RMSNorm stream the
// fold can keep the normalisation itself unchanged: r is written sqrt(1 + t^2) times larger, so
// the sum of squares stays, and eps and the gains absorb the width change (merge-stream.ts).

import { groupStatisticsKey, type DependencyGroup } from '../analysis/channel-groups.js';
import { streamParts, constantThroughIdentity, type StreamNormalisation } from '../analysis/residual-stream.js';
import type { Value } from '../ir/value.js';
import type { GroupMergePlan, GroupPlanContext } from './plan-merges.js';

/** Stream channel `neuron` folds into `into`: x_j ~ scale * x_r on the stream (pre-normalisation units). */
export interface StreamFold {
  neuron: number;
  into: number;
  scale: number;
}

/** What a residual-stream merge removes and how (GroupMergePlan.stream). */
export interface StreamMerge {
  /** Channels folded into a kept channel they correlate with on every read tensor. */
  folds: StreamFold[];
  /** Channels constant on every read tensor (dead): dropped, readers' biases absorb their means. */
  lowAmplitude: number[];
  /**
   * Every normalisation is an RMSNorm and every reader sits after one: kept channel r is written
   * sqrt(1 + sum t^2) larger and the norms' eps and gains absorb it and the width change, so a
   * proportional channel folds, and a zero one drops, with the normalisation unchanged.
   */
  rescaled: boolean;
}

/** The per-channel gain of a normalisation (the product of its gain constants; ones when it has none). */
export function normalisationGains(norm: StreamNormalisation, width: number): Float64Array {
  const gains = new Float64Array(width).fill(1);
  for (const p of norm.parameters) {
    if (p.role !== 'gain') continue;
    const values = constantThroughIdentity(p.node.inputs[p.inputIndex])?.toFloat64();
    if (values) for (let c = 0; c < width; c++) gains[c]! *= values[c]!;
  }
  return gains;
}

/** A tensor readers take from the stream, with its moments read entry by entry (no m x m copies: a stream has one per norm). */
export interface ReadTensor {
  value: Value;
  /** Samples (positions) its moments were taken on. */
  count: number;
  /** Population covariance of channels i and j. */
  cov(i: number, j: number): number;
  /** Uncentred second moment E[y_i y_j]. */
  second(i: number, j: number): number;
  norm: StreamNormalisation | undefined;
  gains: Float64Array | undefined;
}

/**
 * The tensors a stream's readers take (the normalisations' outputs), with their statistics;
 * undefined when one has none (the stream then cannot be planned).
 */
export function streamReadTensors(group: DependencyGroup, statistics: GroupPlanContext['statistics']): ReadTensor[] | undefined {
  if (!statistics) return undefined;
  const width = group.width;
  const normOf = new Map(streamParts(group).normalisations.map((n) => [n.output, n]));
  const read: ReadTensor[] = [];
  for (const value of new Set(group.consumers.map((c) => c.member))) {
    const s = statistics.get(groupStatisticsKey(group, value));
    if (!s || s.count < 2 || s.mean.length !== width) return undefined;
    const norm = normOf.get(value);
    const cov = (i: number, j: number): number => s.scatter[i * width + j]! / s.count;
    read.push({ value, count: s.count, cov, second: (i, j) => cov(i, j) + s.mean[i]! * s.mean[j]!, norm, gains: norm ? normalisationGains(norm, width) : undefined });
  }
  return read.length ? read : undefined;
}

/** Largest variance of each stream channel over the read tensors. */
export function streamVariances(read: readonly ReadTensor[], width: number): Float64Array {
  return Float64Array.from({ length: width }, (_, g) => Math.max(0, ...read.map((m) => m.cov(g, g))));
}

/** True when channel j correlates (either sign) with r at `threshold` on every read tensor. */
function correlatesEverywhere(read: readonly ReadTensor[], j: number, r: number, threshold: number): boolean {
  return read.every((m) => {
    const sjj = m.cov(j, j);
    const srr = m.cov(r, r);
    return sjj === 0 || (srr > 0 && Math.abs(m.cov(j, r)) / Math.sqrt(sjj * srr) >= threshold);
  });
}

/**
 * The stream plan that keeps `kept` and drops the rest: a dropped channel that correlates with a
 * kept one at `threshold` everywhere is a fold (its scale feeds the RMSNorm rescaling), one of no
 * variance is dead, and any other is simply dropped (readers refit on the kept channels).
 */
export function streamPlan(group: DependencyGroup, read: readonly ReadTensor[], kept: readonly number[], threshold: number, variances: Float64Array = streamVariances(read, group.width)): GroupMergePlan {
  const width = group.width;
  const maxVariance = Math.max(...variances);
  const keep = new Set(kept);
  const folds: StreamFold[] = [];
  const lowAmplitude: number[] = [];
  const dropped = [...Array(width).keys()].filter((g) => !keep.has(g));
  for (const j of dropped) {
    if (variances[j]! <= 1e-12 * maxVariance) {
      lowAmplitude.push(j);
      continue;
    }
    const r = kept.find((k) => correlatesEverywhere(read, j, k, threshold));
    if (r !== undefined) folds.push({ neuron: j, into: r, scale: streamScale(read, j, r) });
  }
  const parts = streamParts(group);
  // Exact only when every dropped channel is a fold or dead: then the sum of squares the norm divides by is kept.
  const rescaled = folds.length + lowAmplitude.length === dropped.length && parts.normalisations.length > 0 && parts.normalisations.every((n) => n.kind === 'rms' && n.parameters.some((p) => p.role === 'gain')) && read.every((m) => m.norm !== undefined);
  return {
    group: group.id,
    members: group.producers.map((p) => p.name),
    width,
    widthAfter: kept.length,
    merges: [],
    statics: [],
    refit: { kept: [...kept].sort((a, b) => a - b), dropped },
    stream: { folds, lowAmplitude, rescaled },
    // Every producer writes every stream channel.
    neuronsRemoved: group.producers.length * dropped.length,
  };
}

/**
 * Plans the approximate merge of a residual stream from the statistics of the tensors its readers
 * take (groupStatisticsKey); undefined when the group is not a stream, a read tensor has no
 * statistics, or nothing goes. Pure: reads weights and statistics, changes nothing.
 */
export function planStreamMerges(group: DependencyGroup, context: GroupPlanContext): GroupMergePlan | undefined {
  if (!group.approximateOnly) return undefined;
  const read = streamReadTensors(group, context.statistics);
  if (!read) return undefined;
  const threshold = context.similarityThreshold ?? 0.95;
  const width = group.width;
  const variances = streamVariances(read, width);
  const maxVariance = Math.max(...variances);
  const kept: number[] = [];
  let gone = 0;
  const order = [...Array(width).keys()].sort((a, b) => variances[b]! - variances[a]! || a - b);
  for (const j of order) {
    if (variances[j]! <= 1e-12 * maxVariance || kept.some((k) => correlatesEverywhere(read, j, k, threshold))) gone++;
    else kept.push(j);
  }
  // A stream constant on every probe (kept empty) says more about the probes than the model.
  if (gone === 0 || kept.length === 0) return undefined;
  return streamPlan(group, read, kept, threshold, variances);
}

/**
 * t in x_j ~ t x_r, from the uncentred moments of the read tensors (weighted by E[y_r^2]). After
 * an RMSNorm y_c = g_c x_c / rms(x), so t = (E[y_j y_r] / E[y_r^2]) g_r / g_j.
 */
function streamScale(read: readonly ReadTensor[], j: number, r: number): number {
  let sum = 0;
  let weight = 0;
  for (const m of read) {
    const srr = m.second(r, r);
    if (!(srr > 0)) continue;
    let t = m.second(j, r) / srr;
    if (m.norm?.kind === 'rms' && m.gains) {
      if (m.gains[j] === 0) continue;
      t *= m.gains[r]! / m.gains[j]!;
    }
    sum += srr * t;
    weight += srr;
  }
  return weight > 0 ? sum / weight : 0;
}
