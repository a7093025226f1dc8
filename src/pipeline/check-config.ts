// The `condense check` config file: rules with thresholds, per-layer overrides, optional probe and
// analysis settings and a baseline report. Validation collects every problem (unknown keys
// included) and throws one ConfigError naming the file and each key.

import * as path from 'node:path';
import { ConfigError, joinProblems } from '../errors.js';
import { readJsonFile } from '../files/json-file.js';
import type { AnalysisOptions } from '../analysis/measure-condensation.js';
import type { ProbeOptions } from '../runtime/probe-data.js';

/** Per-layer thresholds; null switches a rule off (for one layer, under `layers`). */
export interface LayerRules {
  /** Largest allowed redundancy, 1 - effective width / width, in [0, 1]. */
  maxRedundancy?: number | null;
  /** Smallest allowed effective width (clusters among non-static neurons). */
  minEffectiveWidth?: number | null;
  /** Largest allowed share of static neurons, in [0, 1]. */
  maxStaticShare?: number | null;
  /** Largest allowed increase of redundancy over the baseline report, in [0, 1]. */
  maxRedundancyGrowth?: number | null;
}

/** "Prunes to at most maxParameterShare of the parameters with max relative error at most maxRelativeError." */
export interface PruneRule {
  maxParameterShare: number;
  maxRelativeError: number;
  /** Allow least-squares merges (`condense prune --approximate`); default false. */
  approximate: boolean;
  /** The exact-merge tolerance (`condense prune --exact-tolerance`); default DEFAULT_EXACT_TOLERANCE. */
  exactTolerance?: number;
  /**
   * Search the largest reduction within maxRelativeError (`condense prune --max-error`) instead of
   * one all-or-nothing plan; default false.
   */
  budget?: boolean;
}

export interface CheckConfig {
  /** Applied to every layer except read-out layers (no activation, no consumer). */
  rules: LayerRules & { prune?: PruneRule };
  /** Overrides by layer name; a read-out layer named here is checked too. */
  layers: Record<string, LayerRules>;
  probe?: ProbeOptions;
  analysis?: AnalysisOptions;
  /** A previous `condense audit --json` report, resolved against the config file's folder. */
  baseline?: string;
}

export const LAYER_RULE_NAMES = ['maxRedundancy', 'minEffectiveWidth', 'maxStaticShare', 'maxRedundancyGrowth'] as const;
export type LayerRuleName = (typeof LAYER_RULE_NAMES)[number];

type Check = (v: unknown) => boolean;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isShare: Check = (v) => typeof v === 'number' && v >= 0 && v <= 1;
const isCount: Check = (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isPositiveInt: Check = (v) => typeof v === 'number' && Number.isInteger(v) && v >= 1;

const LAYER_RULES: Record<LayerRuleName, [Check, string]> = {
  maxRedundancy: [isShare, 'a number in [0, 1]'],
  minEffectiveWidth: [isCount, 'a whole number >= 0'],
  maxStaticShare: [isShare, 'a number in [0, 1]'],
  maxRedundancyGrowth: [isShare, 'a number in [0, 1]'],
};

const show = (v: unknown): string => JSON.stringify(v) ?? String(v);

/** Reports keys of `obj` outside `known`, one problem each, naming the full key path. */
function unknownKeys(obj: Record<string, unknown>, known: readonly string[], at: string, problems: string[]): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) problems.push(`unknown key "${at}${key}" (expected one of ${known.join(', ')})`);
  }
}

function parseLayerRules(obj: Record<string, unknown>, at: string, allowNull: boolean, problems: string[]): LayerRules {
  const rules: LayerRules = {};
  for (const name of LAYER_RULE_NAMES) {
    if (!(name in obj)) continue;
    const value = obj[name];
    const [check, expected] = LAYER_RULES[name];
    if (value === null && allowNull) rules[name] = null;
    else if (check(value)) rules[name] = value as number;
    else problems.push(`"${at}${name}": expected ${expected}${allowNull ? ' or null' : ''}, got ${show(value)}`);
  }
  return rules;
}

function parsePrune(value: unknown, problems: string[]): PruneRule | undefined {
  if (!isObject(value)) {
    problems.push(`"rules.prune": expected an object like { "maxParameterShare": 0.6, "maxRelativeError": 1e-4 }, got ${show(value)}`);
    return undefined;
  }
  unknownKeys(value, ['maxParameterShare', 'maxRelativeError', 'approximate', 'exactTolerance', 'budget'], 'rules.prune.', problems);
  const share = value.maxParameterShare;
  const error = value.maxRelativeError ?? 1e-4;
  const approximate = value.approximate ?? false;
  let ok = true;
  if (!(typeof share === 'number' && share > 0 && share <= 1)) {
    problems.push(`"rules.prune.maxParameterShare": expected a number in (0, 1], got ${show(share)}`);
    ok = false;
  }
  if (!(typeof error === 'number' && error >= 0 && Number.isFinite(error))) {
    problems.push(`"rules.prune.maxRelativeError": expected a non-negative number, got ${show(error)}`);
    ok = false;
  }
  const tolerance = value.exactTolerance;
  if (tolerance !== undefined && !(typeof tolerance === 'number' && tolerance >= 0 && tolerance < 1)) {
    problems.push(`"rules.prune.exactTolerance": expected a number in [0, 1), got ${show(tolerance)}`);
    ok = false;
  }
  if (typeof approximate !== 'boolean') {
    problems.push(`"rules.prune.approximate": expected true or false, got ${show(approximate)}`);
    ok = false;
  }
  const budget = value.budget ?? false;
  if (typeof budget !== 'boolean') {
    problems.push(`"rules.prune.budget": expected true or false, got ${show(budget)}`);
    ok = false;
  }
  if (budget === true && approximate === true) {
    problems.push('"rules.prune.budget" and "rules.prune.approximate": expected one of them (a budget search already refits what it removes)');
    ok = false;
  }
  return ok ? { maxParameterShare: share as number, maxRelativeError: error as number, approximate: approximate as boolean, ...(tolerance !== undefined ? { exactTolerance: tolerance as number } : {}), ...(budget ? { budget: true } : {}) } : undefined;
}

