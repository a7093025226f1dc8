// The audit as Markdown for a pull-request comment or a CI job summary: one table and short notes.

import type { AuditReport, LayerReport } from './audit-report.js';
import { markdownCode, markdownText } from './escape-text.js';

/** Escapes text for a Markdown table cell (pipes, line breaks). */
export const markdownCell = markdownText;

const pct = (x: number | null): string => (x === null ? '–' : `${(100 * x).toFixed(0)}%`);

/** Output figures the probe data supports: none for a layer with warnings (too few samples). */
function supportedOutput(l: LayerReport): boolean {
  return l.effectiveWidth.output !== null && l.warnings.length === 0;
}

/** A finding for the notes: only from figures the data supports (weights, or outputs without warnings). */
function layerNote(l: LayerReport): string | undefined {
  const outputs = supportedOutput(l);
  const effective = outputs ? l.effectiveWidth.output! : l.effectiveWidth.weight;
  const redundancy = outputs ? l.redundancy.output! : l.redundancy.weight;
  if (redundancy <= 0) return undefined;
  const what = `${markdownCode(l.name)}: ${effective} effective of ${l.width} neurons by its ${outputs ? 'outputs' : 'input weights'} (${pct(redundancy)} redundant${l.static ? `, ${l.static} static` : ''})`;
  if (l.mergeable) return `${what}; \`condense prune\` can merge them.`;
  if (l.coupledGroup) return `${what}; it merges only together with the other layers of channel group ${markdownCell(l.coupledGroup)}.`;
  return `${what}, but it cannot be merged: ${markdownCell(l.reason ?? '')}.`;
}

function outputCell(l: LayerReport, x: number | null, show: (x: number) => string): string {
  if (x === null) return '–';
  return l.warnings.length ? `~~${show(x)}~~ not supported` : show(x);
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
      '| layer | op | activation | width | static | eff. width (weights) | redundancy (weights) | eff. width (outputs) | redundancy (outputs) | mergeable |',
      '|---|---|---|---:|---:|---:|---:|---:|---:|---|',
      ...report.layers.map((l) =>
        `| ${markdownCode(l.name)} | ${markdownCell(l.op)} | ${markdownCell(l.activation)} | ${l.width} | ${l.static} | ${l.effectiveWidth.weight} | ${pct(l.redundancy.weight)} | ${outputCell(l, l.effectiveWidth.output, String)} | ${outputCell(l, l.redundancy.output, pct)} | ${l.mergeable ? 'yes' : l.coupledGroup ? `with group ${markdownCell(l.coupledGroup)}` : 'no'} |`),
      '',
    );
  }
  if (report.warnings.length) lines.push('**Warnings** (these figures are not findings)', '', ...report.warnings.map((w) => `- ${markdownCell(w)}`), '');
  const groups = report.groups.map((g) => `channel group ${markdownCell(g.id)}: ${g.members.map((m) => `\`${markdownCell(m)}\``).join(', ')} tied by ${markdownCell(g.ties.join(', '))}; ${g.mergeable ? 'they merge together' : `not mergeable: ${markdownCell(g.reason ?? '')}`}.`);
  const notes = [...report.layers.map(layerNote).filter((n): n is string => n !== undefined), ...groups, ...report.notes.map(markdownCell)];
  if (notes.length) lines.push('**Notes**', '', ...notes.map((n) => `- ${n}`), '');
  lines.push('<sub>Effective width: clusters among non-static neurons; redundancy: 1 − effective width / width. Weights: the input weights alone (no data); outputs: over the probe samples.</sub>', '');
  return lines.join('\n');
}
