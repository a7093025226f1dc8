// Planning, the pure half of a rewrite: from measured layers to a serialisable MergePlan that a
// dry run prints and applyMergePlan carries out. Exactness rules: condensation.md, "Why merging
// is exact, and when it is not".

import { OptionError } from '../errors.js';
import type { LayerCondensation } from '../analysis/measure-condensation.js';
import { inputWeightVectors } from '../analysis/input-weights.js';
import { groupStatisticsKey, type ChannelGroup } from '../analysis/channel-groups.js';
import type { HeadMergePlan } from './merge-heads.js';
import type { StreamingMoments } from '../numeric/streaming-moments.js';
import type { Value } from '../ir/value.js';
import { groupRatios } from '../analysis/group-ratios.js';
import { planStreamMerges, type StreamMerge } from './plan-stream-merges.js';

/** Neuron `neuron` computes `scale` times neuron `into` on every input, so it folds into it. */
export interface NeuronMerge {
  neuron: number;
  into: number;
  scale: number;
  /** copy: u_j = u_r (any activation); multiple: u_j = t u_r, t > 0 (homogeneous); negated: u_j = -u_r (odd). */
  kind: 'copy' | 'multiple' | 'negated';
}

/** Neuron `neuron` outputs the constant `value` (or nothing reads it), so it is dropped. */
export interface StaticRemoval {
  neuron: number;
  value: number;
  kind: 'zero-output' | 'zero-input' | 'constant-on-probes' | 'low-amplitude';
}

export interface LayerMergePlan {
  layer: string;
  width: number;
  widthAfter: number;
  merges: NeuronMerge[];
  statics: StaticRemoval[];
  /**
   * Approximate mode: neurons kept, with the consumers refit by least squares on probe statistics.
   * `ordered`: `kept` is in pivot order and the refit is the pivoted-Cholesky one (a kept neuron
   * the earlier ones already predict keeps its consumer weights), as budgeted prune plans it.
   * `regressors`: only the first this many of `kept` are fitted on (default all); the rest keep
   * their consumer weights.
   */
  refit?: { kept: number[]; dropped: number[]; ordered?: boolean; regressors?: number };
}

export interface MergePlan {
  layers: LayerMergePlan[];
  /** Merges of channels tied across layers (residual streams); see analysis/channel-groups.ts. */
  groups: GroupMergePlan[];
  /** Whole duplicate attention heads merged (merge-heads.ts); absent when no block has any. */
  heads?: HeadMergePlan[];
}

export interface MergeOptions {
  /** Also merge the rest of each cluster and drop low-amplitude neurons, refitting consumers. */
  approximate?: boolean;
  /**
   * Largest relative residual |u_j - t u_r| / |u_j| still treated as an exact relation (default
   * DEFAULT_EXACT_TOLERANCE; CLI --exact-tolerance). This alone decides which relations exact
   * merges use; the similarity threshold does not (it drives clusters: reported effective widths,
   * and the merges of approximate mode).
   */
  exactTolerance?: number;
}

/** The default of MergeOptions.exactTolerance. */
export const DEFAULT_EXACT_TOLERANCE = 1e-6;

/**
 * The |cosine| below which a pair cannot meet `tolerance`: the residual test passes only when
 * sin(angle) <= tolerance, i.e. |cos| >= sqrt(1 - tolerance^2). The screen sits 1e-3 lower so a
 * cosine computed in float32 (onnxruntime's GEMM for wide layers) never hides a relation the
 * residual test, in float64, would accept.
 */
export function cosineScreen(tolerance: number): number {
  return Math.sqrt(1 - Math.min(1, tolerance) ** 2) - 1e-3;
}

/** Plans the merges of every mergeable layer and group; pure: reads weights and statistics, changes nothing. */
export function planMerges(measured: LayerCondensation[], options: MergeOptions = {}, groups: ChannelGroup[] = [], groupContext: GroupPlanContext = {}): MergePlan {
  const tolerance = options.exactTolerance ?? DEFAULT_EXACT_TOLERANCE;
  if (!(tolerance >= 0 && tolerance < 1)) throw new OptionError('exactTolerance', `expected a number in [0, 1), got "${tolerance}"`);
  const layers: LayerMergePlan[] = [];
  for (const m of measured) {
    if (!m.layer.mergeable) continue;
    const plan = options.approximate ? planApproximate(m, tolerance) : planExact(m, tolerance);
    if (plan.widthAfter < plan.width) layers.push(plan);
  }
  const groupPlans = groups.map((g) => planGroupMerges(g, options, groupContext)).filter((g): g is GroupMergePlan => g !== undefined);
  return { layers, groups: groupPlans };
}

