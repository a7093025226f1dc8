// The audit as one self-contained HTML page: a summary table, then a section per layer with its
// pictures inlined as SVG. No scripts, no external resources: it opens from disk, in a CI artifact
// viewer or an e-mail, and prints.

import type { AuditResult } from '../pipeline/audit.js';
import { auditReport, type LayerReport } from './audit-report.js';
import { renderSvg, type Figure } from './figure.js';
import { layerFigures } from './layer-figures.js';
import { escapeXml } from './svg-canvas.js';
import { attentionHtml } from './attention-report.js';

const STYLE = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; margin: 0 auto; padding: 24px; max-width: 1400px; }
h1 { font-size: 22px; margin: 0 0 4px; }
.warnings { border-left: 4px solid #c77700; background: #fff6e5; padding: 6px 12px; margin: 8px 0; }
.warn { color: #a35c00; font-size: 12px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h2 small { font-weight: normal; color: #666; font-size: 14px; }
.meta { color: #555; margin: 0 0 16px; }
table { border-collapse: collapse; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e5e5e5; text-align: left; vertical-align: top; }
th { background: #f6f6f6; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.no { color: #9a3412; }
.notes { color: #555; }
dl.measures { display: grid; grid-template-columns: max-content auto; gap: 2px 14px; margin: 8px 0 12px; }
dl.measures dt { color: #666; }
dl.measures dd { margin: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 0; }
figcaption { color: #555; font-size: 12px; max-width: 420px; }
svg { display: block; max-width: 100%; height: auto; }
footer { margin-top: 32px; color: #777; font-size: 12px; }
`;

const pct = (x: number | null): string => (x === null ? '–' : `${(100 * x).toFixed(0)}%`);
const esc = escapeXml;

/** An output figure, struck through and flagged when the probe data cannot support it. */
function outputCell(l: LayerReport, text: string): string {
  return l.warnings.length ? `<s title="${esc(l.warnings.join(' '))}">${esc(text)}</s> <span class="warn">not supported</span>` : esc(text);
}

function summaryTable(layers: LayerReport[]): string {
  const head = '<tr><th>layer</th><th>op</th><th>activation</th><th class="num">width</th><th class="num">static</th><th class="num">effective width (weights)</th><th class="num">redundancy (weights)</th><th class="num">effective width (outputs)</th><th class="num">redundancy (outputs)</th><th>mergeable</th></tr>';
  const rows = layers.map((l, i) =>
    `<tr><td><a href="#layer-${i}">${esc(l.name)}</a></td><td>${esc(l.op)}</td><td>${esc(l.activation)}</td><td class="num">${l.width}</td><td class="num">${l.static}</td>` +
    `<td class="num">${l.effectiveWidth.weight}</td><td class="num">${pct(l.redundancy.weight)}</td>` +
    `<td class="num">${outputCell(l, l.effectiveWidth.output === null ? '–' : String(l.effectiveWidth.output))}</td><td class="num">${outputCell(l, l.redundancy.output === null ? '–' : pct(l.redundancy.output))}</td>` +
    `<td>${l.mergeable ? 'yes' : l.coupledGroup ? `with group ${esc(l.coupledGroup)}` : `<span class="no">no</span>: ${esc(l.reason ?? '')}`}</td></tr>`,
  );
  return `<table><thead>${head}</thead><tbody>${rows.join('')}</tbody></table>`;
}

function figureBlock(figure: Figure, caption: string): string {
  return `<figure>${renderSvg(figure)}<figcaption>${esc(caption)}</figcaption></figure>`;
}

function layerSection(result: AuditResult, index: number, report: LayerReport): string {
  const m = result.layers[index]!;
  const figures = layerFigures(m);
  const measures: [string, string][] = [
    ['width', String(report.width)],
    ['static neurons', String(report.static)],
    ['clusters (weights / outputs)', `${report.clusters.weight} / ${report.clusters.output ?? '–'}`],
    ['redundancy (weights / outputs)', `${pct(report.redundancy.weight)} / ${pct(report.redundancy.output)}`],
    ['largest clusters', report.clusterSizes.weight.slice(0, 8).join(', ') + (report.clusterSizes.weight.length > 8 ? ', …' : '')],
    ['clustering', `${m.weightClusters.method}, distance 1 − ${m.usesAbsoluteCosine ? '|cos|' : 'cos'}`],
    ['mergeable', report.mergeable ? 'yes' : `no: ${report.reason ?? ''}`],
  ];
  const blocks = [
    figureBlock(figures.weightHeatmap, 'Cosine similarity of the input weights u_k = [w_k; b_k], neurons ordered by cluster (strips: cluster colours, grey: static neurons last). Red +1: same direction; blue −1: opposite.'),
  ];
  if (figures.outputHeatmap) blocks.push(figureBlock(figures.outputHeatmap, `Cosine similarity of the neurons' outputs over ${result.probeSamples} probe samples, ordered by output cluster.`));
  blocks.push(figureBlock(figures.clusterSizes, 'Neurons per input-weight cluster, largest first; static neurons (negligible amplitude) in grey.'));
  if (figures.featureMap) blocks.push(figureBlock(figures.featureMap, 'Feature map: orientation angle of each neuron\'s input weights against its amplitude A_k = |u_k| |a_k|. Condensed neurons share a few angles; static neurons are grey.'));
  return `<section class="layer" id="layer-${index}" data-layer="${esc(report.name)}">` +
    `<h2>${esc(report.name)} <small>${esc(report.op)} · ${esc(report.activation)} · width ${report.width}</small></h2>` +
    `<dl class="measures">${measures.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>` +
    `<div class="figures">${blocks.join('')}</div></section>`;
}

/** The audit as a standalone HTML page: summary table and one `section.layer[data-layer]` per layer. */
export function renderHtmlReport(result: AuditResult): string {
  const report = auditReport(result);
  const meta = [
    `${report.model.params.toLocaleString('en-US')} parameters`,
    `${report.layers.length} layers`,
    report.probe ? `${report.probe.samples} probe samples (${report.probe.source})` : 'data-free (weights only)',
    `similarity threshold ${report.options.similarityThreshold}`,
    `static threshold ${report.options.staticThreshold}`,
  ].join(' · ');
  const warnings = report.warnings.length ? `<div class="warnings"><strong>Warnings: these output figures are not findings</strong><ul>${report.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul></div>` : '';
  const notes = report.notes.length ? `<ul class="notes">${report.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Condensation audit: ${esc(report.model.path)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>Condensation audit: ${esc(report.model.path)}</h1><p class="meta">${esc(meta)}</p></header>
<section class="summary"><h2>Summary</h2>${warnings}${report.layers.length ? summaryTable(report.layers) : '<p>No weight-bearing layers.</p>'}${notes}</section>
${report.layers.map((l, i) => layerSection(result, i, l)).join('\n')}
${attentionHtml(result.attention ?? [])}
<footer>Made by onnx-condense (report schema ${report.schemaVersion}). Effective width: clusters among non-static neurons; redundancy: 1 − effective width / width.</footer>
</body>
</html>
`;
}
