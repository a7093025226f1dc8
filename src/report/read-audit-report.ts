// Reading a saved audit report (`condense audit --json`, or the `audit` inside a `condense check
// --json` report) for baselines and diffs. Checks the fields those use; extra fields are fine.

import { ConfigError, joinProblems } from '../errors.js';
import { readJsonFile } from '../files/json-file.js';
import { REPORT_SCHEMA_VERSION, type AuditReport } from './audit-report.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNumberOrNull = (v: unknown): boolean => v === null || typeof v === 'number';

/** Validates parsed JSON as an audit report; `file` names it in the error, which lists every problem. */
export function parseAuditReport(json: unknown, file: string): AuditReport {
  const report = isObject(json) && json.kind === 'check' && isObject(json.audit) ? json.audit : json;
  if (!isObject(report)) throw new ConfigError(file, 'expected an audit report (condense audit --json): a JSON object');
  const problems: string[] = [];
  if (report.kind !== 'audit') problems.push(`"kind" is ${JSON.stringify(report.kind)}, expected "audit" (a report from condense audit --json)`);
  if (typeof report.schemaVersion !== 'number' || report.schemaVersion < 1 || report.schemaVersion > REPORT_SCHEMA_VERSION) {
    problems.push(`"schemaVersion" is ${JSON.stringify(report.schemaVersion)}, expected 1${REPORT_SCHEMA_VERSION > 1 ? ` to ${REPORT_SCHEMA_VERSION}` : ''}`);
  }
  if (!Array.isArray(report.layers)) problems.push('"layers" is missing or not an array');
  else {
    report.layers.forEach((l: unknown, i: number) => {
      const at = `"layers[${i}]`;
      if (!isObject(l)) return problems.push(`${at}" is not an object`);
      if (typeof l.name !== 'string') problems.push(`${at}.name" is not a string`);
      if (typeof l.width !== 'number') problems.push(`${at}.width" is not a number`);
      if (typeof l.static !== 'number') problems.push(`${at}.static" is not a number`);
      for (const key of ['effectiveWidth', 'redundancy'] as const) {
        const v = l[key];
        if (!isObject(v) || typeof v.weight !== 'number' || !isNumberOrNull(v.output)) problems.push(`${at}.${key}" is not { weight: number, output: number | null }`);
      }
    });
  }
  if (!isObject(report.model) || typeof report.model.path !== 'string') problems.push('"model.path" is missing');
  if (problems.length) throw new ConfigError(file, joinProblems(problems));
  return report as unknown as AuditReport;
}

/** Reads and validates an audit report file. */
export function readAuditReport(file: string): AuditReport {
  return parseAuditReport(readJsonFile(file, 'expected a report from condense audit --json'), file);
}
