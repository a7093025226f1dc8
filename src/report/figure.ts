// Figures as data, drawn by one layout per kind onto either canvas: `renderSvg` for the HTML
// report and SVG files, `renderPng` for PNG files. The per-layer figures of the condensation papers
// (cosine heatmaps ordered by cluster, cluster sizes, the feature map) and the training-series plot
// are built from these kinds.

import type { Canvas } from './canvas.js';
import type { Rgb } from './color-scale.js';
import { drawBarChart, drawLineChart, drawScatter, measureBarChart, measureLineChart, measureScatter } from './chart-drawing.js';
import { drawHeatmap, measureHeatmap } from './heatmap-drawing.js';
import { PNG_FONT_FAMILY, pngTextWidth as fontTextWidth } from './font-metrics.js';
import { rasteriseSvg } from './rasterise-svg.js';
import { SvgCanvas, type SvgFont } from './svg-canvas.js';

/** A square matrix of values in [-1, 1], drawn blue-white-red. */
export interface HeatmapFigure {
  kind: 'heatmap';
  title: string;
  /** size x size values, row-major, already in display order. */
  values: Float64Array;
  size: number;
  /** Consecutive runs of rows (and columns) that belong together, shown as a coloured strip. */
  groups: { start: number; size: number; color: Rgb }[];
  axisLabel: string;
}

export interface BarChartFigure {
  kind: 'bars';
  title: string;
  xLabel: string;
  yLabel: string;
  bars: { label: string; value: number; color: Rgb }[];
}

export interface ScatterFigure {
  kind: 'scatter';
  title: string;
  xLabel: string;
  yLabel: string;
  xRange: [number, number];
  xTicks?: number[];
  /** Muted points are drawn first, so the coloured ones stay visible on top. */
  points: { x: number; y: number; color: Rgb; isMuted?: boolean }[];
  legend: { label: string; color: Rgb }[];
}

export interface LineChartFigure {
  kind: 'lines';
  title: string;
  xLabel: string;
  yLabel: string;
  xTickLabels: string[];
  series: { label: string; color: Rgb; values: (number | null)[] }[];
}

/** Figures side by side, top-aligned. */
export interface FigureRow {
  kind: 'row';
  figures: Figure[];
}

export type Figure = HeatmapFigure | BarChartFigure | ScatterFigure | LineChartFigure | FigureRow;

/** Sizes of one output format: SVG for screens (small), PNG for files (up to about 512 px of data). */
export interface FigureScale {
  target: 'svg' | 'png';
  fontSize: number;
  titleSize: number;
  plotWidth: number;
  plotHeight: number;
  /** Side of the heatmap's matrix area. */
  heatmapPixels: number;
  /** Larger matrices are averaged down to this many cells per side. */
  maxHeatmapCells: number;
  lineWidth: number;
  pointRadius: number;
}

export const SVG_SCALE: FigureScale = {
  target: 'svg', fontSize: 11, titleSize: 13, plotWidth: 300, plotHeight: 200, heatmapPixels: 280, maxHeatmapCells: 128, lineWidth: 1.5, pointRadius: 3.5,
};

export const PNG_SCALE: FigureScale = {
  target: 'png', fontSize: 12, titleSize: 15, plotWidth: 480, plotHeight: 300, heatmapPixels: 512, maxHeatmapCells: 512, lineWidth: 2, pointRadius: 4,
};

export interface Size {
  width: number;
  height: number;
}

const ROW_GAP = 24;

/** The size a figure takes at a scale; `textWidth` is the canvas's measure of text. */
export function measureFigure(figure: Figure, scale: FigureScale, textWidth: (text: string, size: number) => number): Size {
  switch (figure.kind) {
    case 'heatmap': return measureHeatmap(figure, scale, textWidth).size;
    case 'bars': return measureBarChart(figure, scale, textWidth).size;
    case 'scatter': return measureScatter(figure, scale, textWidth).size;
    case 'lines': return measureLineChart(figure, scale, textWidth).size;
    case 'row': {
      const sizes = figure.figures.map((f) => measureFigure(f, scale, textWidth));
      return { width: sizes.reduce((s, z) => s + z.width, 0) + ROW_GAP * Math.max(0, sizes.length - 1), height: Math.max(0, ...sizes.map((z) => z.height)) };
    }
  }
}

/** Draws a figure with its top-left corner at the canvas origin. */
export function drawFigure(canvas: Canvas, figure: Figure, scale: FigureScale): void {
  switch (figure.kind) {
    case 'heatmap': return drawHeatmap(canvas, figure, scale);
    case 'bars': return drawBarChart(canvas, figure, scale);
    case 'scatter': return drawScatter(canvas, figure, scale);
    case 'lines': return drawLineChart(canvas, figure, scale);
    case 'row': {
      let x = 0;
      for (const f of figure.figures) {
        canvas.translate(x, 0, () => drawFigure(canvas, f, scale));
        x += measureFigure(f, scale, canvas.textWidth.bind(canvas)).width + ROW_GAP;
      }
    }
  }
}

function figureTitle(figure: Figure): string {
  return figure.kind === 'row' ? figure.figures.map(figureTitle).join('; ') : figure.title;
}

const svgMeasure = new SvgCanvas(0, 0);
/** Text width on an SVG canvas (an estimate for a sans-serif font). */
export const svgTextWidth = (text: string, size: number): number => svgMeasure.textWidth(text, size);
/** Text width in a PNG (exact: the advance widths of the font resvg draws it in). */
export const pngTextWidth = (text: string, size: number): number => fontTextWidth(text, size);
const PNG_FONT: SvgFont = { family: PNG_FONT_FAMILY, textWidth: fontTextWidth };

/** The figure as a standalone `<svg>` element (also valid inline in HTML). */
export function renderSvg(figure: Figure, scale: FigureScale = SVG_SCALE): string {
  const size = measureFigure(figure, scale, svgTextWidth);
  const canvas = new SvgCanvas(Math.ceil(size.width), Math.ceil(size.height), figureTitle(figure));
  drawFigure(canvas, figure, scale);
  return canvas.toString();
}

/**
 * The figure as PNG file bytes: the same SVG drawing, laid out with the PNG font's exact text
 * widths and rasterised by resvg, so text in a PNG is real, anti-aliased text.
 */
export function renderPng(figure: Figure, scale: FigureScale = PNG_SCALE): Buffer {
  const size = measureFigure(figure, scale, pngTextWidth);
  const canvas = new SvgCanvas(Math.ceil(size.width), Math.ceil(size.height), figureTitle(figure), PNG_FONT);
  drawFigure(canvas, figure, scale);
  return rasteriseSvg(canvas.toString());
}
