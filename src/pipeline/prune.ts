// prune: audit, plan merges, apply them to a copy, verify the copy against the original on
// held-out probes, and only then write it (atomically, never over the input).

import { findLayers, type NeuronLayer } from '../analysis/find-layers.js';
import type { AnalysisOptions, LayerCondensation } from '../analysis/measure-condensation.js';
import { OptionError, ProbeDataError, VerificationError } from '../errors.js';
import { openNpyFile } from '../runtime/npy-file.js';
import type { Model } from '../ir/model.js';
import { checkOutputPath, modelFiles, saveModel } from '../onnx/model-file.js';
import { applyMergePlan } from '../rewrite/apply-merge-plan.js';
import { planMerges, type MergeOptions, type MergePlan } from '../rewrite/plan-merges.js';
import { headMergeNeurons } from '../rewrite/merge-heads.js';
import { requantizeWeights } from '../rewrite/dequantize-weights.js';
import { cleanUp } from '../rewrite/clean-up.js';
import type { CollectProgress } from '../runtime/collect-statistics.js';
import type { SessionOptions } from '../runtime/model-session.js';
import type { ProbeOptions } from '../runtime/probe-data.js';
import { cloneModel } from '../ir/clone-model.js';
import { exactHeadPlans, measureModel, neuronCount, type MeasureOptions, type Measurement } from './measure-model.js';
import { compareModels, type Fidelity, type VerifyOptions } from '../runtime/verify-rewrite.js';
import { BUDGET_HOLDOUT_SAMPLES, searchBudget, type BudgetOptions, type BudgetSearchResult } from './budget-search.js';

export interface PruneOptions {
  /** Where to write the pruned model; must differ from the input. */
  output: string;
  probe?: ProbeOptions;
  analysis?: AnalysisOptions;
  merge?: MergeOptions;
  verify?: VerifyOptions;
  session?: SessionOptions;
  onProgress?: (stage: string, p?: CollectProgress) => void;
  /** Plan and verify but write nothing. */
  dryRun?: boolean;
  /** Statistics files (`condense collect`) to merge instead of fitting on probes; probes then only verify. */
  statistics?: string[];
  /** Collect in this many worker threads, each over a range of the fit probes. */
  workers?: number;
  /**
   * Search for the largest reduction within a budget (budget-search.ts) instead of planning one
   * set of merges: exact merges, then ranked removals with least-squares refits, verified.
   */
  budget?: BudgetOptions;
}

export interface PruneResult {
  input: string;
  output: string | null;
  params: { before: number; after: number };
  neurons: { before: number; after: number };
  fidelity: Fidelity;
  plan: MergePlan;
  layers: LayerCondensation[];
  probeSource: string;
  /** Where the held-out verification samples come from (their own seed, or the last file samples). */
  holdoutSource: string;
  /** How inputs other than plain samples were fed (pinned, zero state, token ids). */
  probeNotes: string[];
  maxError: number;
  /**
   * True when the plan removed nothing: then nothing was verified or written (output is null and
   * fidelity is the identity's: zero error on zero samples), whatever dryRun said.
   */
  nothingToMerge: boolean;
  /** The budget search behind a budgeted prune (the model itself left out). */
  search?: Omit<BudgetSearchResult, 'model' | 'plan' | 'fidelity'> & { budget: BudgetOptions };
}

/** Default probe draw for prune when the caller gives none: verification always needs data. */
export const DEFAULT_PRUNE_PROBES = 256;

/**
 * A budgeted prune's default random draw: twice the widest mergeable layer, so each refit has more
 * fit samples than neurons (else every neuron looks predictable on the fit probes alone), between
 * DEFAULT_PRUNE_PROBES and 2048.
 */
function budgetRandomProbes(layers: NeuronLayer[]): number {
  const widest = layers.reduce((w, l) => (l.mergeable ? Math.max(w, l.width) : w), 0);
  return Math.min(2048, Math.max(DEFAULT_PRUNE_PROBES, 2 * widest));
}

/** Default largest relative output error a pruned model may show on the held-out probes. */
export const DEFAULT_MAX_ERROR = 1e-4;

/** Measures `input`, plans merges, verifies the rewrite on held-out probes, and writes it (unless a dry run). */
export async function prune(input: string, options: PruneOptions): Promise<PruneResult> {
  const maxError = checkMaxError(options.verify?.maxError);
  // A sweep reports a curve and writes no model.
  if (!options.dryRun && !options.budget?.sweep) checkOutputPath(options.output, [input], 'output');
  // Exact merges are planned from weights alone: no statistics session, and probes only verify.
  const exactOnly = !options.merge?.approximate && !options.budget;
  const measurement = await measureModel(input, {
    ...measureOptionsForPrune(options),
    ...(exactOnly ? { collect: false } : {}),
    ...(options.onProgress ? { onProgress: (p: CollectProgress) => options.onProgress!('collecting statistics', p) } : {}),
  });
  return pruneMeasured(measurement, { ...options, verify: { ...options.verify, maxError } });
}

