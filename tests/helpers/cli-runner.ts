// Runs the `condense` command line for tests: in process (a fresh program per call, output
// captured, exit code returned) or as the built binary in a child process.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../cli/program.js';

/** What one run of the CLI left behind. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const repoRoot = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** The built entry point that `npx condense` runs. */
export const binaryPath = path.join(repoRoot, 'dist', 'cli', 'main.js');

/** A file in fixtures/, as an absolute path. */
export function fixturePath(name: string): string {
  return path.join(repoRoot, 'fixtures', name);
}

/**
 * Runs `condense <args>` in this process with progress off, so stderr holds only messages and
 * errors (tests/cli/progress.test.ts runs the binary to see the progress lines a CI log gets).
 */
export async function runCliInProcess(args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    isStderrTTY: false,
    progress: 'off',
  });
  return { code, stdout, stderr };
}

/** Runs `node dist/cli/main.js <args>` in `cwd` (default: the repository root). Call buildCliOnce first. */
export function spawnCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...options.env };
    const child = spawn(process.execPath, [binaryPath, ...args], { cwd: options.cwd ?? repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === null) reject(new Error(`condense ${args.join(' ')} was killed by ${signal}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

/** True when every line of `stderr` is a progress line (what a CI log gets while a command runs). */
export function onlyProgressLines(stderr: string): boolean {
  return stderr.split('\n').filter(Boolean).every((line) => /^condense: .* \([\d.]+ s elapsed\)$/.test(line));
}

/** Newest modification time among the TypeScript sources that dist/ is built from. */
function newestSourceTime(): number {
  let newest = 0;
  const visit = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) visit(full);
      else if (entry.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(full).mtimeMs);
    }
  };
  visit(path.join(repoRoot, 'src'));
  visit(path.join(repoRoot, 'cli'));
  for (const file of ['tsconfig.json', 'package.json']) newest = Math.max(newest, fs.statSync(path.join(repoRoot, file)).mtimeMs);
  return newest;
}

/**
 * Builds dist/ with the project's tsc (what `npx tsc -p tsconfig.json` runs) when dist/cli/main.js
 * is missing or older than a source; throws with the compiler's output if the build fails.
 */
export function buildCliOnce(): void {
  const builtAt = fs.existsSync(binaryPath) ? fs.statSync(binaryPath).mtimeMs : -1;
  if (builtAt >= newestSourceTime()) return;
  const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: repoRoot, encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`tsc -p tsconfig.json failed (exit ${result.status ?? result.signal}):\n${result.stdout}${result.stderr}`);
  }
}
