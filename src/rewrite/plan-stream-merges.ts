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
interface ReadTensor {
  value: Value;
  /** Population covariance of channels i and j. */
  cov(i: number, j: number): number;
  /** Uncentred second moment E[y_i y_j]. */
  second(i: number, j: number): number;
  norm: StreamNormalisation | undefined;
  gains: Float64Array | undefined;
}

/**
 * Plans the approximate merge of a residual stream from the statistics of the tensors its readers
 * take (groupStatisticsKey); undefined when the group is not a stream, a read tensor has no
 * statistics, or nothing goes. Pure: reads weights and statistics, changes nothing.
 */
export function planStreamMerges(group: DependencyGroup, context: GroupPlanContext): GroupMergePlan | undefined {
  const { statistics } = context;
  if (!group.approximateOnly || !statistics) return undefined;
  const threshold = context.similarityThreshold ?? 0.95;
  const width = group.width;
  const parts = streamParts(group);
  const normOf = new Map(parts.normalisations.map((n) => [n.output, n]));
  const read: ReadTensor[] = [];
  for (const value of new Set(group.consumers.map((c) => c.member))) {
    const s = statistics.get(groupStatisticsKey(group, value));
    if (!s || s.count < 2 || s.mean.length !== width) return undefined;
    const norm = normOf.get(value);
    const cov = (i: number, j: number): number => s.scatter[i * width + j]! / s.count;
    read.push({ value, cov, second: (i, j) => cov(i, j) + s.mean[i]! * s.mean[j]!, norm, gains: norm ? normalisationGains(norm, width) : undefined });
  }
  if (read.length === 0) return undefined;
  const variances = Float64Array.from({ length: width }, (_, g) => Math.max(0, ...read.map((m) => m.cov(g, g))));
  const variance = (g: number): number => variances[g]!;
  const maxVariance = Math.max(...[...Array(width).keys()].map(variance));
  const kept: number[] = [];
  const folds: StreamFold[] = [];
  const lowAmplitude: number[] = [];
  const order = [...Array(width).keys()].sort((a, b) => variance(b) - variance(a) || a - b);
  for (const j of order) {
    if (variance(j) <= 1e-12 * maxVariance) {
      lowAmplitude.push(j);
      continue;
    }
    const r = kept.find((k) => read.every((m) => {
      const sjj = m.cov(j, j);
      const srr = m.cov(k, k);
      // Either sign: x_j = t x_r with t < 0 folds as well (readers refit; RMSNorm rescales by sqrt(1 + t^2)).
      return sjj === 0 || (srr > 0 && Math.abs(m.cov(j, k)) / Math.sqrt(sjj * srr) >= threshold);
    }));
    if (r === undefined) kept.push(j);
    else folds.push({ neuron: j, into: r, scale: streamScale(read, j, r) });
  }
  // A stream constant on every probe (kept empty) says more about the probes than the model.
  if ((folds.length === 0 && lowAmplitude.length === 0) || kept.length === 0) return undefined;
  const dropped = [...folds.map((f) => f.neuron), ...lowAmplitude].sort((a, b) => a - b);
  const rescaled = parts.normalisations.length > 0 && parts.normalisations.every((n) => n.kind === 'rms' && n.parameters.some((p) => p.role === 'gain')) && read.every((m) => m.norm !== undefined);
  return {
    group: group.id,
    members: group.producers.map((p) => p.name),
    width,
    widthAfter: kept.length,
    merges: [],
    statics: [],
    refit: { kept: kept.sort((a, b) => a - b), dropped },
    stream: { folds: folds.sort((a, b) => a.neuron - b.neuron), lowAmplitude: lowAmplitude.sort((a, b) => a - b), rescaled },
    // Every producer writes every stream channel.
    neuronsRemoved: group.producers.length * dropped.length,
  };
}

/**
 * t in x_j ~ t x_r, from the uncentred moments of the read tensors (weighted by E[y_r^2]). After
 * an RMSNorm y_c = g_c x_c / rms(x), so t = (E[y_j y_r] / E[y_r^2]) g_r / g_j.
 */
function streamScale(read: ReadTensor[], j: number, r: number): number {
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
