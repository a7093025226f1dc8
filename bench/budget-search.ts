// Issue 11: the budget search (`prune --max-error`) against one audit of the same model, on a
// dense layer 4096 wide. Both collect the same statistics; the search adds the ranking (a greedy
// pivoted Cholesky), the refits and the verification runs. Target: at most 3x the audit.
// run.ts calls budgetSearchSection; the measurement runs in a fresh process
// (node --import tsx bench/budget-search.ts measure '{...}').

import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { saveModel } from '../src/onnx/model-file.js';
import { audit } from '../src/pipeline/audit.js';
import { prune } from '../src/pipeline/prune.js';
import { BENCH_DIR, fixed, OUT_DIR, printTable, ROOT, secondsSince } from './bench-support.js';
import { buildMlp } from './generated-models.js';

const TARGET = 3;

interface Measured {
  width: number;
  samples: number;
  auditSeconds: number[];
  searchSeconds: number;
  /** Process CPU seconds (all threads): the shared machine's load moves wall time more. */
  auditCpuSeconds: number[];
  searchCpuSeconds: number;
  verifications: number;
  widthAfter: number;
  maxRelError: number;
  budget: number;
}

async function measure(input: { width: number; samples: number; budget: number }): Promise<Measured> {
  const file = path.join(OUT_DIR, `budget-${input.width}.onnx`);
  // Half the neurons planted as positive multiples of others: exact merges, then ranked removals.
  saveModel(buildMlp({ inputWidth: 256, widths: [input.width], classes: 10, seed: 11, redundancy: 0.5 }).model, file);
  const probe = { random: input.samples, seed: 0 };
  const auditSeconds: number[] = [];
  const auditCpuSeconds: number[] = [];
  const cpu = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  let start = performance.now();
  let cpuStart = cpu();
  await audit(file, { probe });
  auditSeconds.push(secondsSince(start));
  auditCpuSeconds.push(cpu() - cpuStart);
  start = performance.now();
  cpuStart = cpu();
  const result = await prune(file, { output: '', dryRun: true, probe, budget: { maxError: input.budget } });
  const searchSeconds = secondsSince(start);
  const searchCpuSeconds = cpu() - cpuStart;
  // The audit again: the machine is shared, so it gets the better of two.
  start = performance.now();
  cpuStart = cpu();
  await audit(file, { probe });
  auditSeconds.push(secondsSince(start));
  auditCpuSeconds.push(cpu() - cpuStart);
  const layer = result.search!.candidates.find((c) => c.name === 'fc1');
  return { ...input, auditSeconds, searchSeconds, auditCpuSeconds, searchCpuSeconds, verifications: result.search!.verifications, widthAfter: layer?.widthAfter ?? input.width, maxRelError: result.fidelity.maxRelError };
}

/** The bench section: prints the table and adds the verdict. */
export function budgetSearchSection(quick: boolean, results: Record<string, unknown>, verdicts: { target: string; measured: string; isMet: boolean | undefined }[]): void {
  const input = { width: 4096, samples: quick ? 1024 : 2048, budget: 1e-2 };
  const child = spawnSync(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'budget-search.ts'), 'measure', JSON.stringify(input)], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 26, timeout: 1_200_000 });
  const line = child.stdout?.split('\n').reverse().find((l) => l.startsWith('@@result '));
  if (child.status !== 0 || !line) throw new Error(`budget search bench failed: exit ${child.status}\n${(child.stderr ?? '').split('\n').slice(-15).join('\n')}`);
  const r = JSON.parse(line.slice('@@result '.length)) as Measured;
  const auditBest = Math.min(...r.auditSeconds);
  const ratio = r.searchSeconds / auditBest;
  const cpuRatio = r.searchCpuSeconds / Math.min(...r.auditCpuSeconds);
  printTable(
    `Budget search (prune --max-error ${r.budget}, dry run) against one audit: dense 256 -> ${r.width} ReLU layer, half planted multiples, ${r.samples} random probes (seconds; load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} CPUs)`,
    ['audit (best of 2)', 'budget search', 'ratio', 'CPU ratio', 'verifications', `width after`, 'verified error'],
    [[fixed(auditBest), fixed(r.searchSeconds), fixed(ratio), fixed(cpuRatio), r.verifications, `${r.width} -> ${r.widthAfter}`, r.maxRelError.toExponential(2)]],
  );
  results.budget = r;
  verdicts.push({ target: `budget search <= ${TARGET}x one audit (4096-wide layer)`, measured: `${fixed(ratio)}x wall (${fixed(r.searchSeconds)} s against ${fixed(auditBest)} s), ${fixed(cpuRatio)}x CPU; ${r.verifications} verification runs`, isMet: ratio <= TARGET });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv[2] === 'measure') {
  const fs = await import('node:fs');
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const r = await measure(JSON.parse(process.argv[3] ?? '{}') as { width: number; samples: number; budget: number });
  process.stdout.write(`@@result ${JSON.stringify(r)}\n`);
}
