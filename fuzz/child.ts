// One fuzz worker: runs cases [from, to) in process and prints one JSON line per case (with this
// process's peak RSS so far), so the parent can spot a hang by silence and kill the worker.

import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeCase, seedModels } from './mutate-model.js';
import { runCase } from './run-case.js';

const [from, to, seed, corpusCount] = process.argv.slice(2).map(Number) as [number, number, number, number];
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const seeds = seedModels(root, undefined, corpusCount);
const scratch = fs.mkdtempSync(path.join(tmpdir(), 'condense-fuzz-worker-'));
try {
  for (let i = from; i < to; i++) {
    // Announce the case first: if it hangs or dies, the parent knows which one.
    process.stdout.write(`${JSON.stringify({ start: i })}\n`);
    const outcome = await runCase(makeCase(seeds, seed, i), scratch);
    process.stdout.write(`${JSON.stringify({ ...outcome, peakRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`);
  }
} finally {
  fs.rmSync(scratch, { recursive: true, force: true });
}
