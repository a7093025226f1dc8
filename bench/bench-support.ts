// What the benchmark's parts share: timers, child processes (each measurement that needs its own
// memory high-water mark or a cold start runs in one), the numpy + SciPy side, and table printing.

import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.dirname(BENCH_DIR);
export const OUT_DIR = path.join(BENCH_DIR, 'out');
const RESULT_MARK = '@@bench-result ';

/** Seconds since `start` (a performance.now() reading). */
export function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}

/** Runs `body` `times` times and returns the fastest run in seconds and the last result. */
export async function fastest<T>(times: number, body: () => Promise<T> | T): Promise<{ seconds: number; result: T }> {
  let best = Infinity;
  let result!: T;
  for (let k = 0; k < times; k++) {
    const start = performance.now();
    result = await body();
    best = Math.min(best, secondsSince(start));
  }
  return { seconds: best, result };
}

/** Peak resident memory of this process so far, in MiB. */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** A child's answer: what it printed last with printResult. */
export function printResult(value: unknown): void {
  process.stdout.write(`${RESULT_MARK}${JSON.stringify(value)}\n`);
}

/** Runs bench/child.ts `task` in a fresh Node.js process and returns its result. */
export function runChild<T>(task: string, input: unknown, timeoutSeconds = 600, env?: NodeJS.ProcessEnv): T {
  const child = spawnSync(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'child.ts'), task, JSON.stringify(input)], {
    cwd: ROOT,
    ...(env ? { env } : {}),
    encoding: 'utf8',
    maxBuffer: 1 << 28,
    timeout: timeoutSeconds * 1000,
  });
  const line = child.stdout?.split('\n').reverse().find((l) => l.startsWith(RESULT_MARK));
  if (child.status !== 0 || !line) {
    const why = child.error ? child.error.message : `exit ${child.status}${child.signal ? ` (${child.signal})` : ''}`;
    throw new Error(`bench child "${task}" failed: ${why}\n${(child.stderr ?? '').split('\n').filter((l) => !/^npm warn/.test(l)).slice(-15).join('\n')}`);
  }
  return JSON.parse(line.slice(RESULT_MARK.length)) as T;
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Debian's python with numpy and scipy (the `python3` on PATH may be another one). */
export const PYTHON = ['/usr/bin/python3', 'python3'].find((candidate) => {
  try {
    execFileSync(candidate, ['-c', 'import numpy, scipy.cluster.hierarchy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
});

/** Runs bench/numpy_pipeline.py with `args`; undefined when no python with numpy and scipy is found. */
export function runPython<T>(args: string[]): T | undefined {
  if (!PYTHON) return undefined;
  const output = execFileSync(PYTHON, [path.join(BENCH_DIR, 'numpy_pipeline.py'), ...args], { encoding: 'utf8', maxBuffer: 1 << 28, env: { ...process.env, PYTHONUNBUFFERED: '1' } });
  return JSON.parse(output) as T;
}

/** Prints a table: a header row, then rows, columns padded to fit. */
export function printTable(title: string, header: string[], rows: (string | number)[][]): void {
  const text = rows.map((r) => r.map((c) => String(c)));
  const widths = header.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  console.log(`\n${title}`);
  console.log(header.map((h, i) => h.padEnd(widths[i]!)).join('  '));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of text) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
}

export function fixed(x: number | undefined, digits = 2): string {
  return x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

/** Labels renumbered by first appearance, so two partitions compare as arrays. */
export function canonicalLabels(labels: ArrayLike<number>): number[] {
  const seen = new Map<number, number>();
  return Array.from(labels, (l) => {
    if (!seen.has(l)) seen.set(l, seen.size);
    return seen.get(l)!;
  });
}