/** The measurement options prune needs: probes (a default draw when none are given) and a held-out set. */
export function measureOptionsForPrune(options: Pick<PruneOptions, 'probe' | 'analysis' | 'session' | 'verify' | 'statistics' | 'workers' | 'budget'>): MeasureOptions {
  return {
    ...(options.statistics?.length ? { statistics: options.statistics } : {}),
    ...(options.workers ? { workers: options.workers } : {}),
    ...(options.probe ? { probe: options.probe } : {}),
    ...(options.analysis ? { analysis: options.analysis } : {}),
    ...(options.session ? { session: options.session } : {}),
    holdout: { ...(options.verify?.holdoutSamples ? { samples: options.verify.holdoutSamples } : {}), ...(options.budget ? { atLeast: BUDGET_HOLDOUT_SAMPLES } : {}) },
    defaultRandomProbes: options.budget ? budgetRandomProbes : DEFAULT_PRUNE_PROBES,
  };
}

function checkMaxError(value: number | undefined): number {
  const maxError = value ?? DEFAULT_MAX_ERROR;
  if (!(maxError >= 0) || !Number.isFinite(maxError)) throw new OptionError('maxError', `expected a non-negative number, got "${maxError}"`);
  return maxError;
}

/**
 * Plans, applies, verifies and (unless a dry run) writes, from a measurement made with
 * measureOptionsForPrune: no loading, folding or collecting again.
 */
export async function pruneMeasured(measurement: Measurement, options: PruneOptions): Promise<PruneResult> {
  const maxError = checkMaxError(options.verify?.maxError);
  const { original, model, layers, groups, statistics, measured, path: input } = measurement;
  const probes = measurement.probes;
  if (!probes?.holdout) throw new Error('pruneMeasured needs a measurement with held-out probes (measureOptionsForPrune)');
  const holdout = probes.holdout;
  if (options.budget) return pruneWithinBudget(measurement, options, options.budget);
  const plan = planMerges(measured, options.merge, groups, { statistics, similarityThreshold: measurement.analysis.similarityThreshold });
  const heads = exactHeadPlans(measurement, options.merge?.exactTolerance);
  if (heads.length) plan.heads = heads;
  if (plan.layers.length === 0 && plan.groups.length === 0 && heads.length === 0) return nothingToMerge(measurement, plan, maxError);
  const sessionOpts = { ...(options.session ? { session: options.session } : {}), ...(options.probe?.batchSize ? { batchSize: options.probe.batchSize } : {}) };

  // The measured model stays as measured (check reports it); each rewrite works on a copy, and the
  // plan, which names layers and groups, is applied to the copy's own layers.
  const rewrite = (subset: MergePlan): Model => {
    const copy = cloneModel(model);
    applyMergePlan(copy, findLayers(copy), subset, statistics);
    cleanUp(copy);
    // QDQ weights were measured dequantized; none was rewritten, so each goes back to its int8 form.
    requantizeWeights(copy);
    return copy;
  };
  options.onProgress?.('verifying');
  const rewritten = rewrite(plan);
  // Models, not bytes: one past protobuf's 2 GB limit is staged through a file with external data.
  const fidelity = await compareModels(original, rewritten, input, holdout, sessionOpts);
  if (!(fidelity.maxRelError <= maxError)) {
    // Find which layers' merges alone break the bound, so the report can name them.
    const atFault: string[] = [];
    const parts: [string, MergePlan][] = [
      ...plan.layers.map((lp): [string, MergePlan] => [lp.layer, { layers: [lp], groups: [] }]),
      ...plan.groups.map((gp): [string, MergePlan] => [`${gp.group} (${gp.stream ? 'residual stream: ' : ''}${gp.members.join(', ')})`, { layers: [], groups: [gp] }]),
      ...heads.map((hp): [string, MergePlan] => [`heads of ${hp.block}`, { layers: [], groups: [], heads: [hp] }]),
    ];
    for (const [name, part] of parts) {
      const alone = await compareModels(original, rewrite(part), input, holdout, sessionOpts);
      if (!(alone.maxRelError <= maxError)) atFault.push(`${name} (${alone.maxRelError.toExponential(2)})`);
    }
    const blame = atFault.length ? `; layers at fault: ${atFault.join(', ')}` : '; no single layer exceeds it alone (errors add up across layers)';
    const nf = fidelity.nonFinite;
    if (nf) {
      throw new VerificationError(input, `output "${nf.output}" of held-out sample ${nf.sample} (element ${nf.element}) is ${nf.original} in the original and ${nf.rewritten} in the pruned model; non-finite outputs must be the same infinity in both; nothing was written${blame}`, atFault.map((a) => a.split(' (')[0]!));
    }
    throw new VerificationError(input, `pruned model differs from the original by a relative error of ${fidelity.maxRelError.toExponential(2)} on output "${fidelity.worstOutput}" (${fidelity.samples} held-out samples), above maxError ${maxError}${blame}; nothing was written`, atFault.map((a) => a.split(' (')[0]!));
  }
  if (!options.dryRun) {
    // Checked again against every file the input uses (its external data too), right before writing.
    checkOutputPath(options.output, modelFiles(original, input), 'output');
    saveModel(rewritten, options.output);
  }
  const widthBefore = neuronCount(measurement);
  const removed = plan.layers.reduce((s, lp) => s + lp.width - lp.widthAfter, 0) + plan.groups.reduce((s, gp) => s + gp.neuronsRemoved, 0) + headMergeNeurons(heads);
  void layers;
  return {
    input,
    output: options.dryRun ? null : options.output,
    params: { before: original.parameterCount(), after: rewritten.parameterCount() },
    neurons: { before: widthBefore, after: widthBefore - removed },
    fidelity,
    plan,
    layers: measured,
    probeSource: probes.source,
    holdoutSource: probes.holdoutSource ?? probes.source,
    probeNotes: probes.notes,
    maxError,
    nothingToMerge: false,
  };
}