/**
 * Exact merges and statics. `withProbeStatics` also drops neurons that were constant on every
 * probe (a ReLU dead on the data): exact on the probes only, so approximate mode alone does it.
 */
export function planLayerExact(m: LayerCondensation, tolerance = DEFAULT_EXACT_TOLERANCE, withProbeStatics = false): LayerMergePlan {
  return planExact(m, tolerance, withProbeStatics);
}

function planExact(m: LayerCondensation, tolerance: number, withProbeStatics = false): LayerMergePlan {
  const { layer } = m;
  const width = layer.width;
  const { rows, dim } = inputWeightVectors(layer);
  const fanIn = layer.bias ? dim - 1 : dim;
  const statics = exactStatics(m, rows, dim, fanIn, withProbeStatics);
  // A byte per neuron, not a Set: the pair loop below reads it width^2 / 2 times.
  const removed = new Uint8Array(width);
  for (const s of statics) removed[s.neuron] = 1;
  const merges: NeuronMerge[] = [];
  // Larger vectors become representatives: dividing by a tiny |u_r| would amplify rounding.
  const order = [...Array(width).keys()].filter((k) => !removed[k]).sort((a, b) => m.inputWeightNorms[b]! - m.inputWeightNorms[a]! || a - b);
  const act = layer.activation;
  const screen = cosineScreen(tolerance);
  const cosine = m.weightCosine;
  for (let oi = 0; oi < order.length; oi++) {
    const r = order[oi]!;
    if (removed[r]) continue;
    const nr = m.inputWeightNorms[r]!;
    if (nr === 0) continue;
    for (let oj = oi + 1; oj < order.length; oj++) {
      const j = order[oj]!;
      if (removed[j]) continue;
      const c = cosine[j * width + r]!;
      if (Math.abs(c) < screen || act.functionIds[j] !== act.functionIds[r]) continue;
      let dot = 0;
      for (let i = 0; i < dim; i++) dot += rows[j * dim + i]! * rows[r * dim + i]!;
      const t = dot / (nr * nr);
      let residual = 0;
      for (let i = 0; i < dim; i++) residual += (rows[j * dim + i]! - t * rows[r * dim + i]!) ** 2;
      if (Math.sqrt(residual) > tolerance * m.inputWeightNorms[j]!) continue;
      let kind: NeuronMerge['kind'] | undefined;
      let scale = t;
      if (Math.abs(t - 1) <= tolerance) {
        kind = 'copy';
        scale = 1;
      } else if (t > 0 && act.isPositivelyHomogeneous) kind = 'multiple';
      else if (Math.abs(t + 1) <= tolerance && act.isOdd && layer.allowsNegativeScale) {
        kind = 'negated';
        scale = -1;
      } else if (t < 0 && act.isOdd && act.isPositivelyHomogeneous && layer.allowsNegativeScale) kind = 'multiple';
      if (!kind) continue;
      merges.push({ neuron: j, into: r, scale, kind });
      removed[j] = 1;
    }
  }
  merges.sort((a, b) => a.neuron - b.neuron);
  return { layer: layer.name, width, widthAfter: width - statics.length - merges.length, merges, statics };
}

function exactStatics(m: LayerCondensation, rows: Float64Array, dim: number, fanIn: number, withProbeStatics: boolean): StaticRemoval[] {
  const { layer } = m;
  const statics: StaticRemoval[] = [];
  const variance = m.statistics?.variance();
  for (let k = 0; k < layer.width; k++) {
    if (m.outgoingWeightNorms && m.outgoingWeightNorms[k] === 0) {
      statics.push({ neuron: k, value: 0, kind: 'zero-output' });
      continue;
    }
    let inputIsZero = true;
    for (let i = 0; i < fanIn && inputIsZero; i++) if (rows[k * dim + i] !== 0) inputIsZero = false;
    // A constant channel stays constant on the way to the consumer unless padding brings in zeros.
    const canFold = (value: number): boolean => value === 0 || layer.keepsConstants;
    if (inputIsZero) {
      // With w_k = 0 the neuron sees only its bias: s(b_k), the same for every input.
      const b = fanIn < dim ? rows[k * dim + fanIn]! : 0;
      const value = layer.activation.evaluate(k, Float64Array.of(b))[0]!;
      if (canFold(value)) statics.push({ neuron: k, value, kind: 'zero-input' });
      continue;
    }
    if (withProbeStatics && variance && m.statistics!.count > 1 && variance[k] === 0 && canFold(m.statistics!.mean[k]!)) {
      statics.push({ neuron: k, value: m.statistics!.mean[k]!, kind: 'constant-on-probes' });
    }
  }
  return statics;
}

