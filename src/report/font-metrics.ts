// Exact text widths for the font PNGs are drawn in (DejaVu Sans, shipped by the dejavu-fonts-ttf
// package): the advance width of every character, read from the TrueType file's cmap (format 4,
// the Basic Multilingual Plane) and hmtx tables. Layout that knows how wide a title is never clips it.

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

const require = createRequire(import.meta.url);

/** The TrueType files PNG text is drawn with, regular and bold. */
export function fontFiles(): { regular: string; bold: string } {
  const dir = path.join(path.dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf');
  return { regular: path.join(dir, 'DejaVuSans.ttf'), bold: path.join(dir, 'DejaVuSans-Bold.ttf') };
}

export const PNG_FONT_FAMILY = 'DejaVu Sans';

/** Advance widths of a font in em (1 = the font size), by code point. */
export interface FontMetrics {
  advance(codePoint: number): number;
}

function readMetrics(file: string): FontMetrics {
  const b = fs.readFileSync(file);
  const tables = new Map<string, number>();
  const count = b.readUInt16BE(4);
  for (let i = 0; i < count; i++) tables.set(b.toString('latin1', 12 + 16 * i, 16 + 16 * i), b.readUInt32BE(20 + 16 * i));
  const table = (tag: string): number => {
    const at = tables.get(tag);
    if (at === undefined) throw new Error(`${file}: no ${tag} table`);
    return at;
  };
  const unitsPerEm = b.readUInt16BE(table('head') + 18);
  const metricCount = b.readUInt16BE(table('hhea') + 34);
  const hmtx = table('hmtx');
  const advanceOfGlyph = (glyph: number): number => b.readUInt16BE(hmtx + 4 * Math.min(glyph, metricCount - 1));
  // The Unicode BMP subtable (platform 3 encoding 1, or platform 0), format 4.
  const cmap = table('cmap');
  let sub = -1;
  for (let i = 0; i < b.readUInt16BE(cmap + 2); i++) {
    const platform = b.readUInt16BE(cmap + 4 + 8 * i);
    const encoding = b.readUInt16BE(cmap + 6 + 8 * i);
    const offset = cmap + b.readUInt32BE(cmap + 8 + 8 * i);
    if (b.readUInt16BE(offset) === 4 && ((platform === 3 && encoding === 1) || platform === 0)) sub = offset;
  }
  if (sub < 0) throw new Error(`${file}: no format-4 Unicode cmap`);
  const segments = b.readUInt16BE(sub + 6) / 2;
  const ends = sub + 14;
  const starts = ends + 2 * segments + 2;
  const deltas = starts + 2 * segments;
  const rangeOffsets = deltas + 2 * segments;
  const glyphOf = (c: number): number => {
    for (let s = 0; s < segments; s++) {
      if (c > b.readUInt16BE(ends + 2 * s)) continue;
      const start = b.readUInt16BE(starts + 2 * s);
      if (c < start) return 0;
      const delta = b.readInt16BE(deltas + 2 * s);
      const ro = b.readUInt16BE(rangeOffsets + 2 * s);
      if (ro === 0) return (c + delta) & 0xffff;
      const g = b.readUInt16BE(rangeOffsets + 2 * s + ro + 2 * (c - start));
      return g === 0 ? 0 : (g + delta) & 0xffff;
    }
    return 0;
  };
  const cache = new Map<number, number>();
  return {
    advance(c) {
      let w = cache.get(c);
      if (w === undefined) cache.set(c, (w = advanceOfGlyph(c > 0xffff ? 0 : glyphOf(c)) / unitsPerEm));
      return w;
    },
  };
}

let loaded: { regular: FontMetrics; bold: FontMetrics } | undefined;

/** Width of `text` at `size` in the PNG font. */
export function pngTextWidth(text: string, size: number, isBold = false): number {
  if (!loaded) {
    const files = fontFiles();
    loaded = { regular: readMetrics(files.regular), bold: readMetrics(files.bold) };
  }
  const m = isBold ? loaded.bold : loaded.regular;
  let w = 0;
  for (const ch of text) w += m.advance(ch.codePointAt(0)!);
  return w * size;
}
