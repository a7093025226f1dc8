// The check result as data (JSON, schema in docs/json-schema.md) and as a terminal table.

import type { CheckResult, RuleOutcome } from '../pipeline/check.js';
import { auditReport, REPORT_SCHEMA_VERSION, type AuditReport } from './audit-report.js';
import { renderTable, wrapParagraph, type TableOptions } from './text-table.js';
import { terminalText } from './escape-text.js';

export interface CheckReport {
  schemaVersion: number;
  kind: 'check';
  model: { path: string; params: number };
  config: string | null;
  baseline: string | null;
  passed: boolean;
  summary: { passed: number; failed: number; skipped: number };
  results: RuleOutcome[];
  notes: string[];
  /** The audit the rules were evaluated on (usable as a later baseline). */
  audit: AuditReport;
}

export function checkReport(result: CheckResult): CheckReport {
  const count = (status: RuleOutcome['status']): number => result.outcomes.filter((o) => o.status === status).length;
  const audit = auditReport(result.audit);
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    kind: 'check',
    model: audit.model,
    config: result.configPath,
    baseline: result.baselinePath,
    passed: result.passed,
    summary: { passed: count('pass'), failed: count('fail'), skipped: count('skip') },
    results: result.outcomes,
    notes: result.notes,
    audit,
  };
}

/** A number as the rule states it: shares as percentages, widths as whole numbers. */
export function formatRuleValue(rule: RuleOutcome['rule'], x: number | null): string {
  if (x === null) return '-';
  return rule === 'minEffectiveWidth' ? String(x) : `${(100 * x).toFixed(1).replace(/\.0$/, '')}%`;
}

export function formatCheckTable(report: CheckReport, options: TableOptions = {}): string {
  const s = report.summary;
  const verdict = report.passed ? 'PASSED' : 'FAILED';
  const head = terminalText(`${report.model.path}: ${verdict}: ${s.failed} failed, ${s.passed} passed, ${s.skipped} skipped` +
    (report.config ? ` (config ${report.config})` : '') + (report.baseline ? ` (baseline ${report.baseline})` : ''));
  const lines = [head];
  if (report.results.length) {
    lines.push('', renderTable(
      [{ header: 'rule' }, { header: 'layer', elide: true }, { header: 'limit', align: 'right' }, { header: 'actual', align: 'right' }, { header: 'result' }],
      report.results.map((o) => [o.rule, o.layer ?? '(model)', formatRuleValue(o.rule, o.limit), formatRuleValue(o.rule, o.actual), o.status.toUpperCase()]),
      options,
    ));
    const failures = report.results.filter((o) => o.status === 'fail');
    if (failures.length) lines.push('', ...failures.map((o) => terminalText(`FAIL ${o.rule}${o.layer ? ` ${o.layer}` : ''}: ${o.message}`)));
  }
  lines.push(...report.notes.map((n) => `note: ${terminalText(n)}`));
  return lines.map((l) => (l.includes('\n') ? l : wrapParagraph(l, options.width))).join('\n');
}
