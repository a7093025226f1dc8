// The simple reference a budgeted prune must beat (issue 11): exact merges; then static neurons
// dropped with their mean folded into the consumer's bias; then clusters at cosine 0.99 merged
// with a least-squares refit. Each stage is verified on the same held-out probes the search saw;
// at a budget E the reference's answer is the smallest stage whose verified error is at most E.

import { findLayers } from '../../src/analysis/find-layers.js';
import { cloneModel } from '../../src/ir/clone-model.js';
import { measureModel } from '../../src/pipeline/measure-model.js';
import { measureOptionsForPrune } from '../../src/pipeline/prune.js';
import { applyMergePlan } from '../../src/rewrite/apply-merge-plan.js';
import { cleanUp } from '../../src/rewrite/clean-up.js';
import { planLayerExact, planMerges, type LayerMergePlan, type MergePlan } from '../../src/rewrite/plan-merges.js';
import { compareModels } from '../../src/runtime/verify-rewrite.js';
import type { ProbeOptions } from '../../src/runtime/probe-data.js';

export interface ReferenceStage {
  name: 'exact' | 'statics' | 'clusters 0.99';
  params: number;
  maxRelError: number;
}

/** The three reference stages of `file` on the probes a budgeted prune of it would use. */
export async function referenceStages(file: string, probe: ProbeOptions): Promise<{ before: number; stages: ReferenceStage[] }> {
  const measurement = await measureModel(file, measureOptionsForPrune({ probe, budget: {}, analysis: { similarityThreshold: 0.99 } }));
  const { original, model, measured, statistics, groups, probes } = measurement;
  const holdout = probes!.holdout!;
  const exact = planMerges(measured, {}, groups);
  const statics: MergePlan = { layers: [], groups: exact.groups };
  for (const m of measured) {
    if (!m.layer.mergeable || !m.statistics) continue;
    const lp = planLayerExact(m, undefined, true);
    const gone = new Set([...lp.merges.map((x) => x.neuron), ...lp.statics.map((s) => s.neuron)]);
    const extra: LayerMergePlan['statics'] = m.staticNeurons.filter((k) => !gone.has(k)).map((k) => ({ neuron: k, value: m.statistics!.mean[k]!, kind: 'low-amplitude' }));
    const plan = { ...lp, statics: [...lp.statics, ...extra], widthAfter: lp.widthAfter - extra.length };
    if (plan.widthAfter < plan.width && plan.widthAfter > 0) statics.layers.push(plan);
  }
  const clusters = planMerges(measured, { approximate: true }, groups);
  const stages: ReferenceStage[] = [];
  for (const [name, plan] of [['exact', exact], ['statics', statics], ['clusters 0.99', clusters]] as const) {
    const copy = cloneModel(model);
    applyMergePlan(copy, findLayers(copy), plan, statistics);
    cleanUp(copy);
    const fidelity = await compareModels(original, copy, file, holdout);
    stages.push({ name, params: copy.parameterCount(), maxRelError: fidelity.maxRelError });
  }
  return { before: original.parameterCount(), stages };
}

/** The reference's size at budget E: its smallest stage within E (the original when none is). */
export function referenceParams(reference: { before: number; stages: ReferenceStage[] }, budget: number): number {
  return Math.min(reference.before, ...reference.stages.filter((s) => s.maxRelError <= budget).map((s) => s.params));
}
