// check: a CI gate. Measures the model once, evaluates each configured rule per layer (and the
// model-wide prune rule through a dry-run prune of the same measurement), compares with a baseline report, and returns one outcome
// per rule and layer. It never decides the exit code; the CLI does (1 when a rule failed).

import { ConfigError, VerificationError } from '../errors.js';
import { redundancy, type AnalysisOptions, type LayerCondensation } from '../analysis/measure-condensation.js';
import type { SessionOptions } from '../runtime/model-session.js';
import type { ProbeOptions } from '../runtime/probe-data.js';
import { auditResult, type AuditResult } from './audit.js';
import { measureModel } from './measure-model.js';
import { LAYER_RULE_NAMES, type CheckConfig, type LayerRuleName, type LayerRules } from './check-config.js';
import { measureOptionsForPrune, pruneMeasured } from './prune.js';
import { isReadoutLayer } from '../analysis/readout-layer.js';

export type RuleName = LayerRuleName | 'prune';

export interface RuleOutcome {
  rule: RuleName;
  /** null for a model-wide rule (prune). */
  layer: string | null;
  status: 'pass' | 'fail' | 'skip';
  limit: number | null;
  actual: number | null;
  /** One line: what was measured against what limit, or why the rule was skipped. */
  message: string;
}

/** A layer's measures as an audit report stores them (docs/json-schema.md, audit `layers[]`). */
export interface LayerMeasures {
  name: string;
  width: number;
  static: number;
  effectiveWidth: { weight: number; output: number | null };
  redundancy: { weight: number; output: number | null };
}

/** A previous audit to compare with: where it came from and its layers (report/read-audit-report reads one). */
export interface Baseline {
  path: string;
  layers: LayerMeasures[];
}

export interface CheckOptions {
  config?: CheckConfig;
  /** Where the config came from, for reports. */
  configPath?: string;
  /** The audit to compare with. The config's `baseline` is only a path: the caller reads it. */
  baseline?: Baseline;
  /** Override the config's probe settings key by key, and its analysis settings. */
  probe?: ProbeOptions;
  analysis?: AnalysisOptions;
  session?: SessionOptions;
  /**
   * Statistics files (`condense collect`; patterns like shard-*.stats) to merge instead of running
   * probes, checked as audit and prune check them. The config's probe settings then only draw the
   * prune rule's held-out set; probes given here as well are refused, as audit refuses them.
   */
  statistics?: string[];
}

export interface CheckResult {
  audit: AuditResult;
  outcomes: RuleOutcome[];
  configPath: string | null;
  baselinePath: string | null;
  passed: boolean;
  notes: string[];
}

/** The measures of one audited layer, as the audit report states them. */
export function layerMeasures(m: LayerCondensation): LayerMeasures {
  const output = m.outputClusters ? m.outputClusters.count : null;
  return {
    name: m.layer.name,
    width: m.width,
    static: m.staticNeurons.length,
    effectiveWidth: { weight: m.weightClusters.count, output },
    redundancy: { weight: redundancy(m.weightClusters.count, m.width), output: output === null ? null : redundancy(output, m.width) },
  };
}

/** The measures the rules use: output-based when the audit ran probe data, weight-based otherwise. */
export function ruleMeasures(l: LayerMeasures): { redundancy: number; effectiveWidth: number; basis: 'outputs' | 'weights' } {
  return l.redundancy.output !== null && l.effectiveWidth.output !== null
    ? { redundancy: l.redundancy.output, effectiveWidth: l.effectiveWidth.output, basis: 'outputs' }
    : { redundancy: l.redundancy.weight, effectiveWidth: l.effectiveWidth.weight, basis: 'weights' };
}

const pct = (x: number): string => `${(100 * x).toFixed(1).replace(/\.0$/, '')}%`;

