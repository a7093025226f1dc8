// Layouts of the charts with axes: bar chart (cluster sizes), scatter plot (the feature map:
// orientation angle against amplitude) and line chart (a training series). One frame layout
// (title, legend, y label, tick labels, plot area, x label) serves all three.

import type { Canvas } from './canvas.js';
import { AXIS_GREY, GRID_GREY, WHITE, type Rgb } from './color-scale.js';
import type { BarChartFigure, FigureScale, LineChartFigure, ScatterFigure, Size } from './figure.js';

type TextWidth = (text: string, size: number) => number;

const PAD = 8;

/** Up to three significant digits; exponent form for very large or small magnitudes. */
export function formatTick(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(1).replace('e+', 'e');
  return String(Number(x.toPrecision(3)));
}

/** Round-number ticks from 0 (or `min`) to at least `max`, about `count` of them. */
export function niceTicks(min: number, max: number, count = 5, isInteger = false): number[] {
  if (!(max > min)) max = min + 1;
  const raw = isInteger ? Math.max(1, (max - min) / count) : (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  const first = Math.floor(min / step + 1e-9) * step;
  for (let t = first; t < max + step * 0.999; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

interface Frame {
  size: Size;
  plot: { x: number; y: number; width: number; height: number };
  titleY: number;
  legendY: number;
}

interface FrameSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  yTickLabels: string[];
  legend: { label: string; color: Rgb }[];
}

function legendWidth(legend: FrameSpec['legend'], scale: FigureScale, textWidth: TextWidth): number {
  return legend.reduce((s, e) => s + scale.fontSize + 4 + textWidth(e.label, scale.fontSize) + 12, 0);
}

function measureFrame(spec: FrameSpec, scale: FigureScale, textWidth: TextWidth): Frame {
  const titleHeight = Math.round(scale.titleSize * 2);
  const legendHeight = spec.legend.length ? Math.round(scale.fontSize * 1.8) : 0;
  const axisLabel = Math.round(scale.fontSize * 2);
  const tickWidth = Math.max(0, ...spec.yTickLabels.map((t) => textWidth(t, scale.fontSize))) + 8;
  const plot = { x: PAD + axisLabel + tickWidth, y: PAD + titleHeight + legendHeight + scale.fontSize, width: scale.plotWidth, height: scale.plotHeight };
  const width = Math.max(
    plot.x + plot.width + PAD * 2,
    2 * PAD + textWidth(spec.title, scale.titleSize),
    plot.x + legendWidth(spec.legend, scale, textWidth) + PAD,
  );
  const height = plot.y + plot.height + Math.round(scale.fontSize * 1.8) + axisLabel + PAD;
  return { size: { width: Math.ceil(width), height: Math.ceil(height) }, plot, titleY: PAD + titleHeight / 2, legendY: PAD + titleHeight + legendHeight / 2 };
}

function drawFrame(canvas: Canvas, frame: Frame, spec: FrameSpec, scale: FigureScale, yTicks: number[], toY: (v: number) => number): void {
  const { plot } = frame;
  canvas.text(PAD, frame.titleY, spec.title, { size: scale.titleSize, isBold: true });
  let lx = plot.x;
  for (const entry of spec.legend) {
    canvas.fillRect(lx, frame.legendY - scale.fontSize / 2, scale.fontSize, scale.fontSize, entry.color);
    canvas.text(lx + scale.fontSize + 4, frame.legendY, entry.label, { size: scale.fontSize });
    lx += scale.fontSize + 4 + canvas.textWidth(entry.label, scale.fontSize) + 12;
  }
  yTicks.forEach((t, i) => {
    const y = toY(t);
    canvas.line(plot.x, y, plot.x + plot.width, y, GRID_GREY);
    canvas.line(plot.x - 4, y, plot.x, y, AXIS_GREY);
    canvas.text(plot.x - 6, y, spec.yTickLabels[i]!, { size: scale.fontSize, anchor: 'end' });
  });
  canvas.line(plot.x, plot.y, plot.x, plot.y + plot.height, AXIS_GREY);
  canvas.line(plot.x, plot.y + plot.height, plot.x + plot.width, plot.y + plot.height, AXIS_GREY);
  const axisLabel = Math.round(scale.fontSize * 2);
  canvas.text(plot.x + plot.width / 2, plot.y + plot.height + Math.round(scale.fontSize * 1.8) + axisLabel / 2, spec.xLabel, { size: scale.fontSize, anchor: 'middle', color: AXIS_GREY });
  canvas.text(PAD + axisLabel / 2, plot.y + plot.height / 2, spec.yLabel, { size: scale.fontSize, anchor: 'middle', color: AXIS_GREY, isVertical: true });
}

function xTickLabel(canvas: Canvas, frame: Frame, x: number, label: string, scale: FigureScale): void {
  const y = frame.plot.y + frame.plot.height;
  canvas.line(x, y, x, y + 4, AXIS_GREY);
  canvas.text(x, y + 4 + scale.fontSize * 0.8, label, { size: scale.fontSize, anchor: 'middle' });
}

/**
 * Which x labels to draw when they would not all fit: every `step`-th, `step` a nice number
 * (1, 2, 5, 10, 20, 50, ...) so labels such as cluster numbers read 1, 50, 100, ... Measured with
 * the widest label, so neighbours never overlap, from 2 to thousands of bars.
 */
export function labelStep(labels: readonly string[], slotWidth: number, size: number, textWidth: TextWidth): number {
  const widest = Math.max(0, ...labels.map((l) => textWidth(l, size)));
  const need = Math.ceil((widest + size * 0.8) / Math.max(slotWidth, 1e-9));
  if (need <= 1) return 1;
  for (let magnitude = 1; ; magnitude *= 10) {
    for (const m of [1, 2, 5]) if (m * magnitude >= need) return m * magnitude;
  }
}

/** Indices to label: 0, then every multiple of `step` (as 1-based numbers: step, 2 step, ...), and the last when it is not a number and has room. */
function labelledIndices(labels: readonly string[], step: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < labels.length; i++) if (i === 0 || (i + 1) % step === 0) out.push(i);
  const last = labels.length - 1;
  if (last > 0 && !out.includes(last) && !/^\d+$/.test(labels[last]!)) {
    // A closing label like "static" keeps its place; the numbered label too close to it yields.
    if (out.length > 1 && last - out[out.length - 1]! < step) out.pop();
    out.push(last);
  }
  return out;
}

function yAxis(values: number[], isInteger = false): { ticks: number[]; top: number } {
  const ticks = niceTicks(0, Math.max(0, ...values.filter(Number.isFinite)), 4, isInteger);
  return { ticks, top: ticks[ticks.length - 1]! };
}

// ---- bar chart

function barSpec(figure: BarChartFigure, ticks: number[]): FrameSpec {
  return { title: figure.title, xLabel: figure.xLabel, yLabel: figure.yLabel, yTickLabels: ticks.map(formatTick), legend: [] };
}

export function measureBarChart(figure: BarChartFigure, scale: FigureScale, textWidth: TextWidth): { size: Size } {
  return measureFrame(barSpec(figure, yAxis(figure.bars.map((b) => b.value), true).ticks), scale, textWidth);
}

export function drawBarChart(canvas: Canvas, figure: BarChartFigure, scale: FigureScale): void {
  const { ticks, top } = yAxis(figure.bars.map((b) => b.value), true);
  const spec = barSpec(figure, ticks);
  const frame = measureFrame(spec, scale, canvas.textWidth.bind(canvas));
  const { plot } = frame;
  const toY = (v: number): number => plot.y + plot.height * (1 - v / top);
  drawFrame(canvas, frame, spec, scale, ticks, toY);
  const slot = plot.width / Math.max(1, figure.bars.length);
  // Thinner than two pixels (thousands of clusters): bars touch and read as one profile of sizes,
  // in the first bar's colour, since cycling colours would only flicker; labelled bars keep theirs.
  const profile = slot < 2;
  figure.bars.forEach((bar, i) => {
    const x = plot.x + i * slot;
    const y = toY(bar.value);
    const color = profile && /^\d+$/.test(bar.label) ? figure.bars[0]!.color : bar.color;
    canvas.fillRect(slot >= 3 ? x + slot * 0.1 : x, y, slot >= 3 ? slot * 0.8 : Math.max(slot, 0.5), plot.y + plot.height - y, color);
  });
  const labels = figure.bars.map((b) => b.label);
  const step = labelStep(labels, slot, scale.fontSize, canvas.textWidth.bind(canvas));
  for (const i of labelledIndices(labels, step)) xTickLabel(canvas, frame, plot.x + (i + 0.5) * slot, labels[i]!, scale);
}

// ---- scatter plot

function scatterTicks(figure: ScatterFigure): { xTicks: number[]; y: { ticks: number[]; top: number } } {
  const [lo, hi] = figure.xRange;
  return { xTicks: figure.xTicks ?? niceTicks(lo, hi, 4).filter((t) => t >= lo && t <= hi), y: yAxis(figure.points.map((p) => p.y)) };
}

function scatterSpec(figure: ScatterFigure, yTicks: number[]): FrameSpec {
  return { title: figure.title, xLabel: figure.xLabel, yLabel: figure.yLabel, yTickLabels: yTicks.map(formatTick), legend: figure.legend };
}

export function measureScatter(figure: ScatterFigure, scale: FigureScale, textWidth: TextWidth): { size: Size } {
  return measureFrame(scatterSpec(figure, scatterTicks(figure).y.ticks), scale, textWidth);
}

export function drawScatter(canvas: Canvas, figure: ScatterFigure, scale: FigureScale): void {
  const { xTicks, y } = scatterTicks(figure);
  const spec = scatterSpec(figure, y.ticks);
  const frame = measureFrame(spec, scale, canvas.textWidth.bind(canvas));
  const { plot } = frame;
  const [lo, hi] = figure.xRange;
  const toX = (v: number): number => plot.x + (plot.width * (v - lo)) / (hi - lo || 1);
  const toY = (v: number): number => plot.y + plot.height * (1 - v / y.top);
  drawFrame(canvas, frame, spec, scale, y.ticks, toY);
  for (const t of xTicks) xTickLabel(canvas, frame, toX(t), formatTick(t), scale);
  const ordered = [...figure.points.filter((p) => p.isMuted), ...figure.points.filter((p) => !p.isMuted)];
  for (const p of ordered) {
    if (!Number.isFinite(p.x) || !Number.isFinite(p.y)) continue;
    canvas.circle(toX(p.x), toY(p.y), p.isMuted ? scale.pointRadius * 0.8 : scale.pointRadius, p.color, p.isMuted ? undefined : WHITE);
  }
}

// ---- line chart

function lineSpec(figure: LineChartFigure, yTicks: number[]): FrameSpec {
  return { title: figure.title, xLabel: figure.xLabel, yLabel: figure.yLabel, yTickLabels: yTicks.map(formatTick), legend: figure.series.map((s) => ({ label: s.label, color: s.color })) };
}

function lineValues(figure: LineChartFigure): number[] {
  return figure.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
}

export function measureLineChart(figure: LineChartFigure, scale: FigureScale, textWidth: TextWidth): { size: Size } {
  return measureFrame(lineSpec(figure, yAxis(lineValues(figure)).ticks), scale, textWidth);
}

export function drawLineChart(canvas: Canvas, figure: LineChartFigure, scale: FigureScale): void {
  const { ticks, top } = yAxis(lineValues(figure));
  const spec = lineSpec(figure, ticks);
  const frame = measureFrame(spec, scale, canvas.textWidth.bind(canvas));
  const { plot } = frame;
  const count = figure.xTickLabels.length;
  const inset = plot.width * 0.05;
  const toX = (i: number): number => (count <= 1 ? plot.x + plot.width / 2 : plot.x + inset + ((plot.width - 2 * inset) * i) / (count - 1));
  const toY = (v: number): number => plot.y + plot.height * (1 - v / top);
  drawFrame(canvas, frame, spec, scale, ticks, toY);
  const step = labelStep(figure.xTickLabels, plot.width / Math.max(1, count - 1), scale.fontSize, canvas.textWidth.bind(canvas));
  figure.xTickLabels.forEach((label, i) => {
    if (i % step === 0) xTickLabel(canvas, frame, toX(i), label, scale);
  });
  for (const s of figure.series) {
    let run: [number, number][] = [];
    const flush = (): void => {
      if (run.length > 1) canvas.polyline(run, s.color, scale.lineWidth);
      run = [];
    };
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return flush();
      run.push([toX(i), toY(v)]);
    });
    flush();
    s.values.forEach((v, i) => {
      if (v !== null && Number.isFinite(v)) canvas.circle(toX(i), toY(v), scale.lineWidth * 1.8, s.color);
    });
  }
}
