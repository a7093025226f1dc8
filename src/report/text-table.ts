// Plain-text tables for terminals: columns padded to their widest cell, numbers right-aligned.

import { terminalText } from './escape-text.js';

export interface Column {
  header: string;
  align?: 'left' | 'right';
}

/** Renders rows under headers; every row must have one cell per column. */
export function renderTable(columns: Column[], rawRows: string[][]): string {
  // Cells often hold model names: shown escaped, so one name cannot forge lines or colours.
  const rows = rawRows.map((r) => r.map(terminalText));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((cell, i) => (columns[i]!.align === 'right' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(columns.map((c) => c.header)), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}