function evaluateLayerRule(rule: LayerRuleName, limit: number, l: LayerMeasures, baseline: LayerMeasures | undefined, hasBaseline: boolean): RuleOutcome {
  const m = ruleMeasures(l);
  const base = { rule, layer: l.name, limit };
  switch (rule) {
    case 'maxRedundancy': {
      const ok = m.redundancy <= limit + 1e-12;
      return { ...base, status: ok ? 'pass' : 'fail', actual: m.redundancy, message: `redundancy ${pct(m.redundancy)} (${m.effectiveWidth} effective of ${l.width} neurons, ${m.basis}) is ${ok ? 'within' : 'above'} the limit ${pct(limit)}` };
    }
    case 'minEffectiveWidth': {
      const ok = m.effectiveWidth >= limit;
      return { ...base, status: ok ? 'pass' : 'fail', actual: m.effectiveWidth, message: `effective width ${m.effectiveWidth} of ${l.width} (${m.basis}) is ${ok ? 'at least' : 'below'} the minimum ${limit}` };
    }
    case 'maxStaticShare': {
      const share = l.width ? l.static / l.width : 0;
      const ok = share <= limit + 1e-12;
      return { ...base, status: ok ? 'pass' : 'fail', actual: share, message: `${l.static} of ${l.width} neurons are static (${pct(share)}), ${ok ? 'within' : 'above'} the limit ${pct(limit)}` };
    }
    case 'maxRedundancyGrowth': {
      if (!hasBaseline) return { ...base, status: 'skip', actual: null, message: 'no baseline report to compare with' };
      if (!baseline) return { ...base, status: 'skip', actual: null, message: 'layer is not in the baseline report (new layer)' };
      // Compare like with like: outputs only when both reports measured them.
      const useOutputs = l.redundancy.output !== null && baseline.redundancy.output !== null;
      const now = useOutputs ? l.redundancy.output! : l.redundancy.weight;
      const before = useOutputs ? baseline.redundancy.output! : baseline.redundancy.weight;
      const growth = now - before;
      const ok = growth <= limit + 1e-12;
      return { ...base, status: ok ? 'pass' : 'fail', actual: growth, message: `redundancy ${pct(before)} -> ${pct(now)} (${useOutputs ? 'outputs' : 'weights'}), growth ${pct(growth)} is ${ok ? 'within' : 'above'} the limit ${pct(limit)}` };
    }
  }
}

