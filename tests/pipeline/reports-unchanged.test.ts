// The rebuilt middle floor (one measurement path, the op table, structured blockers, dependency
// groups) must not change what the commands report on any fixture: each report made before
// issue 8 (reports-before/, made by make-report-snapshots.ts on that code) is contained in
// today's report for the same command line; fields may be added, none changed or dropped, except
// the changes listed in INTENDED, each with its reason.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { reportCases, runReportCase, writeCheckConfig } from './report-cases.js';

const before = path.join(import.meta.dirname, 'reports-before');

/** Paths where `after` differs from `before` or lacks one of its fields (extra fields in `after` are fine). */
function differences(before: unknown, after: unknown, at = '$'): string[] {
  if (Array.isArray(before)) {
    if (!Array.isArray(after)) return [`${at}: expected an array`];
    if (after.length !== before.length) return [`${at}: ${before.length} entries before, ${after.length} now`];
    return before.flatMap((b, i) => differences(b, after[i], `${at}[${i}]`));
  }
  if (before && typeof before === 'object') {
    if (!after || typeof after !== 'object' || Array.isArray(after)) return [`${at}: expected an object`];
    return Object.entries(before).flatMap(([k, v]) => (k in after ? differences(v, (after as Record<string, unknown>)[k], `${at}.${k}`) : [`${at}.${k}: missing now`]));
  }
  return Object.is(before, after) ? [] : [`${at}: ${JSON.stringify(before)} before, ${JSON.stringify(after)} now`];
}

/**
 * Values that changed on purpose since the snapshots: [case name pattern, before, now, why]. A
 * string field equal to `before` in a matching case's stored report is read as `now`.
 */
const INTENDED: [RegExp, string, string, string][] = [
  [/tokens-tiny/, 'random Gaussian (seed 0)', 'random token ids (seed 0)', 'random probes of a token model are token ids, not Gaussian floats'],
  [/tokens-tiny/, 'random Gaussian (seed 1000003), drawn apart from the fitting samples', 'random token ids (seed 1000003), drawn apart from the fitting samples', 'the same for the held-out draw'],
];

function withIntended(name: string, value: unknown): unknown {
  if (typeof value === 'string') return INTENDED.find(([re, before]) => re.test(name) && before === value)?.[2] ?? value;
  if (Array.isArray(value)) return value.map((v) => withIntended(name, v));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withIntended(name, v)]));
  return value;
}

describe('reports on every fixture', () => {
  const cases = reportCases(writeCheckConfig());

  it('cover every fixture model and every stored report', () => {
    const stored = fs.readdirSync(before).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, '')).sort();
    expect(cases.map((c) => c.name).sort()).toEqual(stored);
  });

  it('find the comparison able to fail on a changed, dropped or shortened field', () => {
    expect(differences({ a: 1, b: [1, 2] }, { a: 1, b: [1, 2], c: 3 })).toEqual([]);
    expect(differences({ a: 1 }, { a: 2 })).toEqual(['$.a: 1 before, 2 now']);
    expect(differences({ a: 1 }, {})).toEqual(['$.a: missing now']);
    expect(differences({ b: [1, 2] }, { b: [1] })).toEqual(['$.b: 2 entries before, 1 now']);
  });

  for (const c of cases) {
    it(`say what they said before: ${c.args.join(' ').replace(/\S*condense-reports-\S*/, 'condense.config.json')}`, async () => {
      const stored = JSON.parse(fs.readFileSync(path.join(before, `${c.name}.json`), 'utf8')) as { args: string[] };
      const { args: _args, ...expected } = stored;
      const now = await runReportCase(c);
      expect(differences(withIntended(c.name, expected), now)).toEqual([]);
    }, 60_000);
  }
});
