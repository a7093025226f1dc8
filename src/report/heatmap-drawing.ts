// Layout of a cosine-similarity heatmap: the matrix (averaged down when it has more rows than the
// format shows), cluster strips along the top and left edges, and a -1..1 colour bar.

import type { Canvas } from './canvas.js';
import { AXIS_GREY, divergingColor } from './color-scale.js';
import type { FigureScale, HeatmapFigure, Size } from './figure.js';

export interface HeatmapLayout {
  size: Size;
  /** Top-left corner of the matrix area, cells per side and each cell's side in canvas units. */
  matrix: { x: number; y: number; cells: number; cellSize: number };
  colorBar: { x: number; y: number; width: number; height: number };
  stripWidth: number;
  titleHeight: number;
  axisLabelHeight: number;
}

const PAD = 8;
const STRIP_GAP = 2;
/** Colour steps per unit: fine enough to look continuous; SVG uses fewer, so more cells merge into runs. */
const PNG_LEVELS = 64;
const SVG_LEVELS = 32;

export function measureHeatmap(figure: HeatmapFigure, scale: FigureScale, textWidth: (text: string, size: number) => number): HeatmapLayout {
  const titleHeight = Math.round(scale.titleSize * 2);
  const axisLabelHeight = Math.round(scale.fontSize * 2);
  const stripWidth = scale.target === 'png' ? 10 : 7;
  const cells = Math.max(1, Math.min(figure.size, scale.maxHeatmapCells));
  const cellSize = scale.target === 'png' ? Math.max(1, Math.floor(scale.heatmapPixels / cells)) : scale.heatmapPixels / cells;
  const side = cells * cellSize;
  const x = PAD + axisLabelHeight + stripWidth + STRIP_GAP;
  const y = PAD + titleHeight + stripWidth + STRIP_GAP;
  const colorBar = { x: x + side + 12, y, width: Math.round(scale.fontSize * 1.3), height: side };
  const labelWidth = Math.max(...['1', '0', '-1'].map((t) => textWidth(t, scale.fontSize)));
  const width = Math.max(
    colorBar.x + colorBar.width + 4 + labelWidth + PAD,
    2 * PAD + textWidth(figure.title, scale.titleSize),
    x + side / 2 + textWidth(bottomLabel(figure, cells), scale.fontSize) / 2 + PAD,
  );
  const height = y + side + PAD + axisLabelHeight;
  return { size: { width: Math.ceil(width), height: Math.ceil(height) }, matrix: { x, y, cells, cellSize }, colorBar, stripWidth, titleHeight, axisLabelHeight };
}

/** Averages an n x n matrix down to cells x cells blocks (NaN entries are left out of the mean). */
export function downsampleMatrix(values: Float64Array, n: number, cells: number): Float64Array {
  if (cells >= n) return values;
  const edge = (i: number): number => Math.floor((i * n) / cells);
  const out = new Float64Array(cells * cells);
  for (let r = 0; r < cells; r++) {
    for (let c = 0; c < cells; c++) {
      let sum = 0;
      let count = 0;
      for (let i = edge(r); i < edge(r + 1); i++) {
        for (let j = edge(c); j < edge(c + 1); j++) {
          const v = values[i * n + j]!;
          if (Number.isNaN(v)) continue;
          sum += v;
          count++;
        }
      }
      out[r * cells + c] = count ? sum / count : Number.NaN;
    }
  }
  return out;
}

function bottomLabel(figure: HeatmapFigure, cells: number): string {
  return figure.size > cells ? `${figure.axisLabel} (${figure.size}, as ${cells} averaged blocks)` : figure.axisLabel;
}

function quantize(v: number, levels: number): number {
  return Math.round(v * levels) / levels;
}

export function drawHeatmap(canvas: Canvas, figure: HeatmapFigure, scale: FigureScale): void {
  const layout = measureHeatmap(figure, scale, canvas.textWidth.bind(canvas));
  const { x, y, cells, cellSize } = layout.matrix;
  const side = cells * cellSize;
  canvas.text(PAD, PAD + layout.titleHeight / 2, figure.title, { size: scale.titleSize, isBold: true });

  const values = downsampleMatrix(figure.values, figure.size, cells);
  const levels = scale.target === 'svg' ? SVG_LEVELS : PNG_LEVELS;
  canvas.cells(x, y, cellSize, cells, cells, (r, c) => divergingColor(quantize(values[r * cells + c]!, levels)));

  // Cluster strips: the blocks along the diagonal line up with these runs of colour.
  const unit = side / Math.max(1, figure.size);
  const strip = layout.stripWidth;
  for (const g of figure.groups) {
    canvas.fillRect(x + g.start * unit, y - strip - STRIP_GAP, Math.max(1, g.size * unit), strip, g.color);
    canvas.fillRect(x - strip - STRIP_GAP, y + g.start * unit, strip, Math.max(1, g.size * unit), g.color);
  }

  const bar = layout.colorBar;
  const steps = Math.max(1, Math.round(bar.height / 4));
  for (let i = 0; i < steps; i++) {
    canvas.fillRect(bar.x, bar.y + (i * bar.height) / steps, bar.width, bar.height / steps + 0.5, divergingColor(quantize(1 - (2 * (i + 0.5)) / steps, levels)));
  }
  for (const [value, at] of [[1, 0], [0, 0.5], [-1, 1]] as const) {
    const ty = bar.y + at * bar.height;
    canvas.text(bar.x + bar.width + 4, Math.min(Math.max(ty, bar.y + scale.fontSize / 2), bar.y + bar.height - scale.fontSize / 2), String(value), { size: scale.fontSize });
  }

  canvas.text(x + side / 2, y + side + PAD / 2 + layout.axisLabelHeight / 2, bottomLabel(figure, cells), { size: scale.fontSize, anchor: 'middle', color: AXIS_GREY });
  canvas.text(PAD + layout.axisLabelHeight / 2, y + side / 2, figure.axisLabel, { size: scale.fontSize, anchor: 'middle', color: AXIS_GREY, isVertical: true });
}
