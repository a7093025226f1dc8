// The measuring commands' n x n matrices on transparent huge pages. On Linux with THP in "madvise"
// mode (the common default), memory comes in 4 KiB pages unless the allocator asks otherwise, and
// each first touch of a fresh 4 KiB page is a page fault: for a 4096-wide layer's 128 MiB cosine
// matrix, 0.35-0.45 s on the VM docs/performance.md was measured on, against 0.01 s for memory
// already paged in. numpy asks for huge pages for its large arrays; Node.js and onnxruntime do not,
// but glibc's malloc does when the tunable glibc.malloc.hugetlb=1 is set, which glibc reads only at
// process start. So `condense audit|prune|check|collect|series` re-runs itself once with the
// tunable added (about 50 ms on a quiet machine), where that can help: Linux, glibc, THP "madvise".
// CONDENSE_HUGE_PAGES=0 turns it off; a GLIBC_TUNABLES that already sets hugetlb is left alone.
// This file imports nothing of ours, so it runs before the library (and onnxruntime) loads.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

/** The glibc tunable the re-run adds. */
export const HUGE_PAGES_TUNABLE = 'glibc.malloc.hugetlb=1';

// Commands that build n x n matrices or run statistics sessions; the rest start once, as they are.
const MEASURING_COMMANDS = new Set(['audit', 'prune', 'check', 'collect', 'series']);

/**
 * The environment to re-run `args` under, or undefined when re-running would not help: another
 * command, an opt-out, a tunable already set, not glibc, or THP not in "madvise" mode ("always"
 * gives huge pages anyway; "never" gives none).
 */
export function hugePagesEnvironment(args: readonly string[], env: NodeJS.ProcessEnv = process.env, system: () => HugePagesSystem = currentSystem): NodeJS.ProcessEnv | undefined {
  const command = args.find((a) => !a.startsWith('-'));
  if (!command || !MEASURING_COMMANDS.has(command)) return undefined;
  if (env.CONDENSE_HUGE_PAGES === '0' || /glibc\.malloc\.hugetlb=/.test(env.GLIBC_TUNABLES ?? '')) return undefined;
  const { platform, isGlibc, transparentHugePages } = system();
  if (platform !== 'linux' || !isGlibc || transparentHugePages !== 'madvise') return undefined;
  return { ...env, GLIBC_TUNABLES: env.GLIBC_TUNABLES ? `${env.GLIBC_TUNABLES}:${HUGE_PAGES_TUNABLE}` : HUGE_PAGES_TUNABLE };
}

/** Re-runs this process under hugePagesEnvironment and exits with its status; returns when no re-run is wanted. */
export function rerunWithHugePages(args: readonly string[]): void {
  const env = hugePagesEnvironment(args);
  if (!env) return;
  const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env });
  if (child.error) return; // could not start: run here, on small pages
  if (child.signal) process.kill(process.pid, child.signal);
  process.exit(child.status ?? 1);
}

/** What decides whether the tunable can help. */
export interface HugePagesSystem {
  platform: string;
  isGlibc: boolean;
  /** The bracketed mode of /sys/kernel/mm/transparent_hugepage/enabled: always, madvise or never. */
  transparentHugePages: string | undefined;
}

/** This machine's platform, C library and transparent huge page mode. */
export function currentSystem(): HugePagesSystem {
  return { platform: process.platform, isGlibc: process.platform === 'linux' && isGlibc(), transparentHugePages: transparentHugePagesMode() };
}

function isGlibc(): boolean {
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return typeof header?.glibcVersionRuntime === 'string';
}

function transparentHugePagesMode(): string | undefined {
  try {
    return /\[(\w+)\]/.exec(fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}
