// Canvas that paints pixels into an RGBA buffer and encodes it as PNG. The only importer of
// pngjs. No anti-aliasing: heatmap cells stay exact colours, which tests (and eyes) can check.

import { PNG } from 'pngjs';
import type { Canvas, TextStyle } from './canvas.js';
import { INK, WHITE, type Rgb } from './color-scale.js';
import { GLYPH_ADVANCE, GLYPH_HEIGHT, glyphPixels } from './pixel-font.js';

/** Font pixels per canvas pixel for a nominal text size: 10 to 14 draw glyphs 2 pixels wide per dot. */
function fontScale(size: number): number {
  return Math.max(1, Math.floor(size / 5));
}

export class RasterCanvas implements Canvas {
  readonly data: Uint8Array;
  private dx = 0;
  private dy = 0;

  constructor(readonly width: number, readonly height: number, background: Rgb = WHITE) {
    this.width = Math.max(1, Math.round(width));
    this.height = Math.max(1, Math.round(height));
    this.data = new Uint8Array(this.width * this.height * 4);
    for (let i = 0; i < this.data.length; i += 4) {
      this.data[i] = background[0];
      this.data[i + 1] = background[1];
      this.data[i + 2] = background[2];
      this.data[i + 3] = 255;
    }
  }

  textWidth(text: string, size: number): number {
    const s = fontScale(size);
    return Math.max(0, [...text].length * GLYPH_ADVANCE * s - s);
  }

  /** The colour at pixel (x, y) of the buffer (no translation applied). */
  pixel(x: number, y: number): Rgb {
    const i = (y * this.width + x) * 4;
    return [this.data[i]!, this.data[i + 1]!, this.data[i + 2]!];
  }

  private set(x: number, y: number, c: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 4;
    this.data[i] = c[0];
    this.data[i + 1] = c[1];
    this.data[i + 2] = c[2];
  }

  fillRect(x: number, y: number, width: number, height: number, fill: Rgb): void {
    const x0 = Math.round(x + this.dx);
    const y0 = Math.round(y + this.dy);
    const x1 = Math.round(x + this.dx + width);
    const y1 = Math.round(y + this.dy + height);
    for (let py = Math.max(0, y0); py < Math.min(this.height, y1); py++) {
      for (let px = Math.max(0, x0); px < Math.min(this.width, x1); px++) this.set(px, py, fill);
    }
  }

  line(x1: number, y1: number, x2: number, y2: number, color: Rgb, lineWidth = 1): void {
    const w = Math.max(1, Math.round(lineWidth));
    if (x1 === x2 || y1 === y2) {
      // Axis-parallel lines are rectangles, centred on the line like an SVG stroke.
      const half = w / 2;
      if (x1 === x2) this.fillRect(x1 - half, Math.min(y1, y2), w, Math.abs(y2 - y1) || 1, color);
      else this.fillRect(Math.min(x1, x2), y1 - half, Math.abs(x2 - x1) || 1, w, color);
      return;
    }
    const steps = Math.ceil(2 * Math.hypot(x2 - x1, y2 - y1));
    for (let s = 0; s <= steps; s++) {
      const t = s / steps;
      this.fillRect(x1 + t * (x2 - x1) - w / 2, y1 + t * (y2 - y1) - w / 2, w, w, color);
    }
  }

  polyline(points: readonly (readonly [number, number])[], color: Rgb, lineWidth: number): void {
    for (let i = 1; i < points.length; i++) this.line(points[i - 1]![0], points[i - 1]![1], points[i]![0], points[i]![1], color, lineWidth);
  }

  circle(cx: number, cy: number, radius: number, fill: Rgb, stroke?: Rgb): void {
    const x = cx + this.dx;
    const y = cy + this.dy;
    const r = Math.max(0.5, radius);
    for (let py = Math.floor(y - r); py <= Math.ceil(y + r); py++) {
      for (let px = Math.floor(x - r); px <= Math.ceil(x + r); px++) {
        const d = Math.hypot(px + 0.5 - x, py + 0.5 - y);
        if (d <= r) this.set(px, py, stroke && d > r - 1 ? stroke : fill);
      }
    }
  }

  text(x: number, y: number, text: string, style: TextStyle): void {
    const s = fontScale(style.size);
    const color = style.color ?? INK;
    const length = this.textWidth(text, style.size);
    const along = style.anchor === 'middle' ? -length / 2 : style.anchor === 'end' ? -length : 0;
    const across = Math.round(-(GLYPH_HEIGHT * s) / 2);
    const chars = [...text];
    const bold = style.isBold ? 1 : 0;
    chars.forEach((ch, i) => {
      for (const [gx, gy] of glyphPixels(ch)) {
        const u = Math.round(along) + (i * GLYPH_ADVANCE + gx) * s; // along the text
        const v = across + gy * s; // across the text, top to bottom
        for (let b = 0; b <= bold; b++) {
          if (style.isVertical) this.fillRect(x + v, y - u - s - b, s, s, color);
          else this.fillRect(x + u + b, y + v, s, s, color);
        }
      }
    });
  }

  cells(x: number, y: number, cellSize: number, rows: number, columns: number, color: (row: number, column: number) => Rgb): void {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < columns; c++) this.fillRect(x + c * cellSize, y + r * cellSize, cellSize, cellSize, color(r, c));
    }
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

  /** The picture as PNG file bytes. */
  toPng(): Buffer {
    const png = new PNG({ width: this.width, height: this.height });
    png.data = Buffer.from(this.data.buffer, this.data.byteOffset, this.data.byteLength);
    return PNG.sync.write(png);
  }
}
