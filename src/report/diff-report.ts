// The comparison of two audit reports as data (JSON) and as a terminal table.

import type { DiffResult } from './diff-audit-reports.js';
import { REPORT_SCHEMA_VERSION } from './audit-report.js';
import { renderTable, wrapParagraph, type TableOptions } from './text-table.js';

export interface DiffReport extends DiffResult {
  schemaVersion: number;
  kind: 'diff';
}

export function diffReport(r: DiffResult): DiffReport {
  return { schemaVersion: REPORT_SCHEMA_VERSION, kind: 'diff', ...r };
}

const signed = (x: number | null, digits = 0, scale = 1): string => {
  if (x === null) return '';
  const v = x * scale;
  const s = v.toFixed(digits);
  return Number(s) === 0 ? '±0' : v > 0 ? `+${s}` : s;
};

function cell(a: number | null, b: number | null, d: number | null, percent = false): string {
  const show = (x: number | null): string => (x === null ? '-' : percent ? `${(100 * x).toFixed(0)}%` : String(x));
  if (a === null || b === null) return a === null ? show(b) : show(a);
  if (d === 0 || (percent && Math.abs(d ?? 0) < 5e-3)) return show(b);
  return `${show(a)} -> ${show(b)} (${percent ? `${signed(d, 0, 100)}%` : signed(d)})`;
}

export function formatDiffTable(report: DiffReport, options: TableOptions = {}): string {
  const p = report.params;
  const head = `${report.a.file} (${report.a.model}) -> ${report.b.file} (${report.b.model})` +
    (p.a !== null && p.b !== null ? `; parameters ${p.a.toLocaleString('en-US')} -> ${p.b.toLocaleString('en-US')} (${signed(p.delta)})` : '');
  const table = renderTable(
    [{ header: 'layer', elide: true }, { header: 'status' }, { header: 'width', align: 'right' }, { header: 'static', align: 'right' }, { header: 'eff. width', align: 'right' }, { header: 'redundancy', align: 'right' }, { header: 'basis' }],
    report.layers.map((l) => [
      l.name, l.status,
      cell(l.width.a, l.width.b, l.width.delta), cell(l.static.a, l.static.b, l.static.delta),
      cell(l.effectiveWidth.a, l.effectiveWidth.b, l.effectiveWidth.delta), cell(l.redundancy.a, l.redundancy.b, l.redundancy.delta, true),
      l.basis,
    ]),
    options,
  );
  const lines = [head, '', table];
  if (report.added.length) lines.push(`added: ${report.added.join(', ')}`);
  if (report.removed.length) lines.push(`removed: ${report.removed.join(', ')}`);
  lines.push(...(report.warnings ?? []).map((w) => `warning: ${w}`));
  return lines.map((l) => (l.includes('\n') ? l : wrapParagraph(l, options.width))).join('\n');
}
