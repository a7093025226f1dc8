// Two audit reports compared layer by layer (matched by name): width, static neurons,
// effective width and redundancy before and after, and the layers added or removed.

import type { AuditReport, LayerReport } from './audit-report.js';
import { readAuditReport } from './read-audit-report.js';

export interface Delta {
  a: number | null;
  b: number | null;
  /** b - a; null when either side is missing. */
  delta: number | null;
}

export interface LayerDiff {
  name: string;
  status: 'added' | 'removed' | 'changed' | 'unchanged';
  /** Effective width and redundancy compare outputs when both reports measured them, else weights. */
  basis: 'outputs' | 'weights';
  width: Delta;
  static: Delta;
  effectiveWidth: Delta;
  redundancy: Delta;
  mergeable: { a: boolean | null; b: boolean | null };
}

export interface DiffResult {
  a: { file: string; model: string; params: number | null };
  b: { file: string; model: string; params: number | null };
  params: Delta;
  layers: LayerDiff[];
  added: string[];
  removed: string[];
  /**
   * Settings that differ between the two audits (threshold, static threshold, probe data): a
   * layer marked changed may then reflect the settings, not the model.
   */
  warnings: string[];
}

/** What differs in how the two audits were made, each as a sentence. */
export function settingsWarnings(a: AuditReport, b: AuditReport): string[] {
  const warnings: string[] = [];
  const say = (what: string, x: unknown, y: unknown): void => {
    if (x !== y) warnings.push(`the reports were made with different ${what} (${String(x)} vs ${String(y)}); changes may come from the settings, not the model`);
  };
  say('similarity thresholds', a.options?.similarityThreshold, b.options?.similarityThreshold);
  say('static thresholds', a.options?.staticThreshold, b.options?.staticThreshold);
  const probe = (r: AuditReport): string => (r.probe ? `${r.probe.samples} samples of ${r.probe.source}` : 'no probe data');
  say('probe data', probe(a), probe(b));
  return warnings;
}

function delta(a: number | null | undefined, b: number | null | undefined): Delta {
  const x = a ?? null;
  const y = b ?? null;
  return { a: x, b: y, delta: x !== null && y !== null ? y - x : null };
}

function layerDiff(name: string, a: LayerReport | undefined, b: LayerReport | undefined): LayerDiff {
  const useOutputs = a?.effectiveWidth.output != null && b?.effectiveWidth.output != null ||
    (!a && b?.effectiveWidth.output != null) || (!b && a?.effectiveWidth.output != null);
  const pick = (l: LayerReport | undefined, key: 'effectiveWidth' | 'redundancy'): number | null => (l ? (useOutputs ? l[key].output : l[key].weight) : null);
  const d: LayerDiff = {
    name,
    status: !a ? 'added' : !b ? 'removed' : 'unchanged',
    basis: useOutputs ? 'outputs' : 'weights',
    width: delta(a?.width, b?.width),
    static: delta(a?.static, b?.static),
    effectiveWidth: delta(pick(a, 'effectiveWidth'), pick(b, 'effectiveWidth')),
    redundancy: delta(pick(a, 'redundancy'), pick(b, 'redundancy')),
    mergeable: { a: a ? a.mergeable : null, b: b ? b.mergeable : null },
  };
  if (a && b) {
    const changed = [d.width, d.static, d.effectiveWidth].some((x) => x.delta !== 0) || Math.abs(d.redundancy.delta ?? 0) > 1e-12 || a.mergeable !== b.mergeable;
    if (changed) d.status = 'changed';
  }
  return d;
}

/** Compares two audit reports; `aFile` and `bFile` only label the result. */
export function diffAuditReports(a: AuditReport, b: AuditReport, aFile = 'a', bFile = 'b'): DiffResult {
  const inA = new Map(a.layers.map((l) => [l.name, l]));
  const inB = new Map(b.layers.map((l) => [l.name, l]));
  const layers = [
    ...a.layers.map((l) => layerDiff(l.name, l, inB.get(l.name))),
    ...b.layers.filter((l) => !inA.has(l.name)).map((l) => layerDiff(l.name, undefined, l)),
  ];
  return {
    a: { file: aFile, model: a.model.path, params: a.model.params ?? null },
    b: { file: bFile, model: b.model.path, params: b.model.params ?? null },
    params: delta(a.model.params, b.model.params),
    layers,
    added: layers.filter((l) => l.status === 'added').map((l) => l.name),
    removed: layers.filter((l) => l.status === 'removed').map((l) => l.name),
    warnings: settingsWarnings(a, b),
  };
}

/** Reads two audit report files (`condense audit --json`, or check reports) and compares them. */
export function diffAuditFiles(aFile: string, bFile: string): DiffResult {
  return diffAuditReports(readAuditReport(aFile), readAuditReport(bFile), aFile, bFile);
}
