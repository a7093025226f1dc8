// The training series as data (JSON), as a terminal table and as a plot (effective width and RD
// per layer over the checkpoints, side by side).

import type { SeriesResult, TwoLayerEstimate } from '../pipeline/series.js';
import { REPORT_SCHEMA_VERSION } from './audit-report.js';
import { clusterColor } from './color-scale.js';
import type { FigureRow } from './figure.js';
import { renderTable, wrapParagraph, type TableOptions } from './text-table.js';

export interface SeriesReport {
  schemaVersion: number;
  kind: 'series';
  checkpoints: { index: number; path: string; params: number }[];
  options: { similarityThreshold: number; staticThreshold: number };
  layers: { name: string; width: number; isReadout: boolean; effectiveWidth: number[]; static: number[]; relativeDistance: (number | null)[] }[];
  relativeDistance: (number | null)[];
  twoLayer: TwoLayerEstimate | null;
  notes: string[];
}

/** NaN (a layer whose first weights are all zero) becomes null, which JSON can hold. */
const finite = (xs: number[]): (number | null)[] => xs.map((x) => (Number.isFinite(x) ? x : null));

export function seriesReport(r: SeriesResult): SeriesReport {
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    kind: 'series',
    checkpoints: r.checkpoints.map((c, index) => ({ index, ...c })),
    options: { similarityThreshold: r.similarityThreshold, staticThreshold: r.staticThreshold },
    layers: r.layers.map((l) => ({ ...l, relativeDistance: finite(l.relativeDistance) })),
    relativeDistance: finite(r.relativeDistance),
    twoLayer: r.twoLayer,
    notes: r.notes,
  };
}

const fmt = (x: number | null): string => (x === null ? '-' : x === 0 ? '0' : Math.abs(x) >= 100 || Math.abs(x) < 0.01 ? x.toExponential(2) : x.toFixed(3));

/** The layers a reader cares about: hidden ones (all of them when there are no hidden layers). */
function shownLayers(report: SeriesReport): SeriesReport['layers'] {
  const hidden = report.layers.filter((l) => !l.isReadout);
  return hidden.length ? hidden : report.layers;
}

export function formatTwoLayer(t: TwoLayerEstimate): string {
  return `two-layer network (${t.layer}, ${t.activation}, m = ${t.width}): alpha = ${t.alpha}, beta1 = std(a) = ${t.beta1.toExponential(3)}, beta2 = std(w) = ${t.beta2.toExponential(3)}\n` +
    `gamma = ${t.gamma.toFixed(3)}, gamma' = ${t.gammaPrime.toFixed(3)}: the phase diagram predicts the ${t.regime} regime` +
    `; observed RD of ${t.layer} at the last checkpoint = ${fmt(t.observedRelativeDistance)} (${t.observed})`;
}

/** Layers up to which the series table has a column group per layer. */
const WIDE_TABLE_LAYERS = 2;

export function formatSeriesTable(report: SeriesReport, options: TableOptions = {}): string {
  const layers = shownLayers(report);
  const columns = [
    { header: '#', align: 'right' as const }, { header: 'checkpoint', elide: true },
    ...layers.flatMap((l) => [{ header: `${l.name} eff.w`, align: 'right' as const }, { header: `${l.name} static`, align: 'right' as const }, { header: `${l.name} RD`, align: 'right' as const }]),
    { header: 'RD (all)', align: 'right' as const },
  ];
  const rows = report.checkpoints.map((c, t) => [
    String(t), c.path,
    ...layers.flatMap((l) => [`${l.effectiveWidth[t]}/${l.width}`, String(l.static[t]), fmt(l.relativeDistance[t] ?? null)]),
    fmt(report.relativeDistance[t] ?? null),
  ]);
  // Three columns a layer: past two layers the wide table outgrows any terminal, so it turns to
  // one row per layer and checkpoint (the JSON holds the same numbers either way).
  const long = layers.length > WIDE_TABLE_LAYERS;
  const table = long
    ? renderTable(
        [{ header: 'layer', elide: true }, { header: '#', align: 'right' }, { header: 'checkpoint', elide: true }, { header: 'eff.w', align: 'right' }, { header: 'static', align: 'right' }, { header: 'RD', align: 'right' }],
        [
          ...layers.flatMap((l) => report.checkpoints.map((c, t) => [l.name, String(t), c.path, `${l.effectiveWidth[t]}/${l.width}`, String(l.static[t]), fmt(l.relativeDistance[t] ?? null)])),
          ...report.checkpoints.map((c, t) => ['(all layers)', String(t), c.path, '', '', fmt(report.relativeDistance[t] ?? null)]),
        ],
        options,
      )
    : renderTable(columns, rows, options);
  const lines = [
    `${report.checkpoints.length} checkpoints; effective width at similarity threshold ${report.options.similarityThreshold}; RD = |theta_w(t) - theta_w(0)| / |theta_w(0)| of the input weights`,
    '',
    table,
  ];
  if (report.twoLayer) lines.push('', formatTwoLayer(report.twoLayer));
  lines.push(...report.notes.map((n) => `note: ${n}`));
  return lines.map((l) => (l.includes('\n') ? l : wrapParagraph(l, options.width))).join('\n');
}

/** Two panels: effective width per layer, and RD per layer, against the checkpoint index. */
export function seriesFigure(report: SeriesReport): FigureRow {
  const layers = shownLayers(report);
  const ticks = report.checkpoints.map((c) => String(c.index));
  return {
    kind: 'row',
    figures: [
      {
        kind: 'lines',
        title: 'effective width over training',
        xLabel: 'checkpoint, in training order',
        yLabel: 'effective width',
        xTickLabels: ticks,
        series: layers.map((l, i) => ({ label: l.name, color: clusterColor(i), values: l.effectiveWidth })),
      },
      {
        kind: 'lines',
        title: 'relative distance RD of input weights',
        xLabel: 'checkpoint',
        yLabel: 'RD from the first checkpoint',
        xTickLabels: ticks,
        series: layers.map((l, i) => ({ label: l.name, color: clusterColor(i), values: l.relativeDistance })),
      },
    ],
  };
}
