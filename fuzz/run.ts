// The loader fuzzer, on demand: `npm run fuzz -- --cases 10000 [--seed 1] [--workers 2]
// [--timeout 60] [--corpus 120]`. Cases run in child processes (a batch each), every case under a
// timeout (a silent worker is killed and its case counted as a hang), and the peak RSS of each
// worker is recorded. Prints the outcome table: exit codes per mutation, internal errors, hangs,
// multi-line messages and peak memory. Exits 1 when anything but exit 0/2/4 with one line occurred.

import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { MUTATIONS } from './mutate-model.js';
import { problemWith, type CaseOutcome } from './run-case.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
};
const cases = option('cases', 1000);
const seed = option('seed', 1);
const workers = option('workers', 2);
const timeoutMs = option('timeout', 60) * 1000;
const corpusCount = option('corpus', 120);
const batch = option('batch', 250);

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const outcomes: CaseOutcome[] = [];
const hangs: number[] = [];
const crashes: string[] = [];
let peakRss = 0;
let next = 0;
const started = Date.now();

/** Runs cases [from, to) in one worker, restarting after a hang or crash. */
async function runRange(from: number, to: number): Promise<void> {
  while (from < to) {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'fuzz', 'child.ts'), String(from), String(to), String(seed), String(corpusCount)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let current = from;
    let timer: NodeJS.Timeout | undefined;
    let hung = false;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        hung = true;
        child.kill('SIGKILL');
      }, timeoutMs);
    };
    arm();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
    for await (const line of createInterface({ input: child.stdout })) {
      arm();
      const message = JSON.parse(line) as { start?: number } & CaseOutcome & { peakRssBytes: number };
      if (message.start !== undefined) {
        current = message.start;
        continue;
      }
      outcomes.push(message);
      peakRss = Math.max(peakRss, message.peakRssBytes);
      current = message.index + 1;
    }
    const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', (c) => resolve(c))));
    clearTimeout(timer);
    if (current >= to && !hung && code === 0) return;
    if (hung) hangs.push(current);
    else crashes.push(`case ${current}: worker exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    from = current + 1;
  }
}

async function worker(): Promise<void> {
  while (next < cases) {
    const from = next;
    next = Math.min(cases, next + batch);
    await runRange(from, next);
    process.stderr.write(`\r${outcomes.length}/${cases} cases, ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
}

await Promise.all(Array.from({ length: workers }, worker));
process.stderr.write('\n');

// The table: per mutation, how many commands ended with each exit code.
const codes = [...new Set(outcomes.flatMap((o) => o.commands.map((c) => c.code)))].sort((a, b) => a - b);
const rows = MUTATIONS.map((m) => {
  const mine = outcomes.filter((o) => o.mutation === m);
  const count = (code: number): number => mine.reduce((n, o) => n + o.commands.filter((c) => c.code === code).length, 0);
  return [m, String(mine.length), ...codes.map((c) => String(count(c)))];
});
const header = ['mutation', 'cases', ...codes.map((c) => `exit ${c}`)];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
const problems = outcomes.map(problemWith).filter((p): p is string => p !== undefined);
const internal = outcomes.filter((o) => o.commands.some((c) => c.code === 70)).length;
const multiLine = outcomes.filter((o) => o.commands.some((c) => c.stderrLines > 1)).length;
const slowest = outcomes.flatMap((o) => o.commands.map((c) => ({ ms: c.ms, what: `case ${o.index} ${o.mutation} ${c.command}` }))).sort((a, b) => b.ms - a.ms)[0];
console.log([
  `loader fuzz: ${outcomes.length} of ${cases} cases (seed ${seed}, ${workers} workers), ${outcomes.reduce((n, o) => n + o.commands.length, 0)} commands, ${((Date.now() - started) / 1000).toFixed(0)} s`,
  '',
  line(header),
  line(widths.map((w) => '-'.repeat(w))),
  ...rows.map(line),
  '',
  `internal errors (exit 70): ${internal}`,
  `hangs (no answer within ${timeoutMs / 1000} s): ${hangs.length}${hangs.length ? ` (cases ${hangs.join(', ')})` : ''}`,
  `worker crashes: ${crashes.length}`,
  `multi-line messages: ${multiLine}`,
  `peak RSS of a worker: ${(peakRss / 2 ** 20).toFixed(0)} MiB`,
  slowest ? `slowest command: ${slowest.ms.toFixed(0)} ms (${slowest.what})` : '',
  ...problems.slice(0, 20).map((p) => `problem: ${p}`),
  ...crashes.slice(0, 10).map((c) => `crash: ${c}`),
].join('\n'));
process.exitCode = problems.length || hangs.length || crashes.length ? 1 : 0;
