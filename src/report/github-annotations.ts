// The check result as GitHub Actions workflow commands (`::error title=...::message`), which the
// Actions runner turns into annotations on the run and the pull request.

import type { CheckReport } from './check-report.js';
import { terminalText } from './escape-text.js';

/**
 * Escapes a workflow command's message (GitHub's rules: %, CR and LF), after the terminal escaping
 * every printed model string gets: the annotation lines land in a CI log, where an ANSI sequence in a
 * layer name would otherwise act.
 */
function escapeData(text: string): string {
  return terminalText(text).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

/** Escapes a workflow command's property value (also ':' and ','). */
function escapeProperty(text: string): string {
  return escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

/** One `::error` line per failed rule, then a `::notice` with the totals. */
export function renderGithubAnnotations(report: CheckReport): string {
  const lines = report.results
    .filter((o) => o.status === 'fail')
    .map((o) => `::error title=${escapeProperty(`condense check: ${o.rule}${o.layer ? ` (${o.layer})` : ''}`)}::${escapeData(`${report.model.path}: ${o.layer ? `layer ${o.layer}: ` : ''}${o.message}`)}`);
  const s = report.summary;
  lines.push(`::notice title=${escapeProperty('condense check')}::${escapeData(`${report.model.path}: ${report.passed ? 'passed' : 'failed'} (${s.failed} failed, ${s.passed} passed, ${s.skipped} skipped)`)}`);
  return `${lines.join('\n')}\n`;
}
