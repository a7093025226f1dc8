// In-process CLI runs for the report and pipeline tests, with a controllable environment (the
// GitHub Actions annotations depend on GITHUB_ACTIONS) and a scratch folder per test file.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../../cli/program.js';

export { fixturePath, repoRoot } from '../helpers/cli-runner.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `condense <args>` in process; `env` replaces process.env for the run. */
export async function condense(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    isStderrTTY: false,
    progress: 'off',
    env,
  });
  return { code, stdout, stderr };
}

/** A fresh temporary folder. */
export function scratchDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `condense-${prefix}-`));
}