function planApproximate(m: LayerCondensation, tolerance: number): LayerMergePlan {
  const exact = planExact(m, tolerance, true);
  if (!m.statistics || m.statistics.count === 0) {
    throw new OptionError('approximate', `layer "${m.layer.name}" has no probe statistics; approximate merging refits consumers on probe data: give --probe or --random`);
  }
  const dropped = new Set<number>([...exact.merges.map((x) => x.neuron), ...exact.statics.map((s) => s.neuron)]);
  const statics: StaticRemoval[] = [...exact.statics];
  for (const k of m.staticNeurons) {
    if (!dropped.has(k)) {
      dropped.add(k);
      statics.push({ neuron: k, value: m.statistics.mean[k]!, kind: 'low-amplitude' });
    }
  }
  // Keep the largest-amplitude member of each output cluster (outputs are what the refit matches).
  const clusters = m.outputClusters ?? m.weightClusters;
  const best = new Map<number, number>();
  for (let k = 0; k < m.width; k++) {
    const label = clusters.labels[k]!;
    if (label < 0 || dropped.has(k)) continue;
    const cur = best.get(label);
    if (cur === undefined || m.amplitude[k]! > m.amplitude[cur]!) best.set(label, k);
  }
  const kept = [...best.values()].sort((a, b) => a - b);
  const keptSet = new Set(kept);
  for (let k = 0; k < m.width; k++) if (!keptSet.has(k)) dropped.add(k);
  return {
    layer: m.layer.name,
    width: m.width,
    widthAfter: kept.length,
    merges: exact.merges,
    statics,
    refit: { kept, dropped: [...dropped].sort((a, b) => a - b) },
  };
}

/** A merge of group channel `neuron` into `into`, with the scale t (h_j = t h_r) on each member a consumer reads. */
export interface GroupNeuronMerge extends NeuronMerge {
  /** Tensor name -> scale, for the members the group's consumers read (a depthwise conv changes it). */
  scales: Record<string, number>;
}

/** Merges of a channel group: channel j folds into r only if h_j = t h_r on every member (group-ratios.ts). */
export interface GroupMergePlan {
  group: string;
  members: string[];
  width: number;
  widthAfter: number;
  merges: GroupNeuronMerge[];
  /** Group channels that are padding zeros everywhere: dropped, nothing to fold. */
  statics: StaticRemoval[];
  /**
   * Approximate mode: the group channels kept; every consumer is refit by least squares on the
   * statistics of the member it reads (the kept channels' values do not change anywhere in the
   * group, since nothing inside it mixes channels).
   */
  refit?: { kept: number[]; dropped: number[] };
  /** Neurons the producers lose together (each producer counts the removed channels it writes). */
  neuronsRemoved: number;
  /**
   * A residual stream's approximate merge (plan-stream-merges.ts): which channels fold into which
   * and which are dead; `refit` holds the kept channels, and readers are refit. Never exact.
   */
  stream?: StreamMerge;
}

/** What approximate group planning reads: the producers' measurements and the group tensors' statistics. */
export interface GroupPlanContext {
  /** Statistics of the group tensors consumers read (groupStatisticsKey). */
  statistics?: ReadonlyMap<string, StreamingMoments>;
  /** Correlation at or above which approximate mode drops a channel for a kept one (AnalysisOptions.similarityThreshold). */
  similarityThreshold?: number;
}

/**
 * Plans the exact merges of a mergeable channel group: pairs written by one producer whose
 * relation holds with one positive scale through every member (copies where an op is not
 * positively homogeneous), and the static channels (padding zeros).
 */
