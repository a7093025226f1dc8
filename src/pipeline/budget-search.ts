// The budget search behind `prune --max-error / --target-params / --target-flops / --min-top1 /
// --sweep`: from removal candidates (rewrite/rank-removals.ts: a layer or a group, each with an
// order and a predicted cost per step) to the largest reduction whose *verified* held-out error
// meets the budget. Plan -> check -> apply: each try is a MergePlan applied to a copy and run
// against the original on held-out probes that the statistics were never fitted on.
//
// 1. Exact merges always (count 0 of every candidate).
// 2. Sensitivity: each candidate alone is verified at a few levels; the ratio of verified to
//    predicted relative error calibrates how much that layer's residual reaches the output.
// 3. One global order: every step of every candidate, by calibrated predicted error added per
//    parameter (or FLOP) saved, kept monotone within each candidate.
// 4. Bisection on the prefix of that order, on the verified error.

import { VerificationError } from '../errors.js';
import { findLayers } from '../analysis/find-layers.js';
import type { Model } from '../ir/model.js';
import { rewrittenCopy } from '../rewrite/apply-merge-plan.js';
import { planMerges, type GroupMergePlan, type MergeOptions, type MergePlan } from '../rewrite/plan-merges.js';
import { rankGroupRemovals, rankLayerRemovals, rankStreamRemovals, type RemovalCandidate } from '../rewrite/rank-removals.js';
import { compareModels, referenceOutputs, type Fidelity, type ReferenceOutputs } from '../runtime/verify-rewrite.js';
import { sliceProbes, type ProbeSet } from '../runtime/probe-data.js';
import type { SessionOptions } from '../runtime/model-session.js';
import { exactHeadPlans, neuronCount, type Measurement } from './measure-model.js';

export interface BudgetOptions {
  /** Largest relative output error max|y' - y| / max|y| on the held-out probes. */
  maxError?: number;
  /** Smallest share of held-out samples whose top-1 class agrees with the original's. */
  minTop1?: number;
  /** Label of every probe sample (fit and held out, in file order; or a .npy of them); the held-out ones are read. */
  labels?: ArrayLike<number> | string;
  /** With labels: largest accepted drop of accuracy (0.01 = one point). */
  maxAccuracyDrop?: number;
  /** Keep at most this fraction of the parameters (0.5: half). */
  targetParams?: number;
  /** Keep at most this fraction of the layers' multiply-add FLOPs. */
  targetFlops?: number;
  /** Relative-error budgets of the trade-off curve (`--sweep`). */
  sweep?: number[];
}

/** Above this many candidates, sensitivity is measured at one level and only the most-cut are verified alone. */
const MANY_CANDIDATES = 8;

/** At most this many candidates are verified alone to calibrate their sensitivity; the rest take the typical one. */
const CALIBRATED_CANDIDATES = 24;

/** Held-out samples a calibration run compares on (the chosen plan is verified on every held-out sample). */
const CALIBRATION_SAMPLES = 64;

/** The budgets `--sweep` walks when given none. */
export const DEFAULT_SWEEP = [1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1];

/** Held-out samples a budgeted prune asks for when the probes allow (verification decides, so it needs enough). */
export const BUDGET_HOLDOUT_SAMPLES = 256;

export interface CandidateSummary {
  name: string;
  kind: string;
  width: number;
  widthAfter: number;
  /** Removals beyond the exact ones in the chosen plan. */
  removed: number;
  /** Verified-over-predicted error ratio measured on this candidate alone (1 when unmeasured). */
  sensitivity: number;
  /** False when not verified alone (beyond the CALIBRATED_CANDIDATES largest): sensitivity is the calibrated ones' typical value. */
  calibrated: boolean;
  /** This candidate's share of the chosen plan, verified alone. */
  errorAlone: number | null;
  /** The per-layer verifications the sensitivity came from. */
  probes: { removed: number; predicted: number; verified: number }[];
}

