// Canvas that writes SVG markup: small, self-contained, no ids (so many pictures can share one
// HTML page), crisp edges for heatmap cells.

import type { Canvas, TextStyle } from './canvas.js';
import { INK, rgbHex, type Rgb } from './color-scale.js';
import { xmlText } from './escape-text.js';

const FONT_FAMILY = 'system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif';

/** Two decimals at most: enough for screen coordinates, and keeps the markup short. */
function n(x: number): string {
  return String(Math.round(x * 100) / 100);
}

export function escapeXml(text: string): string {
  return xmlText(text);
}

/** The font an SVG names and how wide its text runs (an estimate for a browser's sans-serif). */
export interface SvgFont {
  family: string;
  textWidth(text: string, size: number, isBold?: boolean): number;
}

export const BROWSER_FONT: SvgFont = {
  family: FONT_FAMILY,
  textWidth: (text, size, isBold) => (isBold ? 0.6 : 0.56) * size * [...text].length,
};

export class SvgCanvas implements Canvas {
  private readonly parts: string[] = [];
  private dx = 0;
  private dy = 0;

  constructor(readonly width: number, readonly height: number, private readonly title?: string, private readonly font: SvgFont = BROWSER_FONT) {}

  textWidth(text: string, size: number): number {
    return this.font.textWidth(text, size);
  }

  fillRect(x: number, y: number, width: number, height: number, fill: Rgb): void {
    this.parts.push(`<rect x="${n(x + this.dx)}" y="${n(y + this.dy)}" width="${n(width)}" height="${n(height)}" fill="${rgbHex(fill)}"/>`);
  }

  line(x1: number, y1: number, x2: number, y2: number, color: Rgb, lineWidth = 1): void {
    this.parts.push(`<line x1="${n(x1 + this.dx)}" y1="${n(y1 + this.dy)}" x2="${n(x2 + this.dx)}" y2="${n(y2 + this.dy)}" stroke="${rgbHex(color)}" stroke-width="${n(lineWidth)}"/>`);
  }

  polyline(points: readonly (readonly [number, number])[], color: Rgb, lineWidth: number): void {
    const pts = points.map(([x, y]) => `${n(x + this.dx)},${n(y + this.dy)}`).join(' ');
    this.parts.push(`<polyline points="${pts}" fill="none" stroke="${rgbHex(color)}" stroke-width="${n(lineWidth)}" stroke-linejoin="round"/>`);
  }

  circle(cx: number, cy: number, radius: number, fill: Rgb, stroke?: Rgb): void {
    this.parts.push(`<circle cx="${n(cx + this.dx)}" cy="${n(cy + this.dy)}" r="${n(radius)}" fill="${rgbHex(fill)}"${stroke ? ` stroke="${rgbHex(stroke)}" stroke-width="0.75"` : ''}/>`);
  }

  text(x: number, y: number, text: string, style: TextStyle): void {
    const ax = n(x + this.dx);
    const ay = n(y + this.dy);
    const anchor = style.anchor && style.anchor !== 'start' ? ` text-anchor="${style.anchor}"` : '';
    const rotate = style.isVertical ? ` transform="rotate(-90 ${ax} ${ay})"` : '';
    const weight = style.isBold ? ' font-weight="600"' : '';
    const fill = style.color && style.color !== INK ? ` fill="${rgbHex(style.color)}"` : '';
    this.parts.push(`<text x="${ax}" y="${ay}" font-size="${n(style.size)}" dominant-baseline="central"${anchor}${weight}${fill}${rotate}>${escapeXml(text)}</text>`);
  }

  cells(x: number, y: number, cellSize: number, rows: number, columns: number, color: (row: number, column: number) => Rgb): void {
    // One path per colour, one sub-path per run of equal colour in a row: a blocky cosine matrix
    // becomes a few dozen short paths instead of rows x columns rectangles.
    const runs = new Map<string, string[]>();
    for (let r = 0; r < rows; r++) {
      let start = 0;
      let current = rgbHex(color(r, 0));
      for (let c = 1; c <= columns; c++) {
        const next = c < columns ? rgbHex(color(r, c)) : '';
        if (next === current) continue;
        let list = runs.get(current);
        if (!list) runs.set(current, (list = []));
        list.push(`M${start} ${r}h${c - start}v1h-${c - start}z`);
        start = c;
        current = next;
      }
    }
    const paths = [...runs].map(([fill, d]) => `<path fill="${fill}" d="${d.join('')}"/>`).join('');
    this.parts.push(`<g transform="translate(${n(x + this.dx)} ${n(y + this.dy)}) scale(${n(cellSize)})" shape-rendering="crispEdges">${paths}</g>`);
  }

  translate(dx: number, dy: number, draw: () => void): void {
    this.dx += dx;
    this.dy += dy;
    try {
      draw();
    } finally {
      this.dx -= dx;
      this.dy -= dy;
    }
  }

  /** The finished `<svg>` element (with its XML namespace, so it also stands alone as a file). */
  toString(): string {
    const title = this.title ? `<title>${escapeXml(this.title)}</title>` : '';
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${n(this.width)}" height="${n(this.height)}" viewBox="0 0 ${n(this.width)} ${n(this.height)}" font-family='${this.font.family}' fill="${rgbHex(INK)}" role="img">${title}<rect width="100%" height="100%" fill="#ffffff"/>${this.parts.join('')}</svg>`;
  }
}
