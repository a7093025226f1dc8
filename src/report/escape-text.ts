// Escaping of text that came from a model (value, node and layer names, producer, doc strings)
// or a user, for each place it is shown. A name is data, never markup or terminal control: one
// with a newline and an ANSI escape must not forge a line ("FAKE: all checks passed") or recolour
// a terminal, nor open a tag in HTML, XML or Markdown. One module, used by every format.

// C0 controls (newline and tab included), DEL, C1 controls, and the Unicode bidirectional
// overrides and isolates that can reorder what a terminal shows (CVE-2021-42574, "Trojan Source").
const UNSAFE_FOR_TERMINAL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

function visible(c: string): string {
  const code = c.charCodeAt(0);
  if (c === '\n') return '\\n';
  if (c === '\r') return '\\r';
  if (c === '\t') return '\\t';
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** Text safe for one line of a terminal: control characters shown as \n, \x1b, \u202e. */
export function terminalText(text: string): string {
  return text.replace(UNSAFE_FOR_TERMINAL, visible);
}

/** Text for a Markdown paragraph or table cell: terminal-safe, with Markdown and HTML syntax escaped. */
export function markdownText(text: string): string {
  return terminalText(text).replace(/[\\`*_{}[\]<>()#+!|~&]/g, (c) => (c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '&' ? '&amp;' : `\\${c}`));
}

/**
 * Text as a Markdown code span inside a table cell: a backtick fence longer than any run of
 * backticks in the text (CommonMark), pipes escaped (GFM tables), controls made visible.
 */
export function markdownCode(text: string): string {
  const safe = terminalText(text).replace(/\|/g, '\\|');
  const longest = Math.max(0, ...(safe.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  const pad = safe.startsWith('`') || safe.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${safe}${pad}${fence}`;
}

// Characters XML 1.0 forbids anywhere, even escaped: most C0 controls and the non-characters.
const INVALID_IN_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Text for XML or HTML content and attribute values: markup escaped, forbidden characters as U+FFFD. */
export function xmlText(text: string): string {
  return text
    .replace(INVALID_IN_XML, '\ufffd')
    .replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}