export interface SweepPoint {
  budget: number;
  paramsRemoved: number;
  flopsRemoved: number;
  maxRelError: number;
  top1Agreement: number | null;
  neuronsAfter: number;
  widths: Record<string, number>;
}

export interface BudgetSearchResult {
  plan: MergePlan;
  model: Model;
  fidelity: Fidelity;
  params: { before: number; after: number };
  flops: { before: number; after: number };
  candidates: CandidateSummary[];
  /** Verification runs the search made (each: the rewritten model on every held-out sample). */
  verifications: number;
  /** Neurons removed that were constant on the fit probes only (not provably constant). */
  constantOnProbes: number;
  /** Set for a sweep. */
  curve?: SweepPoint[];
  /** When no removal beyond the exact merges meets the budget: what the cheapest one costs, and where. */
  cheapest?: { name: string; maxRelError: number; top1Agreement: number | null };
  /** What bound the written model: 'budget', 'target-params', 'target-flops', 'exact only'. */
  decidedBy: string;
}

interface Evaluation {
  counts: number[];
  plan: MergePlan;
  params: number;
  flops: number;
  fidelity: Fidelity;
}

/** Runs the budget search on a measurement with held-out probes (measureOptionsForPrune). */
export async function searchBudget(measurement: Measurement, budget: BudgetOptions, options: { merge?: MergeOptions; session?: SessionOptions; batchSize?: number; onProgress?: (stage: string) => void } = {}): Promise<BudgetSearchResult> {
  const { original, model, measured, statistics, groups, probes, path: input } = measurement;
  const holdout = probes?.holdout;
  if (!holdout) throw new Error('searchBudget needs a measurement with held-out probes (measureOptionsForPrune)');
  // Samples the statistics were fitted on: the probes, or the statistics files' (--stats).
  const fitCount = measurement.statisticsFiles?.samples ?? probes!.fit.count;
  // Output positions per sample of each layer (1 for dense ones), from how many rows its
  // statistics took per fit sample: FLOPs scale with them.
  const positionsOf = new Map<string, number>();
  for (const m of measured) {
    const stride = statistics.positionStrides?.get(m.layer.name) ?? 1;
    positionsOf.set(m.layer.name, m.statistics && fitCount > 0 ? Math.max(1, (m.statistics.count * stride) / fitCount) : 1);
  }
  const candidates: RemovalCandidate[] = [];
  for (const m of measured) {
    const c = rankLayerRemovals(m, {
      ...(options.merge?.exactTolerance !== undefined ? { exactTolerance: options.merge.exactTolerance } : {}),
      positionsPerSample: positionsOf.get(m.layer.name)!,
      positionsOf: (node) => positionsOf.get(node) ?? 1,
    });
    if (c) candidates.push(c);
  }
  // A mergeable group with statistics of every tensor its consumers read is a candidate (its
  // channels go together, consumers refit); one without merges exactly in every plan.
  const groupPlans: GroupMergePlan[] = [];
  for (const g of groups) {
    const context = {
      statistics,
      ...(options.merge?.exactTolerance !== undefined ? { exactTolerance: options.merge.exactTolerance } : {}),
      positionsOf: (name: string) => positionsOf.get(name) ?? 1,
      similarityThreshold: measurement.analysis.similarityThreshold,
    };
    // A residual stream merges approximately only: under a budget it is a candidate like the rest.
    const c = g.approximateOnly ? rankStreamRemovals(g, context) : rankGroupRemovals(g, context);
    if (c) candidates.push(c);
    else groupPlans.push(...planMerges([], options.merge, [g]).groups);
  }
  // Duplicate heads merge exactly too, in every plan the search tries.
  const headPlans = exactHeadPlans(measurement, options.merge?.exactTolerance);
  /** Multiply-add FLOPs per sample of a model's layers: 2 x weight elements x output positions. */
  const layerFlops = (m: Model): number => findLayers(m).reduce((s, l) => s + 2 * l.weight.dims.reduce((p, d) => p * d, 1) * (positionsOf.get(l.name) ?? 1), 0);
  const flopsBefore = layerFlops(model);
  const paramsBefore = original.parameterCount();
  const sessionOpts = { ...(options.session ? { session: options.session } : {}), ...(options.batchSize ? { batchSize: options.batchSize } : {}), ...(budget.labels && typeof budget.labels !== 'string' ? { labels: heldOutLabels(budget.labels, probes!.fit.count, holdout.count) } : {}) };

  let verifications = 0;
  const planOf = (counts: number[]): MergePlan => {
    const plan: MergePlan = { layers: [], groups: [...groupPlans], ...(headPlans.length ? { heads: headPlans } : {}) };
    candidates.forEach((c, i) => {
      const part = c.planFor(counts[i]!);
      plan.layers.push(...part.layers);
      plan.groups.push(...part.groups);
    });
    return plan;
  };
  const rewrite = (plan: MergePlan): Model => rewrittenCopy(model, plan, statistics);
  /**
   * Verification of plans on one probe set: the original runs on it once, each distinct plan once.
   * The rewritten copies are not kept (a deep model's search tries dozens); the chosen one is
   * rewritten again at the end.
   */
  const verifierOn = (set: ProbeSet, session: typeof sessionOpts): ((counts: number[]) => Promise<Evaluation>) => {
    let reference: Promise<ReferenceOutputs> | undefined;
    const cache = new Map<string, Promise<Evaluation>>();
    return (counts) => {
      const key = counts.join(',');
      let hit = cache.get(key);
      if (!hit) {
        hit = (async () => {
          const plan = planOf(counts);
          const rewritten = rewrite(plan);
          verifications++;
          reference ??= referenceOutputs(original, input, set, session);
          const fidelity = await compareModels(await reference, rewritten, input, set, session);
          return { counts, plan, params: rewritten.parameterCount(), flops: layerFlops(rewritten), fidelity };
        })();
        cache.set(key, hit);
      }
      return hit;
    };
  };
  const evaluate = verifierOn(holdout, sessionOpts);
  // Calibration only estimates how far each candidate's prediction is off: a slice of the held-out
  // set does (a deep model's calibration runs dominate the search), the plan itself is verified on
  // all of it. Labels (accuracy) belong to the whole set, so calibration goes without them.
  const unit = holdout.fixedBatch ?? 1;
  const calibrationCount = Math.max(unit, Math.floor(Math.min(holdout.count, CALIBRATION_SAMPLES) / unit) * unit);
  const calibrate = calibrationCount < holdout.count ? verifierOn(sliceProbes(holdout, 0, calibrationCount), { ...(options.session ? { session: options.session } : {}), ...(options.batchSize ? { batchSize: options.batchSize } : {}) }) : evaluate;
  const zero = candidates.map(() => 0);
  const passes = (f: Fidelity, maxError: number | undefined): boolean =>
    (maxError === undefined || f.maxRelError <= maxError) &&
    (budget.minTop1 === undefined || (f.top1Agreement ?? 1) >= budget.minTop1) &&
    (budget.maxAccuracyDrop === undefined || !f.accuracy || f.accuracy.original - f.accuracy.rewritten <= budget.maxAccuracyDrop + 1e-12);

  // 2. Sensitivity of each candidate alone, at the levels the budget makes relevant.
  options.onProgress?.('measuring layer sensitivity');
  const reference = budget.maxError ?? 1e-2;
  const predictedError = (c: RemovalCandidate, r: number): number => (c.outputEnergy > 0 ? Math.sqrt(c.predictedEnergy[r]! / c.outputEnergy) : 0);
  const sensitivity: number[] = [];
  const probesOf: CandidateSummary['probes'][] = [];
  // A deep model's candidates are calibrated where most is at stake (the most parameters or FLOPs
  // their steps can save); the rest take the geometric mean of those sensitivities, so the
  // verification runs stay bounded (a DenseNet-121 has 120 candidates).
  const savings = (c: RemovalCandidate): number => c.steps * (budget.targetFlops !== undefined && budget.targetParams === undefined ? c.flopsPerStep : c.paramsPerStep);
  const calibrated = new Set([...candidates.keys()].sort((a, b) => savings(candidates[b]!) - savings(candidates[a]!) || a - b).slice(0, CALIBRATED_CANDIDATES));
  for (const [i, c] of candidates.entries()) {
    if (!calibrated.has(i)) {
      sensitivity.push(NaN);
      probesOf.push([]);
      continue;
    }
    // Three levels per layer in small models; in deep ones one, near the budget (each level is a
    // verification run of the whole model).
    const levels = new Set<number>();
    const many = candidates.length > MANY_CANDIDATES;
    if (c.steps > 0) {
      for (const factor of many ? [1] : [0.5, 4]) {
        const r = firstAtLeast(c, (r) => predictedError(c, r) >= factor * reference);
        if (r !== undefined) levels.add(r);
      }
      if (!many || levels.size === 0) levels.add(Math.max(1, Math.round(c.steps / 2)));
    }
    const ratios: number[] = [];
    const measuredHere: CandidateSummary['probes'] = [];
    for (const r of [...levels].sort((a, b) => a - b)) {
      const counts = zero.slice();
      counts[i] = r;
      const f = (await calibrate(counts)).fidelity;
      const predicted = predictedError(c, r);
      measuredHere.push({ removed: r, predicted, verified: f.maxRelError });
      if (predicted > 0 && f.maxRelError > 0 && Number.isFinite(f.maxRelError)) ratios.push(f.maxRelError / predicted);
    }
    sensitivity.push(ratios.length ? Math.exp(ratios.reduce((s, x) => s + Math.log(x), 0) / ratios.length) : 1);
    probesOf.push(measuredHere);
  }
  const measuredSensitivities = sensitivity.filter((x) => Number.isFinite(x));
  const typical = measuredSensitivities.length ? Math.exp(measuredSensitivities.reduce((s, x) => s + Math.log(x), 0) / measuredSensitivities.length) : 1;
  sensitivity.forEach((x, i) => {
    if (!Number.isFinite(x)) sensitivity[i] = typical;
  });

  // 3. One order over every step of every candidate.
  const byFlops = budget.targetFlops !== undefined && budget.targetParams === undefined;
  const sequence: { candidate: number; cost: number }[] = [];
  candidates.forEach((c, i) => {
    const unit = Math.max(1e-300, byFlops ? c.flopsPerStep : c.paramsPerStep);
    let running = 0;
    for (let r = 1; r <= c.steps; r++) {
      const added = c.outputEnergy > 0 ? (sensitivity[i]! ** 2 * (c.predictedEnergy[r]! - c.predictedEnergy[r - 1]!)) / c.outputEnergy : 0;
      running = Math.max(running, added / unit);
      sequence.push({ candidate: i, cost: running });
    }
  });
  sequence.sort((a, b) => a.cost - b.cost || a.candidate - b.candidate);
  const countsAt = (p: number): number[] => {
    const counts = zero.slice();
    for (let s = 0; s < p; s++) counts[sequence[s]!.candidate]!++;
    return counts;
  };
  // The calibrated prediction along the order: error^2 ~ sum over candidates of s_c^2 E_c / T_c.
  const predictedAlong = new Float64Array(sequence.length + 1);
  {
    const counts = zero.slice();
    let sum = 0;
    sequence.forEach((step, at) => {
      const c = candidates[step.candidate]!;
      const r = ++counts[step.candidate]!;
      if (c.outputEnergy > 0) sum += (sensitivity[step.candidate]! ** 2 * (c.predictedEnergy[r]! - c.predictedEnergy[r - 1]!)) / c.outputEnergy;
      predictedAlong[at + 1] = Math.sqrt(Math.max(0, sum));
    });
  }
  /** The last prefix whose calibrated prediction is within `maxError`: where the search starts. */
  const guessFor = (maxError: number | undefined): number | undefined => {
    if (maxError === undefined || budget.minTop1 !== undefined || budget.maxAccuracyDrop !== undefined) return undefined;
    let p = 0;
    while (p < sequence.length && predictedAlong[p + 1]! <= maxError) p++;
    return p;
  };
  const passesAt = async (p: number, maxError: number | undefined): Promise<boolean> => passes((await evaluate(countsAt(p))).fidelity, maxError);
  /**
   * The largest prefix that passes, given that `lo` does: from the prediction, galloping up while
   * it passes (few verifications when it is close), then bisection between the last pass and the
   * first failure.
   */
  const largestPassing = async (lo: number, maxError: number | undefined): Promise<number> => {
    const end = sequence.length;
    let hi: number | undefined;
    const guess = guessFor(maxError);
    if (guess !== undefined && guess > lo && guess < end) {
      // A pass gallops up from the guess; a failure bisects below it.
      if (await passesAt(guess, maxError)) lo = guess;
      else hi = guess;
    }
    if (hi === undefined) {
      for (let step = 1; ; step *= 2) {
        const q = Math.min(end, lo + step);
        if (q === lo) return lo;
        if (await passesAt(q, maxError)) {
          lo = q;
          if (q === end) return end;
        } else {
          hi = q;
          break;
        }
      }
    }
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (await passesAt(mid, maxError)) lo = mid;
      else hi = mid;
    }
    return lo;
  };

  options.onProgress?.('searching the budget');
  // Nothing to remove at all: no run of an unchanged copy.
  const hasTarget = budget.targetParams !== undefined || budget.targetFlops !== undefined;
  if (!hasTarget && sequence.length === 0 && planOf(zero).layers.every((lp) => lp.widthAfter === lp.width) && planOf(zero).groups.length === 0 && headPlans.length === 0) {
    return {
      plan: { layers: [], groups: [] },
      model,
      fidelity: { maxAbsError: 0, maxRelError: 0, top1Agreement: null, samples: 0, worstOutput: '', nonFinite: null },
      params: { before: paramsBefore, after: paramsBefore },
      flops: { before: flopsBefore, after: flopsBefore },
      candidates: candidates.map((c) => ({ name: c.name, kind: c.kind, width: c.width, widthAfter: c.width, removed: 0, sensitivity: 1, calibrated: false, errorAlone: null, probes: [] })),
      verifications,
      constantOnProbes: 0,
      ...(budget.sweep ? { curve: budget.sweep.map((b) => ({ budget: b, paramsRemoved: 0, flopsRemoved: 0, maxRelError: 0, top1Agreement: null, neuronsAfter: neuronCount(measurement), widths: Object.fromEntries(candidates.map((c) => [c.name, c.width])) })) } : {}),
      decidedBy: 'nothing to remove',
    };
  }
  const exactOnly = await evaluate(zero);
  let chosen: Evaluation;
  let decidedBy: string;
  let curve: SweepPoint[] | undefined;
  let cheapest: BudgetSearchResult['cheapest'];
  if (budget.sweep) {
    curve = [];
    let lo = 0;
    for (const b of [...budget.sweep].sort((x, y) => x - y)) {
      lo = passes(exactOnly.fidelity, b) ? await largestPassing(lo, b) : lo;
      const e = await evaluate(countsAt(lo));
      curve.push({
        budget: b,
        paramsRemoved: paramsBefore - e.params,
        flopsRemoved: flopsBefore - e.flops,
        maxRelError: e.fidelity.maxRelError,
        top1Agreement: e.fidelity.top1Agreement,
        neuronsAfter: neuronCount(measurement) - candidates.reduce((s, c, i) => s + c.exactRemoved + e.counts[i]!, 0),
        widths: Object.fromEntries(candidates.map((c, i) => [c.name, c.width - c.exactRemoved - e.counts[i]!])),
      });
    }
    chosen = await evaluate(countsAt(lo));
    decidedBy = 'sweep';
  } else if (budget.targetParams !== undefined || budget.targetFlops !== undefined) {
    const sizeCache = new Map<string, { params: number; flops: number }>();
    const sizeOf = (counts: number[]): { params: number; flops: number } => {
      const key = counts.join(',');
      if (!sizeCache.has(key)) {
        const m = rewrite(planOf(counts));
        sizeCache.set(key, { params: m.parameterCount(), flops: layerFlops(m) });
      }
      return sizeCache.get(key)!;
    };
    const meets = (p: number): boolean => {
      const size = sizeOf(countsAt(p));
      return (budget.targetParams === undefined || size.params <= budget.targetParams * paramsBefore) && (budget.targetFlops === undefined || size.flops <= budget.targetFlops * flopsBefore);
    };
    if (!meets(sequence.length)) {
      const all = await evaluate(countsAt(sequence.length));
      throw new VerificationError(input, `cannot reach the target: removing every candidate leaves ${all.params} of ${paramsBefore} parameters (${pct(all.params / paramsBefore)}) and ${pct(all.flops / flopsBefore)} of the FLOPs, at a verified error of ${all.fidelity.maxRelError.toExponential(2)}; nothing was written`, []);
    }
    let lo = -1;
    let hi = sequence.length;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (meets(Math.max(0, mid))) hi = mid;
      else lo = mid;
    }
    chosen = await evaluate(countsAt(Math.max(0, hi)));
    decidedBy = budget.targetParams !== undefined ? 'target-params' : 'target-flops';
    if (!passes(chosen.fidelity, budget.maxError)) {
      const dominant = await dominantCandidates(candidates, chosen, evaluate, zero);
      throw new VerificationError(input, `the target is reached at a verified error of ${chosen.fidelity.maxRelError.toExponential(2)}${chosen.fidelity.top1Agreement === null ? '' : ` (top-1 agreement ${pct(chosen.fidelity.top1Agreement)})`} on ${chosen.fidelity.samples} held-out samples, beyond the budget (${describeBudget(budget)}); dominated by ${dominant.text}; nothing was written`, dominant.names);
    }
  } else {
    if (!passes(exactOnly.fidelity, budget.maxError)) {
      throw new VerificationError(input, `even the exact merges give a verified error of ${exactOnly.fidelity.maxRelError.toExponential(2)}, beyond the budget (${describeBudget(budget)}); nothing was written`, exactOnly.plan.layers.map((l) => l.layer));
    }
    const p = await largestPassing(0, budget.maxError);
    chosen = await evaluate(countsAt(p));
    decidedBy = 'budget';
    // Where the global order left slack in a layer (its calibration is an estimate), take more of
    // that layer alone while the whole still passes: a few runs per layer in small models.
    if (candidates.length > 1 && candidates.length <= MANY_CANDIDATES) {
      const order = [...candidates.keys()].sort((a, b) => candidates[b]!.paramsPerStep - candidates[a]!.paramsPerStep);
      for (const i of order) {
        const c = candidates[i]!;
        let lo = chosen.counts[i]!;
        let hi = c.steps + 1;
        const tryCount = async (r: number): Promise<Evaluation | undefined> => {
          const counts = chosen.counts.slice();
          counts[i] = r;
          const e = await evaluate(counts);
          return passes(e.fidelity, budget.maxError) ? e : undefined;
        };
        let best: Evaluation | undefined;
        for (let step = 1; lo + step <= c.steps; step *= 2) {
          const e = await tryCount(lo + step);
          if (!e) {
            hi = lo + step;
            break;
          }
          best = e;
          lo += step;
        }
        // One bisection step at most: the slack is usually a few neurons.
        if (best && hi <= c.steps && hi - lo > 1) {
          const e = await tryCount(Math.floor((lo + hi) / 2));
          if (e) best = e;
        }
        if (best) chosen = best;
      }
    }
    if (p === 0 && sequence.length > 0) {
      const first = await evaluate(countsAt(1));
      cheapest = { name: candidates[sequence[0]!.candidate]!.name, maxRelError: first.fidelity.maxRelError, top1Agreement: first.fidelity.top1Agreement };
    }
  }

  // Each candidate's share of the chosen plan, verified alone (names what dominates the error).
  // In deep models, only the candidates cut most are verified alone (a run each).
  const cutMost = new Set([...candidates.keys()].sort((a, b) => chosen.counts[b]! * candidates[b]!.paramsPerStep - chosen.counts[a]! * candidates[a]!.paramsPerStep).slice(0, MANY_CANDIDATES));
  const errorAlone: (number | null)[] = [];
  for (const [i] of candidates.entries()) {
    if (chosen.counts[i] === 0 || !cutMost.has(i)) {
      errorAlone.push(null);
      continue;
    }
    const counts = zero.slice();
    counts[i] = chosen.counts[i]!;
    errorAlone.push((await evaluate(counts)).fidelity.maxRelError);
  }
  const constantOnProbes = chosen.plan.layers.reduce((s, lp) => s + lp.statics.filter((x) => x.kind === 'constant-on-probes').length, 0);
  return {
    plan: { layers: chosen.plan.layers.filter((lp) => lp.widthAfter < lp.width), groups: chosen.plan.groups },
    model: rewrite(chosen.plan),
    fidelity: chosen.fidelity,
    params: { before: paramsBefore, after: chosen.params },
    flops: { before: flopsBefore, after: chosen.flops },
    candidates: candidates.map((c, i) => ({
      name: c.name,
      kind: c.kind,
      width: c.width,
      widthAfter: c.width - c.exactRemoved - chosen.counts[i]!,
      removed: chosen.counts[i]!,
      sensitivity: sensitivity[i]!,
      calibrated: calibrated.has(i),
      errorAlone: errorAlone[i]!,
      probes: probesOf[i]!,
    })),
    verifications,
    constantOnProbes,
    ...(curve ? { curve } : {}),
    ...(cheapest ? { cheapest } : {}),
    decidedBy,
  };
}

