// The trade-off curve of `prune --sweep` as a self-contained HTML page: a plot of parameters and
// FLOPs removed and of the verified error against the budget, and the table behind it.

import { clusterColor as paletteColor } from './color-scale.js';
import { renderSvg, type Figure } from './figure.js';
import type { PruneReport } from './prune-report.js';
import { escapeXml as esc } from './svg-canvas.js';

/** The figure of a sweep: reduction (%) and verified error (-log10) per budget. */
export function sweepFigure(report: PruneReport): Figure {
  const b = report.budget!;
  const sweep = b.sweep ?? [];
  const ticks = sweep.map((p) => String(p.budget));
  const pctOf = (x: number, of: number): number => (of ? (100 * x) / of : 0);
  return {
    kind: 'row',
    figures: [
      {
        kind: 'lines',
        title: 'Removed within the budget (verified)',
        xLabel: 'relative-error budget',
        yLabel: '% removed',
        xTickLabels: ticks,
        series: [
          { label: 'parameters', color: paletteColor(0), values: sweep.map((p) => pctOf(p.paramsRemoved, report.params.before)) },
          { label: 'FLOPs', color: paletteColor(1), values: sweep.map((p) => pctOf(p.flopsRemoved, b.flops.before)) },
        ],
      },
      {
        kind: 'lines',
        // Line charts start at 0: digits of agreement (-log10 error) are positive for errors below 1.
        title: 'Verified held-out error (digits: -log10)',
        xLabel: 'relative-error budget',
        yLabel: '-log10 max relative error',
        xTickLabels: ticks,
        series: [
          { label: 'verified', color: paletteColor(2), values: sweep.map((p) => (p.maxRelError > 0 ? Math.max(0, -Math.log10(p.maxRelError)) : null)) },
          { label: 'budget', color: paletteColor(3), values: sweep.map((p) => Math.max(0, -Math.log10(p.budget))) },
        ],
      },
    ],
  };
}

/** The sweep as one HTML page (no scripts, no external files). */
export function renderSweepHtml(report: PruneReport): string {
  const b = report.budget;
  if (!b?.sweep) throw new Error('renderSweepHtml needs the report of a sweep (prune --sweep)');
  const names = b.layers.map((l) => l.name);
  const rows = b.sweep.map((p) => `<tr><td>${p.budget}</td><td>${p.paramsRemoved.toLocaleString('en-US')}</td><td>${p.flopsRemoved.toLocaleString('en-US')}</td><td>${p.maxRelError.toExponential(2)}</td><td>${p.top1Agreement === null ? '-' : `${(100 * p.top1Agreement).toFixed(2)}%`}</td>${names.map((n) => `<td>${p.widths[n]}</td>`).join('')}</tr>`).join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Prune trade-off: ${esc(report.input)}</title>
<style>body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 0 auto; padding: 24px; max-width: 1100px; } table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: right; border-bottom: 1px solid #ddd; } th { background: #f4f4f4; }</style>
</head>
<body>
<h1>Prune trade-off: ${esc(report.input)}</h1>
<p>${report.params.before.toLocaleString('en-US')} parameters, ${b.flops.before.toLocaleString('en-US')} multiply-add FLOPs per sample in the layers found. Every point is a pruned model verified on ${report.fidelity.samples} held-out samples never used to fit (${esc(report.holdout)}); ${b.verifications} verification runs. A larger budget never removes less.</p>
${renderSvg(sweepFigure(report))}
<table>
<tr><th>budget</th><th>params removed</th><th>FLOPs removed</th><th>verified error</th><th>top-1 agreement</th>${names.map((n) => `<th>${esc(n)} width</th>`).join('')}</tr>
${rows}
</table>
</body>
</html>
`;
}
