// Plain-text tables for terminals and CI logs: columns padded to their widest cell, numbers
// right-aligned, and fitted to a width: long text columns (reasons) wrap onto their own lines and
// long names are shortened in the middle, so no line runs past the terminal.

import { terminalText } from './escape-text.js';

export interface Column {
  header: string;
  align?: 'left' | 'right';
  /**
   * Text that may wrap onto continuation lines when the table is too wide (reasons, notes); when
   * even a narrow column does not fit, it leaves the table and goes on its own line under each row.
   */
  wrap?: boolean;
  /** Names that may be shortened in the middle ("/model/la…/MatMul") when wrapping is not enough. */
  elide?: boolean;
}

export interface TableOptions {
  /** Widest line allowed; unlimited when absent. */
  width?: number;
}

const GAP = 2;
const MIN_WRAP = 30;
const MIN_ELIDE = 12;

/** Renders rows under headers; every row must have one cell per column. */
export function renderTable(columns: Column[], rawRows: string[][], options: TableOptions = {}): string {
  // Cells often hold model names: shown escaped, so one name cannot forge lines or colours.
  return renderEscapedTable(columns, rawRows.map((r) => r.map(terminalText)), options);
}

function renderEscapedTable(columns: Column[], rows: string[][], options: TableOptions): string {
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? '').length)));
  const total = (): number => widths.reduce((a, b) => a + b, 0) + GAP * (columns.length - 1);
  const limit = options.width;
  if (limit !== undefined) {
    // Give up width from wrapping columns first, then from elided ones, never below their floors.
    for (const [flag, floor] of [['wrap', MIN_WRAP], ['elide', MIN_ELIDE]] as const) {
      for (let i = columns.length - 1; i >= 0 && total() > limit; i--) {
        if (!columns[i]![flag]) continue;
        const least = Math.min(widths[i]!, Math.max(floor, flag === 'wrap' ? 0 : columns[i]!.header.length));
        widths[i] = Math.max(least, widths[i]! - (total() - limit));
      }
    }
    const last = columns.length - 1;
    if (total() > limit && last > 0 && columns[last]!.wrap) {
      // Still too wide: the text column becomes a line of its own under each row.
      const table = renderEscapedTable(columns.slice(0, last), rows.map((r) => r.slice(0, last)), options).split('\n');
      const label = columns[last]!.header;
      const detail = (row: string[]): string[] => wrapParagraph(`${label}: ${row[last] ?? ''}`, limit - 4, 2).split('\n').map((l) => `    ${l}`);
      return [...table.slice(0, 2), ...rows.flatMap((r, k) => [table[k + 2]!, ...detail(r)])].join('\n');
    }
  }
  const pad = (cell: string, i: number): string => (columns[i]!.align === 'right' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!));
  const physical = (cells: string[]): string[] => {
    const parts = cells.map((cell, i) => (columns[i]!.wrap ? wrapText(cell, widths[i]!) : [columns[i]!.elide ? elide(cell, widths[i]!) : cell]));
    const height = Math.max(...parts.map((p) => p.length));
    return Array.from({ length: height }, (_, k) => parts.map((p, i) => pad(p[k] ?? '', i)).join(' '.repeat(GAP)).trimEnd());
  };
  return [...physical(columns.map((c) => c.header)), physical(widths.map((w) => '-'.repeat(w)))[0]!, ...rows.flatMap(physical)].join('\n');
}

/** `text` shortened to `width` characters by replacing its middle with "…". */
export function elide(text: string, width: number): string {
  if (text.length <= width) return text;
  const keep = width - 1;
  const head = Math.ceil(keep / 2);
  return `${text.slice(0, head)}…${text.slice(text.length - (keep - head))}`;
}

/** Word-wraps `text` to lines of at most `width` characters (words longer than that are split). */
export function wrapText(text: string, width: number): string[] {
  if (width < 1 || text.length <= width) return [text];
  const lines: string[] = [];
  let line = '';
  for (let word of text.split(/\s+/).filter(Boolean)) {
    while (word.length > width) {
      if (line) {
        lines.push(line);
        line = '';
      }
      lines.push(word.slice(0, width));
      word = word.slice(width);
    }
    if (!line) line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line) lines.push(line);
  return lines.length ? lines : [''];
}

/** A paragraph wrapped to `width` (unlimited when absent), continuation lines indented by `indent` spaces. */
export function wrapParagraph(text: string, width: number | undefined, indent = 2): string {
  if (width === undefined || text.length <= width) return text;
  const [first, ...rest] = wrapText(text, width);
  const tail = rest.join(' ');
  return [first, ...(tail ? wrapText(tail, width - indent).map((l) => ' '.repeat(indent) + l) : [])].join('\n');
}
