// Planning, the pure half of a rewrite: from measured layers to a serialisable MergePlan that a
// dry run prints and applyMergePlan carries out. Exactness rules: condensation.md, "Why merging
// is exact, and when it is not".

import { OptionError } from '../errors.js';
import type { LayerCondensation } from '../analysis/measure-condensation.js';
import { inputWeightVectors } from '../analysis/input-weights.js';
import type { ChannelGroup } from '../analysis/channel-groups.js';
import type { HeadMergePlan } from './merge-heads.js';

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
  /** Approximate mode: neurons kept, with the consumers refit by least squares on probe statistics. */
  refit?: { kept: number[]; dropped: number[] };
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
export function planMerges(measured: LayerCondensation[], options: MergeOptions = {}, groups: ChannelGroup[] = []): MergePlan {
  const tolerance = options.exactTolerance ?? DEFAULT_EXACT_TOLERANCE;
  if (!(tolerance >= 0 && tolerance < 1)) throw new OptionError('exactTolerance', `expected a number in [0, 1), got "${tolerance}"`);
  const layers: LayerMergePlan[] = [];
  for (const m of measured) {
    if (!m.layer.mergeable) continue;
    const plan = options.approximate ? planApproximate(m, tolerance) : planExact(m, tolerance);
    if (plan.widthAfter < plan.width) layers.push(plan);
  }
  const groupPlans = groups.map((g) => planGroupMerges(g, options)).filter((g): g is GroupMergePlan => g !== undefined);
  return { layers, groups: groupPlans };
}

/**
 * Exact merges and statics. `withProbeStatics` also drops neurons that were constant on every
 * probe (a ReLU dead on the data): exact on the probes only, so approximate mode alone does it.
 */
function planExact(m: LayerCondensation, tolerance: number, withProbeStatics = false): LayerMergePlan {
  const { layer } = m;
  const width = layer.width;
  const { rows, dim } = inputWeightVectors(layer);
  const fanIn = layer.bias ? dim - 1 : dim;
  const statics = exactStatics(m, rows, dim, fanIn, withProbeStatics);
  const removed = new Set(statics.map((s) => s.neuron));
  const merges: NeuronMerge[] = [];
  // Larger vectors become representatives: dividing by a tiny |u_r| would amplify rounding.
  const order = [...Array(width).keys()].filter((k) => !removed.has(k)).sort((a, b) => m.inputWeightNorms[b]! - m.inputWeightNorms[a]! || a - b);
  const act = layer.activation;
  const screen = cosineScreen(tolerance);
  for (let oi = 0; oi < order.length; oi++) {
    const r = order[oi]!;
    if (removed.has(r)) continue;
    const nr = m.inputWeightNorms[r]!;
    if (nr === 0) continue;
    for (let oj = oi + 1; oj < order.length; oj++) {
      const j = order[oj]!;
      if (removed.has(j) || act.functionIds[j] !== act.functionIds[r]) continue;
      const c = m.weightCosine[j * width + r]!;
      if (Math.abs(c) < screen) continue;
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
      removed.add(j);
    }
  }
  merges.sort((a, b) => a.neuron - b.neuron);
  return { layer: layer.name, width, widthAfter: width - removed.size, merges, statics };
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

/** Merges of a channel group: neuron j folds into r only if u_j = t u_r with one t > 0 in every producer. */
export interface GroupMergePlan {
  group: string;
  members: string[];
  width: number;
  widthAfter: number;
  merges: NeuronMerge[];
}

/** Plans the exact merges of a mergeable channel group (positive multiples and copies only). */
export function planGroupMerges(group: ChannelGroup, options: MergeOptions = {}): GroupMergePlan | undefined {
  if (!group.mergeable || group.producers.length === 0) return undefined;
  const tolerance = options.exactTolerance ?? DEFAULT_EXACT_TOLERANCE;
  const vectors = group.producers.map((p) => inputWeightVectors(p));
  const width = group.width;
  const norms = vectors.map(({ rows, dim }) => Float64Array.from({ length: width }, (_, k) => Math.hypot(...rows.subarray(k * dim, (k + 1) * dim))));
  // Representatives: the largest first producer vectors, as in planExact.
  const order = [...Array(width).keys()].sort((a, b) => norms[0]![b]! - norms[0]![a]! || a - b);
  const removed = new Set<number>();
  const merges: NeuronMerge[] = [];
  const scaleIn = (p: number, j: number, r: number): number | undefined => {
    const { rows, dim } = vectors[p]!;
    const nr = norms[p]![r]!;
    const nj = norms[p]![j]!;
    if (nr === 0) return nj === 0 ? NaN : undefined;
    let dot = 0;
    for (let i = 0; i < dim; i++) dot += rows[j * dim + i]! * rows[r * dim + i]!;
    const t = dot / (nr * nr);
    let residual = 0;
    for (let i = 0; i < dim; i++) residual += (rows[j * dim + i]! - t * rows[r * dim + i]!) ** 2;
    return Math.sqrt(residual) <= tolerance * Math.max(nj, 1e-300) ? t : undefined;
  };
  for (let oi = 0; oi < order.length; oi++) {
    const r = order[oi]!;
    if (removed.has(r)) continue;
    for (let oj = oi + 1; oj < order.length; oj++) {
      const j = order[oj]!;
      if (removed.has(j)) continue;
      let t: number | undefined;
      let agree = true;
      for (let p = 0; p < group.producers.length && agree; p++) {
        const act = group.producers[p]!.activation;
        if (act.functionIds[j] !== act.functionIds[r]) agree = false;
        const tp = scaleIn(p, j, r);
        if (tp === undefined) agree = false;
        else if (!Number.isNaN(tp)) {
          if (t === undefined) t = tp;
          else if (Math.abs(tp - t) > tolerance * Math.max(1, Math.abs(t))) agree = false;
        }
      }
      if (!agree || t === undefined || !(t > 0)) continue;
      const kind = Math.abs(t - 1) <= tolerance ? 'copy' : 'multiple';
      merges.push({ neuron: j, into: r, scale: kind === 'copy' ? 1 : t, kind });
      removed.add(j);
    }
  }
  if (merges.length === 0) return undefined;
  merges.sort((a, b) => a.neuron - b.neuron);
  return { group: group.id, members: group.producers.map((p) => p.name), width, widthAfter: width - merges.length, merges };
}