export function planGroupMerges(group: ChannelGroup, options: MergeOptions = {}, context: GroupPlanContext = {}): GroupMergePlan | undefined {
  // A residual stream merges only approximately, so an exact plan leaves it alone.
  if (!group.mergeable) return options.approximate && group.approximateOnly ? planStreamMerges(group, context) : undefined;
  if (group.producers.length === 0) return undefined;
  const tolerance = options.exactTolerance ?? DEFAULT_EXACT_TOLERANCE;
  const ratios = groupRatios(group);
  const read = [...new Set(group.consumers.map((c) => c.member))];
  const width = group.width;
  const statics: StaticRemoval[] = group.staticChannels.map((neuron) => ({ neuron, value: 0, kind: 'zero-input' }));
  const removed = new Set<number>(group.staticChannels);
  const merges: GroupNeuronMerge[] = [];
  const screen = cosineScreen(tolerance);
  // Candidates share their anchor producer; larger vectors become representatives, as in planExact.
  const byAnchor = new Map<string, number[]>();
  ratios.anchors.forEach((a, g) => {
    if (!a || removed.has(g)) return;
    const list = byAnchor.get(a.producer.name) ?? [];
    list.push(g);
    byAnchor.set(a.producer.name, list);
  });
  for (const channels of byAnchor.values()) {
    const order = channels.sort((a, b) => ratios.anchorNorms[b]! - ratios.anchorNorms[a]! || a - b);
    for (let oi = 0; oi < order.length; oi++) {
      const r = order[oi]!;
      if (removed.has(r) || ratios.anchorNorms[r] === 0) continue;
      for (let oj = oi + 1; oj < order.length; oj++) {
        const j = order[oj]!;
        if (removed.has(j) || ratios.anchorCosine(j, r) < screen) continue;
        const t = ratios.solve(j, r, tolerance);
        if (!t) continue;
        const scales: Record<string, number> = {};
        for (const v of read) if (t.has(v)) scales[v.name] = t.get(v)!;
        const anchor = t.get(ratios.anchors[j]!.producer.activation.output)!;
        const kind = Math.abs(anchor - 1) <= tolerance ? 'copy' : 'multiple';
        merges.push({ neuron: j, into: r, scale: kind === 'copy' ? 1 : anchor, kind, scales });
        removed.add(j);
      }
    }
  }
  merges.sort((a, b) => a.neuron - b.neuron);
  const plan: GroupMergePlan = { group: group.id, members: group.producers.map((p) => p.name), width, widthAfter: width - removed.size, merges, statics, neuronsRemoved: 0 };
  if (options.approximate) {
    const refit = approximateGroupDrops(group, ratios, removed, context);
    if (refit) {
      plan.refit = refit;
      plan.widthAfter = refit.kept.length;
    }
  }
  const gone = new Set(plan.refit ? plan.refit.dropped : removed);
  plan.neuronsRemoved = group.producers.reduce((n, p) => n + [...Array(width).keys()].filter((g) => gone.has(g) && ratios.localOf(p.activation.output, g) >= 0).length, 0);
  return plan.widthAfter < width ? plan : undefined;
}

/**
 * Approximate group drops, decided on what the refit will match: the statistics of the tensors the
 * consumers read. Channel j goes (beyond the exact drops) when it is constant in every such
 * tensor, or when a kept channel r correlates with it at the similarity threshold in every such
 * tensor that holds j (a residual sum can disagree with one producer's clusters). Larger-variance
 * channels are kept first. Undefined when a read tensor has no statistics (exact merges only).
 */
function approximateGroupDrops(group: ChannelGroup, ratios: ReturnType<typeof groupRatios>, removed: Set<number>, context: GroupPlanContext): GroupMergePlan['refit'] {
  const { statistics } = context;
  const threshold = context.similarityThreshold ?? 0.95;
  if (!statistics) return undefined;
  const read: { value: Value; width: number; cov: Float64Array; mean: Float64Array }[] = [];
  for (const value of new Set(group.consumers.map((c) => c.member))) {
    const s = statistics.get(groupStatisticsKey(group, value));
    if (!s || s.count < 2) return undefined;
    read.push({ value, width: s.mean.length, cov: s.covariance(), mean: s.mean });
  }
  if (read.length === 0) return undefined;
  const varianceOf = (g: number): number => Math.max(0, ...read.map((m) => {
    const c = ratios.localOf(m.value, g);
    return c < 0 ? 0 : m.cov[c * m.width + c]!;
  }));
  const maxVariance = Math.max(...[...Array(group.width).keys()].map(varianceOf));
  const dropped = new Set(removed);
  const kept: number[] = [];
  const order = [...Array(group.width).keys()].filter((g) => !dropped.has(g)).sort((a, b) => varianceOf(b) - varianceOf(a) || a - b);
  for (const j of order) {
    if (varianceOf(j) <= 1e-12 * maxVariance) {
      dropped.add(j);
      continue;
    }
    const covered = kept.some((r) => read.every((m) => {
      const cj = ratios.localOf(m.value, j);
      if (cj < 0) return true;
      const cr = ratios.localOf(m.value, r);
      if (cr < 0) return false;
      const sjj = m.cov[cj * m.width + cj]!;
      const srr = m.cov[cr * m.width + cr]!;
      return sjj === 0 || m.cov[cj * m.width + cr]! / Math.sqrt(sjj * srr) >= threshold;
    }));
    if (covered) dropped.add(j);
    else kept.push(j);
  }
  if (dropped.size === removed.size) return undefined;
  return { kept: kept.sort((a, b) => a - b), dropped: [...dropped].sort((a, b) => a - b) };
}
