// The check result as JUnit XML, the format CI systems (GitHub, GitLab, Jenkins) show as test
// results: one testsuite, one testcase per rule and layer, failures and skips with their messages.

import type { RuleOutcome } from '../pipeline/check.js';
import type { CheckReport } from './check-report.js';
import { xmlText } from './escape-text.js';

function testcase(o: RuleOutcome, suite: string): string {
  const name = xmlText(o.layer ?? '(model)');
  const classname = xmlText(`${suite}.${o.rule}`);
  const open = `    <testcase classname="${classname}" name="${name}" time="0"`;
  if (o.status === 'pass') return `${open}>\n      <system-out>${xmlText(o.message)}</system-out>\n    </testcase>`;
  if (o.status === 'skip') return `${open}>\n      <skipped message="${xmlText(o.message)}"/>\n    </testcase>`;
  return `${open}>\n      <failure message="${xmlText(o.message)}" type="${xmlText(o.rule)}">${xmlText(`${o.rule}${o.layer ? ` (${o.layer})` : ''}: ${o.message}`)}</failure>\n    </testcase>`;
}

/** JUnit XML for a check report; `seconds` is the time the check took. */
export function renderJunitReport(report: CheckReport, seconds = 0): string {
  const s = report.summary;
  const total = report.results.length;
  const suite = 'condense.check';
  const cases = report.results.map((o) => testcase(o, suite));
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="condense check" tests="${total}" failures="${s.failed}" errors="0" skipped="${s.skipped}" time="${seconds.toFixed(3)}">`,
    `  <testsuite name="${xmlText(`condense check: ${report.model.path}`)}" tests="${total}" failures="${s.failed}" errors="0" skipped="${s.skipped}" time="${seconds.toFixed(3)}">`,
    '    <properties>',
    `      <property name="model" value="${xmlText(report.model.path)}"/>`,
    ...(report.config ? [`      <property name="config" value="${xmlText(report.config)}"/>`] : []),
    ...(report.baseline ? [`      <property name="baseline" value="${xmlText(report.baseline)}"/>`] : []),
    '    </properties>',
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
