// prune: audit, plan merges, apply them to a copy, verify the copy against the original on
// held-out probes, and only then write it (atomically, never over the input).

import { findChannelGroups } from '../analysis/channel-groups.js';
import { checkFiniteWeights } from '../analysis/finite-weights.js';
import { findLayers } from '../analysis/find-layers.js';
import { measureCondensation, resolveAnalysisOptions, type AnalysisOptions, type LayerCondensation } from '../analysis/measure-condensation.js';
import { OptionError, VerificationError } from '../errors.js';
import type { Model } from '../ir/model.js';
import { checkOutputPath, loadModel, modelFiles, saveModel } from '../onnx/model-file.js';
import { applyMergePlan } from '../rewrite/apply-merge-plan.js';
import { planMerges, type MergeOptions, type MergePlan } from '../rewrite/plan-merges.js';
import { cleanUp } from '../rewrite/clean-up.js';
import { foldBatchNorms } from '../rewrite/fold-batch-norms.js';
import type { CollectProgress } from '../runtime/collect-statistics.js';
import type { SessionOptions } from '../runtime/model-session.js';
import type { ProbeOptions } from '../runtime/probe-data.js';
import { cloneModel } from './clone-model.js';
import { collectLayerStatistics } from './collect-layer-statistics.js';
import { prepareProbes, wantsProbes } from './prepare-probes.js';
import { compareModels, type Fidelity, type VerifyOptions } from './verify-rewrite.js';

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
  maxError: number;
}

/** Default probe draw for prune when the caller gives none: verification always needs data. */
export const DEFAULT_PRUNE_PROBES = 256;

export async function prune(input: string, options: PruneOptions): Promise<PruneResult> {
  const maxError = options.verify?.maxError ?? 1e-4;
  if (!(maxError >= 0) || !Number.isFinite(maxError)) throw new OptionError('--max-error', `expected a non-negative number, got "${maxError}"`);
  if (!options.dryRun) checkOutputPath(options.output, [input]);
  const original = loadModel(input);
  if (!options.dryRun) checkOutputPath(options.output, modelFiles(original, input));
  const analysis = resolveAnalysisOptions(options.analysis);
  // Analysis and rewriting work on a BatchNorm-folded copy; verification compares with the original.
  const model = cloneModel(original);
  foldBatchNorms(model);
  const layers = findLayers(model);
  checkFiniteWeights(layers, input);
  const probeOptions: ProbeOptions = wantsProbes(options.probe) ? options.probe! : { ...options.probe, random: DEFAULT_PRUNE_PROBES };
  const probes = prepareProbes(model, probeOptions, { ...(options.verify?.holdoutSamples ? { samples: options.verify.holdoutSamples } : {}) });
  options.onProgress?.('collecting statistics');
  const sessionOpts = { ...(options.session ? { session: options.session } : {}), ...(probeOptions.batchSize ? { batchSize: probeOptions.batchSize } : {}) };
  const statistics = await collectLayerStatistics(model, input, layers, probes.fit, {
    ...sessionOpts,
    ...(options.onProgress ? { onProgress: (p: CollectProgress) => options.onProgress!('collecting statistics', p) } : {}),
  });
  const measured = layers.map((l) => measureCondensation(l, statistics.get(l.name), analysis));
  const groups = findChannelGroups(layers);
  const plan = planMerges(measured, options.merge, groups);

  const rewrite = (subset: MergePlan): Model => {
    const copy = cloneModel(model);
    applyMergePlan(copy, findLayers(copy), subset, statistics);
    cleanUp(copy);
    return copy;
  };
  options.onProgress?.('verifying');
  const rewritten = rewrite(plan);
  // Models, not bytes: one past protobuf's 2 GB limit is staged through a file with external data.
  const fidelity = await compareModels(original, rewritten, input, probes.holdout!, sessionOpts);
  if (!(fidelity.maxRelError <= maxError)) {
    // Find which layers' merges alone break the bound, so the report can name them.
    const atFault: string[] = [];
    const parts: [string, MergePlan][] = [
      ...plan.layers.map((lp): [string, MergePlan] => [lp.layer, { layers: [lp], groups: [] }]),
      ...plan.groups.map((gp): [string, MergePlan] => [`${gp.group} (${gp.members.join(', ')})`, { layers: [], groups: [gp] }]),
    ];
    for (const [name, part] of parts) {
      const alone = await compareModels(original, rewrite(part), input, probes.holdout!, sessionOpts);
      if (!(alone.maxRelError <= maxError)) atFault.push(`${name} (${alone.maxRelError.toExponential(2)})`);
    }
    const blame = atFault.length ? `; layers at fault: ${atFault.join(', ')}` : '; no single layer exceeds it alone (errors add up across layers)';
    const nf = fidelity.nonFinite;
    if (nf) {
      throw new VerificationError(input, `output "${nf.output}" of held-out sample ${nf.sample} (element ${nf.element}) is ${nf.original} in the original and ${nf.rewritten} in the pruned model; non-finite outputs must be the same infinity in both; nothing was written${blame}`, atFault.map((a) => a.split(' (')[0]!));
    }
    throw new VerificationError(input, `pruned model differs from the original by a relative error of ${fidelity.maxRelError.toExponential(2)} on output "${fidelity.worstOutput}" (${fidelity.samples} held-out samples), above --max-error ${maxError}${blame}; nothing was written`, atFault.map((a) => a.split(' (')[0]!));
  }
  if (!options.dryRun) saveModel(rewritten, options.output);
  const widthBefore = measured.reduce((s, m) => s + m.width, 0);
  const removed = plan.layers.reduce((s, lp) => s + lp.width - lp.widthAfter, 0) + plan.groups.reduce((s, gp) => s + (gp.width - gp.widthAfter) * gp.members.length, 0);
  return {
    input,
    output: options.dryRun ? null : options.output,
    params: { before: original.parameterCount(), after: rewritten.parameterCount() },
    neurons: { before: widthBefore, after: widthBefore - removed },
    fidelity,
    plan,
    layers: measured,
    probeSource: probes.source,
    maxError,
  };
}
