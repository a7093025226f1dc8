// Writes reports-before/: run once on the code before issue 8 (`npx tsx tests/pipeline/make-report-snapshots.ts`).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../helpers/cli-runner.js';
import { reportCases, runReportCase, writeCheckConfig } from './report-cases.js';

const out = path.join(repoRoot, 'tests', 'pipeline', 'reports-before');
fs.mkdirSync(out, { recursive: true });
for (const c of reportCases(writeCheckConfig())) {
  const report = await runReportCase(c);
  fs.writeFileSync(path.join(out, `${c.name}.json`), `${JSON.stringify({ args: c.args, ...(report as object) }, null, 2)}\n`);
  process.stdout.write(`${c.name}: code ${(report as { code: number }).code}\n`);
}