function parseProbe(value: unknown, problems: string[]): ProbeOptions | undefined {
  if (!isObject(value)) {
    problems.push(`"probe": expected an object like { "random": 256 } or { "files": ["x=data.npy"] }, got ${show(value)}`);
    return undefined;
  }
  unknownKeys(value, ['files', 'random', 'seed', 'shapes', 'batchSize'], 'probe.', problems);
  const probe: ProbeOptions = {};
  if (value.files !== undefined) {
    if (Array.isArray(value.files) && value.files.every((f) => typeof f === 'string')) probe.files = value.files as string[];
    else problems.push(`"probe.files": expected an array of strings, got ${show(value.files)}`);
  }
  for (const [key, check, expected] of [['random', isPositiveInt, 'a positive whole number'], ['seed', (v: unknown) => typeof v === 'number' && Number.isInteger(v), 'a whole number'], ['batchSize', isPositiveInt, 'a positive whole number']] as const) {
    if (value[key] === undefined) continue;
    if (check(value[key])) probe[key] = value[key] as number;
    else problems.push(`"probe.${key}": expected ${expected}, got ${show(value[key])}`);
  }
  if (value.shapes !== undefined) {
    const shapes = value.shapes;
    if (isObject(shapes) && Object.values(shapes).every((d) => Array.isArray(d) && d.every(isPositiveInt))) probe.shapes = shapes as Record<string, number[]>;
    else problems.push(`"probe.shapes": expected an object of input name to dimensions, like { "x": [1, 3, 32, 32] }, got ${show(shapes)}`);
  }
  return probe;
}

function parseAnalysis(value: unknown, problems: string[]): AnalysisOptions | undefined {
  if (!isObject(value)) {
    problems.push(`"analysis": expected an object like { "similarityThreshold": 0.95 }, got ${show(value)}`);
    return undefined;
  }
  unknownKeys(value, ['similarityThreshold', 'staticThreshold'], 'analysis.', problems);
  const analysis: AnalysisOptions = {};
  const s = value.similarityThreshold;
  if (s !== undefined) {
    if (typeof s === 'number' && s > 0 && s <= 1) analysis.similarityThreshold = s;
    else problems.push(`"analysis.similarityThreshold": expected a number in (0, 1], got ${show(s)}`);
  }
  const t = value.staticThreshold;
  if (t !== undefined) {
    if (typeof t === 'number' && t >= 0 && t < 1) analysis.staticThreshold = t;
    else problems.push(`"analysis.staticThreshold": expected a number in [0, 1), got ${show(t)}`);
  }
  return analysis;
}

/** Validates a parsed config; `file` names it in errors and anchors a relative baseline path. */
export function parseCheckConfig(json: unknown, file: string): CheckConfig {
  const problems: string[] = [];
  if (!isObject(json)) throw new ConfigError(file, `expected a JSON object like { "rules": { "maxRedundancy": 0.5 } }, got ${show(json)}`);
  unknownKeys(json, ['$schema', 'rules', 'layers', 'probe', 'analysis', 'baseline'], '', problems);
  const config: CheckConfig = { rules: {}, layers: {} };
  if (json.rules !== undefined) {
    if (!isObject(json.rules)) problems.push(`"rules": expected an object, got ${show(json.rules)}`);
    else {
      unknownKeys(json.rules, [...LAYER_RULE_NAMES, 'prune'], 'rules.', problems);
      config.rules = parseLayerRules(json.rules, 'rules.', false, problems);
      if (json.rules.prune !== undefined) {
        const prune = parsePrune(json.rules.prune, problems);
        if (prune) config.rules.prune = prune;
      }
    }
  }
  if (json.layers !== undefined) {
    if (!isObject(json.layers)) problems.push(`"layers": expected an object of layer name to rules, got ${show(json.layers)}`);
    else {
      for (const [name, rules] of Object.entries(json.layers)) {
        if (!isObject(rules)) {
          problems.push(`"layers.${name}": expected an object of rules, got ${show(rules)}`);
          continue;
        }
        unknownKeys(rules, LAYER_RULE_NAMES, `layers.${name}.`, problems);
        config.layers[name] = parseLayerRules(rules, `layers.${name}.`, true, problems);
      }
    }
  }
  if (json.probe !== undefined) {
    const probe = parseProbe(json.probe, problems);
    if (probe) config.probe = probe;
  }
  if (json.analysis !== undefined) {
    const analysis = parseAnalysis(json.analysis, problems);
    if (analysis) config.analysis = analysis;
  }
  if (json.baseline !== undefined) {
    if (typeof json.baseline === 'string' && json.baseline !== '') config.baseline = path.resolve(path.dirname(file), json.baseline);
    else problems.push(`"baseline": expected the path of a previous audit report, got ${show(json.baseline)}`);
  }
  if (problems.length) throw new ConfigError(file, joinProblems(problems));
  return config;
}

/** Reads and validates a config file. */
export function loadCheckConfig(file: string): CheckConfig {
  return parseCheckConfig(readJsonFile(file), file);
}