/** The smallest r in 1..steps with test(r), or undefined. */
function firstAtLeast(c: RemovalCandidate, test: (r: number) => boolean): number | undefined {
  for (let r = 1; r <= c.steps; r++) if (test(r)) return r;
  return undefined;
}

/** The held-out samples are the last `holdout` of the probe files: their labels are the last ones. */
function heldOutLabels(labels: ArrayLike<number>, fit: number, holdout: number): number[] {
  const all = Array.from(labels, Number);
  return all.slice(fit, fit + holdout);
}

async function dominantCandidates(candidates: RemovalCandidate[], chosen: Evaluation, evaluate: (counts: number[]) => Promise<Evaluation>, zero: number[]): Promise<{ text: string; names: string[] }> {
  const alone: { name: string; error: number }[] = [];
  for (const [i, c] of candidates.entries()) {
    if (!chosen.counts[i]) continue;
    const counts = zero.slice();
    counts[i] = chosen.counts[i]!;
    alone.push({ name: c.name, error: (await evaluate(counts)).fidelity.maxRelError });
  }
  alone.sort((a, b) => b.error - a.error);
  const top = alone.slice(0, 3);
  return { text: top.length ? top.map((a) => `${a.name} (${a.error.toExponential(2)} alone)`).join(', ') : 'the exact merges', names: top.map((a) => a.name) };
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

export function describeBudget(b: BudgetOptions): string {
  const parts: string[] = [];
  if (b.maxError !== undefined) parts.push(`max error ${b.maxError}`);
  if (b.minTop1 !== undefined) parts.push(`top-1 agreement >= ${b.minTop1}`);
  if (b.maxAccuracyDrop !== undefined) parts.push(`accuracy drop <= ${b.maxAccuracyDrop}`);
  return parts.join(', ') || 'none';
}
