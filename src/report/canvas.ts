// The drawing surface every figure is drawn on: SvgCanvas. The HTML report inlines its SVG; PNG
// files are the same SVG rasterised by resvg (rasterise-svg.ts), so each figure's layout is
// written once and both formats show the same picture with real text.

import type { Rgb } from './color-scale.js';

export type TextAnchor = 'start' | 'middle' | 'end';

export interface TextStyle {
  /** Nominal height in canvas units. */
  size: number;
  anchor?: TextAnchor;
  color?: Rgb;
  /** Reads bottom to top (a y-axis label); the anchor applies along the text. */
  isVertical?: boolean;
  isBold?: boolean;
}

export interface Canvas {
  readonly width: number;
  readonly height: number;
  /** Width the text takes on this canvas, for layout. */
  textWidth(text: string, size: number): number;
  fillRect(x: number, y: number, width: number, height: number, fill: Rgb): void;
  line(x1: number, y1: number, x2: number, y2: number, color: Rgb, lineWidth?: number): void;
  polyline(points: readonly (readonly [number, number])[], color: Rgb, lineWidth: number): void;
  circle(cx: number, cy: number, radius: number, fill: Rgb, stroke?: Rgb): void;
  /** Draws text whose vertical centre is at y (or, vertical, whose horizontal centre is at x). */
  text(x: number, y: number, text: string, style: TextStyle): void;
  /** A grid of square cells (a heatmap): `color(row, column)` for each of rows x columns cells. */
  cells(x: number, y: number, cellSize: number, rows: number, columns: number, color: (row: number, column: number) => Rgb): void;
  /** Runs `draw` with the origin moved by (dx, dy). */
  translate(dx: number, dy: number, draw: () => void): void;
}
