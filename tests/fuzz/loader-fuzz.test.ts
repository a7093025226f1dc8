// A seeded sample of the loader fuzzer (fuzz/): a few hundred mutated models through inspect and
// audit in process. None may end in an internal error (exit 70), an undocumented exit code or an
// error message of more than one line. `npm run fuzz -- --cases 10000` runs the full search.

import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeCase, MUTATIONS, seedModels } from '../../fuzz/mutate-model.js';
import { problemWith, runCase } from '../../fuzz/run-case.js';
import { repoRoot } from '../helpers/cli-runner.js';

const scratch = fs.mkdtempSync(path.join(tmpdir(), 'condense-fuzz-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

const CASES = 300;

describe('loader fuzzing (seeded sample)', () => {
  it(`ends ${CASES} mutated models with a documented exit code and a one-line message, never exit 70`, async () => {
    const seeds = seedModels(repoRoot, undefined, 12);
    const problems: string[] = [];
    const codes = new Map<number, number>();
    const mutations = new Set<string>();
    for (let i = 0; i < CASES; i++) {
      const c = makeCase(seeds, 12, i);
      mutations.add(c.mutation);
      const outcome = await runCase(c, scratch);
      for (const command of outcome.commands) codes.set(command.code, (codes.get(command.code) ?? 0) + 1);
      const problem = problemWith(outcome);
      if (problem) problems.push(problem);
    }
    expect(problems).toEqual([]);
    // The sample reaches both sides: models still valid (0) and refused as bad input (2).
    expect(codes.get(0)).toBeGreaterThan(20);
    expect(codes.get(2)).toBeGreaterThan(50);
    expect(mutations.size).toBe(MUTATIONS.length);
  }, 240_000);
});
