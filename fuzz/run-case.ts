// Runs one fuzz case through the command line in this process (a fresh program per command,
// output captured) and says how each command ended: what the fuzz test and the fuzz script share.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli } from '../cli/program.js';
import { commandsFor, writeCase, type FuzzCase } from './mutate-model.js';

export interface CommandOutcome {
  command: string;
  code: number;
  /** Lines on stderr (a failure must say what is wrong in exactly one). */
  stderrLines: number;
  /** The first stderr line, for the report of anything unexpected. */
  message: string;
  ms: number;
}

export interface CaseOutcome {
  index: number;
  seedModel: string;
  mutation: string;
  commands: CommandOutcome[];
}

/** Writes the case under `scratch`, runs its commands, removes the files, and returns how each ended. */
export async function runCase(c: FuzzCase, scratch: string): Promise<CaseOutcome> {
  const folder = path.join(scratch, `case-${c.index}`);
  const file = writeCase(c, folder);
  const commands: CommandOutcome[] = [];
  try {
    for (const args of commandsFor(c, file)) {
      let stderr = '';
      const started = performance.now();
      const code = await runCli(args, { stdout: () => {}, stderr: (t) => { stderr += t; }, isStderrTTY: false });
      const lines = stderr.split('\n').filter((l) => l !== '');
      commands.push({ command: args.filter((a) => a !== file).join(' '), code, stderrLines: lines.length, message: (lines[0] ?? '').slice(0, 300), ms: performance.now() - started });
    }
  } finally {
    fs.rmSync(folder, { recursive: true, force: true });
  }
  return { index: c.index, seedModel: c.seedModel, mutation: c.mutation, commands };
}

/** Exit codes a bad model may end with: 0 (still valid), 2 (bad input), 4 (onnxruntime refused it). */
export const EXPECTED_CODES = new Set([0, 2, 4]);

/** What is wrong with an outcome (an internal error, an undocumented code, a multi-line message), or undefined. */
export function problemWith(o: CaseOutcome): string | undefined {
  for (const c of o.commands) {
    if (!EXPECTED_CODES.has(c.code)) return `case ${o.index} (${o.mutation} of ${path.basename(path.dirname(o.seedModel))}/${path.basename(o.seedModel)}): ${c.command} exited ${c.code}: ${c.message}`;
    if (c.stderrLines > 1) return `case ${o.index} (${o.mutation}): ${c.command} printed ${c.stderrLines} lines: ${c.message}`;
  }
  return undefined;
}
