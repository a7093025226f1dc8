// The built `condense` binary run as a child process, as a user runs it: help, the main job, a
// failure, and the two commands the README's quick start tells people to run.

import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCliOnce, fixturePath, onlyProgressLines, repoRoot, spawnCli } from '../helpers/cli-runner.js';

const scratch = fs.mkdtempSync(path.join(tmpdir(), 'condense-binary-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

beforeAll(() => buildCliOnce());

/** The fenced shell commands under the README's "## Quick start" heading, in order. */
function quickStartCommands(): string[] {
  const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Quick start\n');
  expect(start, 'README has a "## Quick start" section').toBeGreaterThanOrEqual(0);
  const rest = readme.slice(start + 1);
  const end = rest.indexOf('\n## ', 1);
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
}

describe('the condense binary', () => {
  it('prints help listing inspect, audit and prune, and exits 0', async () => {
    const { code, stdout, stderr } = await spawnCli(['--help']);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    for (const command of ['inspect', 'audit', 'prune']) expect(stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
  });

  it('prunes a planted fixture into a temporary folder and exits 0', async () => {
    const output = path.join(fs.mkdtempSync(path.join(scratch, 'prune-')), 'small.onnx');
    const { code, stdout, stderr } = await spawnCli(['prune', fixturePath('mlp-tanh-planted.onnx'), '-o', output]);
    expect(onlyProgressLines(stderr), stderr).toBe(true);
    expect(code).toBe(0);
    expect(stdout).toContain(`-> ${output}`);
    expect(fs.readdirSync(path.dirname(output))).toEqual(['small.onnx']);
  });

  it('exits 2 with one line on stderr for a file that is not a model', async () => {
    const file = path.join(scratch, 'notes.onnx');
    fs.writeFileSync(file, 'not a model\n');
    const { code, stdout, stderr } = await spawnCli(['inspect', file]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(new RegExp(`^condense: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: [^\\n]*\\n$`));
  });
});

describe("the README's quick start", () => {
  it('has exactly two commands, the second being the test command', () => {
    const commands = quickStartCommands();
    expect(commands).toHaveLength(2);
    expect(commands[1]).toBe('npm ci && npm test');
  });

  it('runs the main job as written (after npm ci), writing the pruned model into the working folder', async () => {
    const [mainJob] = quickStartCommands();
    const prefix = 'npm ci && npx condense ';
    expect(mainJob!.startsWith(prefix)).toBe(true);
    const condensePart = mainJob!.slice(prefix.length);
    // Split on spaces: the README's command has no quoting, and must not grow any for this to hold.
    expect(condensePart).not.toMatch(/["'\\$`|;&<>]/);
    const args = condensePart.split(/\s+/);
    const output = args[args.indexOf('-o') + 1]!;
    expect(path.isAbsolute(output)).toBe(false);

    // A working folder that sees the repository's fixtures, so the relative output lands there.
    const cwd = fs.mkdtempSync(path.join(scratch, 'readme-'));
    fs.symlinkSync(path.join(repoRoot, 'fixtures'), path.join(cwd, 'fixtures'), 'dir');
    const { code, stderr } = await spawnCli(args, { cwd });
    expect(onlyProgressLines(stderr), stderr).toBe(true);
    expect(code).toBe(0);
    expect(fs.statSync(path.join(cwd, output)).size).toBeGreaterThan(0);
    expect(fs.readdirSync(cwd).sort()).toEqual(['fixtures', output].sort());
  });
});