/** The budgeted prune: the search picks and verifies the plan; this writes it (unless a dry run or a sweep). */
async function pruneWithinBudget(measurement: Measurement, options: PruneOptions, budget: BudgetOptions): Promise<PruneResult> {
  const { original, measured, probes, path: input } = measurement;
  if (typeof budget.labels === 'string') budget = { ...budget, labels: readLabels(budget.labels, options.probe, probes!.fit.count + probes!.holdout!.count) };
  const search = await searchBudget(measurement, budget, {
    ...(options.merge ? { merge: options.merge } : {}),
    ...(options.session ? { session: options.session } : {}),
    ...(options.probe?.batchSize ? { batchSize: options.probe.batchSize } : {}),
    ...(options.onProgress ? { onProgress: (stage: string) => options.onProgress!(stage) } : {}),
  });
  const { model: rewritten, plan, fidelity, ...summary } = search;
  const maxError = budget.maxError ?? Infinity;
  const searchSummary = { ...summary, budget };
  if (plan.layers.length === 0 && plan.groups.length === 0 && !plan.heads?.length) return { ...nothingToMerge(measurement, plan, maxError), search: searchSummary };
  const writes = !options.dryRun && !budget.sweep;
  if (writes) {
    checkOutputPath(options.output, modelFiles(original, input), 'output');
    saveModel(rewritten, options.output);
  }
  const widthBefore = neuronCount(measurement);
  const removed = plan.layers.reduce((s, lp) => s + lp.width - lp.widthAfter, 0) + plan.groups.reduce((s, gp) => s + gp.neuronsRemoved, 0) + headMergeNeurons(plan.heads ?? []);
  return {
    input,
    output: writes ? options.output : null,
    params: search.params,
    neurons: { before: widthBefore, after: widthBefore - removed },
    fidelity,
    plan,
    layers: measured,
    probeSource: probes!.source,
    holdoutSource: probes!.holdoutSource ?? probes!.source,
    probeNotes: probes!.notes,
    maxError,
    nothingToMerge: false,
    search: searchSummary,
  };
}

/** Class labels of every probe sample, from a 1-D integer .npy in probe-file order. */
function readLabels(file: string, probe: ProbeOptions | undefined, count: number): number[] {
  if (!probe?.files?.length && !probe?.images) throw new OptionError('labels', 'labels name the classes of probe samples: give the samples with --probe (or --images), not random probes');
  const rows = openNpyFile(file);
  if (rows.shape.length !== 1 || !['int64', 'int32', 'uint8'].includes(rows.dtype)) throw new ProbeDataError(file, `expected a 1-D integer array of class labels, got ${rows.dtype} of shape [${rows.shape.join(', ')}]`);
  if (rows.rowCount !== count) throw new ProbeDataError(file, `has ${rows.rowCount} labels, expected one per probe sample (${count})`);
  return Array.from(rows.readRows(0, count).data as ArrayLike<number | bigint>, Number);
}

/** The result when the plan removes nothing: the model would be an identical copy, so none is verified or written. */
function nothingToMerge(measurement: Measurement, plan: MergePlan, maxError: number): PruneResult {
  const { original, measured, probes, path: input } = measurement;
  const params = original.parameterCount();
  const width = neuronCount(measurement);
  return {
    input,
    output: null,
    params: { before: params, after: params },
    neurons: { before: width, after: width },
    fidelity: { maxAbsError: 0, maxRelError: 0, top1Agreement: null, samples: 0, worstOutput: '', nonFinite: null },
    plan,
    layers: measured,
    probeSource: probes?.source ?? 'none',
    holdoutSource: probes?.holdoutSource ?? probes?.source ?? 'none',
    probeNotes: probes?.notes ?? [],
    maxError,
    nothingToMerge: true,
  };
}
