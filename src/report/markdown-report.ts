// The audit as Markdown for a pull-request comment or a CI job summary: one table and short notes.

import type { AuditReport, LayerReport } from './audit-report.js';
import { markdownCode, markdownText } from './escape-text.js';

/** Escapes text for a Markdown table cell (pipes, line breaks). */
export const markdownCell = markdownText;

const pct = (x: number | null): string => (x === null ? '–' : `${(100 * x).toFixed(0)}%`);

function layerNote(l: LayerReport): string | undefined {
  const effective = l.effectiveWidth.output ?? l.effectiveWidth.weight;
  const redundancy = l.redundancy.output ?? l.redundancy.weight;
  if (redundancy <= 0) return undefined;
  const what = `${markdownCode(l.name)}: ${effective} effective of ${l.width} neurons (${pct(redundancy)} redundant${l.static ? `, ${l.static} static` : ''})`;
  return l.mergeable ? `${what}; \`condense prune\` can merge them.` : `${what}, but it cannot be merged: ${markdownCell(l.reason ?? '')}.`;
}

/** A Markdown summary of an audit report: header line, layer table, notes. */
export function renderMarkdownReport(report: AuditReport): string {
  const lines = [
    `### Condensation audit: ${markdownCode(report.model.path)}`,
    '',
    [
      `${report.model.params.toLocaleString('en-US')} parameters`,
      `${report.layers.length} layers`,
      report.probe ? `${report.probe.samples} probe samples (${markdownCell(report.probe.source)})` : 'data-free (weights only)',
      `similarity threshold ${report.options.similarityThreshold}`,
    ].join(' · '),
    '',
  ];
  if (report.layers.length) {
    lines.push(
      '| layer | op | activation | width | static | eff. width (weights) | eff. width (outputs) | redundancy | mergeable |',
      '|---|---|---|---:|---:|---:|---:|---:|---|',
      ...report.layers.map((l) =>
        `| ${markdownCode(l.name)} | ${markdownCell(l.op)} | ${markdownCell(l.activation)} | ${l.width} | ${l.static} | ${l.effectiveWidth.weight} | ${l.effectiveWidth.output ?? '–'} | ${pct(l.redundancy.output ?? l.redundancy.weight)} | ${l.mergeable ? 'yes' : 'no'} |`),
      '',
    );
  }
  const notes = [...report.layers.map(layerNote).filter((n): n is string => n !== undefined), ...report.notes.map(markdownCell)];
  if (notes.length) lines.push('**Notes**', '', ...notes.map((n) => `- ${n}`), '');
  lines.push('<sub>Effective width: clusters among non-static neurons; redundancy: 1 − effective width / width (outputs when probe data was run, else weights).</sub>', '');
  return lines.join('\n');
}