/** Runs the configured rules on a model. Problems with the config against this model throw ConfigError. */
export async function check(model: string, options: CheckOptions = {}): Promise<CheckResult> {
  const config: CheckConfig = options.config ?? { rules: {}, layers: {} };
  const configName = options.configPath ?? 'config';
  const merged = { ...config.probe, ...options.probe };
  const probe = Object.keys(merged).length ? merged : undefined;
  const analysis = { ...config.analysis, ...options.analysis };
  const baseline = options.baseline;
  if (config.rules.maxRedundancyGrowth !== undefined && !baseline) {
    throw new ConfigError(configName, '"rules.maxRedundancyGrowth" needs a baseline report: expected --baseline audit.json or "baseline" in the config');
  }

  // One measurement serves the layer rules and the prune rule: the model is loaded once and the
  // probes run once. With a prune rule the measurement holds probes out for verification (and draws
  // prune's default random probes when none are given, so the layer rules then use output measures).
  const pruneRule = config.rules.prune;
  const statistics = options.statistics?.length ? options.statistics : undefined;
  // With statistics files the layer rules need no probes: only the prune rule's held-out set does,
  // and only probes the caller gave (not the config's) collide with the files.
  const measureProbe = statistics && !pruneRule ? options.probe : probe;
  const measureOptions = {
    ...(measureProbe && Object.keys(measureProbe).length ? { probe: measureProbe } : {}),
    ...(statistics ? { statistics } : {}),
    analysis,
    ...(options.session ? { session: options.session } : {}),
  };
  // A budgeted rule's search needs its larger held-out set (and default probes) from the start.
  const ruleBudget = pruneRule?.budget ? { maxError: pruneRule.maxRelativeError } : undefined;
  const measurement = await measureModel(model, pruneRule ? measureOptionsForPrune({ ...measureOptions, ...(ruleBudget ? { budget: ruleBudget } : {}) }) : measureOptions);
  const result = auditResult(measurement);
  const measures = result.layers.map(layerMeasures);
  const names = new Set(measures.map((l) => l.name));
  const unknown = Object.keys(config.layers).filter((n) => !names.has(n));
  if (unknown.length) {
    throw new ConfigError(configName, joinNames(unknown, [...names]));
  }

  const notes: string[] = [];
  const defaults: LayerRules = { ...config.rules };
  delete (defaults as { prune?: unknown }).prune;
  // A baseline without an explicit limit means "redundancy must not grow".
  if (baseline && defaults.maxRedundancyGrowth === undefined) {
    defaults.maxRedundancyGrowth = 0;
    notes.push('baseline given without rules.maxRedundancyGrowth: any growth of a layer\'s redundancy fails');
  }
  const baselineLayers = new Map((baseline?.layers ?? []).map((l) => [l.name, l]));
  const outcomes: RuleOutcome[] = [];
  measures.forEach((l, i) => {
    const named = config.layers[l.name];
    const rules: LayerRules = { ...defaults, ...named };
    const isReadout = isReadoutLayer(result.layers[i]!.layer) && !named;
    for (const rule of LAYER_RULE_NAMES) {
      const limit = rules[rule];
      if (limit === undefined || limit === null) continue;
      if (isReadout) {
        outcomes.push({ rule, layer: l.name, status: 'skip', limit, actual: null, message: 'read-out layer (linear, no consumer): name it under "layers" to check it' });
        continue;
      }
      outcomes.push(evaluateLayerRule(rule, limit, l, baselineLayers.get(l.name), baseline !== undefined));
    }
  });
  if (baseline) {
    const removed = baseline.layers.filter((l) => !names.has(l.name)).map((l) => l.name);
    if (removed.length) notes.push(`layers in the baseline but not in the model: ${removed.join(', ')}`);
  }

  if (pruneRule) {
    const base = { rule: 'prune' as const, layer: null, limit: pruneRule.maxParameterShare };
    try {
      const pruned = await pruneMeasured(measurement, {
        output: '',
        dryRun: true,
        ...(probe ? { probe } : {}),
        merge: { approximate: pruneRule.approximate, ...(pruneRule.exactTolerance !== undefined ? { exactTolerance: pruneRule.exactTolerance } : {}) },
        verify: { maxError: pruneRule.maxRelativeError },
        ...(ruleBudget ? { budget: ruleBudget } : {}),
        ...(options.session ? { session: options.session } : {}),
      });
      const share = pruned.params.before ? pruned.params.after / pruned.params.before : 1;
      const ok = share <= pruneRule.maxParameterShare + 1e-12;
      outcomes.push({
        ...base,
        status: ok ? 'pass' : 'fail',
        actual: share,
        message: `prunes to ${pct(share)} of the parameters (${pruned.params.before} -> ${pruned.params.after}), ${ok ? 'within' : 'above'} the limit ${pct(pruneRule.maxParameterShare)}; max relative error ${pruned.fidelity.maxRelError.toExponential(2)} (limit ${pruneRule.maxRelativeError})`,
      });
    } catch (error) {
      if (!(error instanceof VerificationError)) throw error;
      outcomes.push({ ...base, status: 'fail', actual: null, message: `the pruned model exceeds the relative error ${pruneRule.maxRelativeError}: ${error.message}` });
    }
  }
  if (outcomes.length === 0) notes.push('no rules configured: give --config condense.config.json (see docs/ci-guide.md)');
  if (statistics && !pruneRule && config.probe && Object.keys(config.probe).length) notes.push("the config's probe settings were not run: the statistics files hold the probes' moments");
  return {
    audit: result,
    outcomes,
    configPath: options.configPath ?? null,
    baselinePath: baseline?.path ?? null,
    passed: outcomes.every((o) => o.status !== 'fail'),
    notes,
  };
}

function joinNames(unknown: string[], known: string[]): string {
  const list = unknown.map((n) => `"layers.${n}"`).join(', ');
  return `${list} ${unknown.length === 1 ? 'names a layer' : 'name layers'} the model does not have (its layers: ${known.join(', ') || 'none'})`;
}
