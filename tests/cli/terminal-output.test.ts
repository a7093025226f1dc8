// What a terminal, a CI log and a pipe get: progress lines on stderr when it is not a terminal,
// tables fitted to COLUMNS, `-` for standard output, and warnings where the figures or the
// comparison need them.

import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditReport } from '../../src/index.js';
import { buildCliOnce, fixturePath, onlyProgressLines, runCliInProcess, spawnCli } from '../helpers/cli-runner.js';

const scratch = fs.mkdtempSync(path.join(tmpdir(), 'condense-terminal-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
beforeAll(() => buildCliOnce());

describe('progress when stderr is not a terminal', () => {
  it('prints a line per stage with the elapsed time on stderr, and the table alone on stdout', async () => {
    const run = await spawnCli(['audit', fixturePath('mnist-mlp.onnx'), '--random', '64']);
    expect(run.code).toBe(0);
    const lines = run.stderr.split('\n').filter(Boolean);
    expect(lines.some((l) => /^condense: collecting statistics( \d+\/64 samples)? \([\d.]+ s elapsed\)$/.test(l)), run.stderr).toBe(true);
    expect(lines.some((l) => l.startsWith('condense: measuring layer 1/'))).toBe(true);
    expect(onlyProgressLines(run.stderr), run.stderr).toBe(true);
    expect(run.stdout).not.toContain('elapsed');
    expect(run.stdout).toMatch(/^layer\s+op\s/m);
  });

  it('prints nothing on stderr with --quiet', async () => {
    const run = await spawnCli(['audit', fixturePath('mnist-mlp.onnx'), '--random', '16', '--quiet']);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
  });
});

describe('tables in a narrow terminal', () => {
  it.each(['vad-like.onnx', 'resnet-planted.onnx', 'mlp-layernorm.onnx'])('keeps every line of the %s audit within COLUMNS=80, reasons wrapped', async (fixture) => {
    const extra = {
      'vad-like.onnx': ['--random', '16', '--input', 'sr=16000', '--batch-axis', 'state=1'],
      'resnet-planted.onnx': ['--random', '16', '--shape', 'input=1x3x16x16'],
      'mlp-layernorm.onnx': ['--random', '16'],
    }[fixture]!;
    const wide = await spawnCli(['audit', fixturePath(fixture), ...extra, '--quiet'], { env: { COLUMNS: '400' } });
    const run = await spawnCli(['audit', fixturePath(fixture), ...extra, '--quiet'], { env: { COLUMNS: '80' } });
    expect(run.code).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines.filter((l) => l.length > 80), run.stdout).toEqual([]);
    // The same words, only laid out differently: nothing is lost to the width.
    const words = (text: string): string[] => text.split(/\s+/).filter((w) => w && !/^-+$/.test(w)).sort();
    expect(Math.max(...wide.stdout.split('\n').map((l) => l.length))).toBeGreaterThan(80);
    const content = (text: string): string[] => words(text).filter((w) => !w.startsWith('mergeable'));
    expect(content(run.stdout)).toEqual(content(wide.stdout));
  });

  it('labels the weight and the output measures apart, so a data-free audit shows weight redundancy', async () => {
    const run = await runCliInProcess(['audit', fixturePath('mlp-relu-planted.onnx')]);
    const [header] = run.stdout.split('\n').filter((l) => l.startsWith('layer '));
    expect(header).toMatch(/w\.eff\s+w\.red\s+out\.eff\s+out\.red/);
    expect(run.stdout).toMatch(/^fc1 .* 17\s+29%\s+-\s+-\s+yes$/m);
  });
});

describe('standard output for reports', () => {
  it('writes the Markdown to stdout for --md - and creates no file named "-"', async () => {
    const cwd = process.cwd();
    process.chdir(scratch);
    try {
      const run = await runCliInProcess(['audit', fixturePath('mlp-relu-planted.onnx'), '--md', '-']);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^### Condensation audit/);
      expect(fs.existsSync(path.join(scratch, '-'))).toBe(false);
    } finally {
      process.chdir(cwd);
    }
  });

  it('refuses two reports on standard output at once', async () => {
    const run = await runCliInProcess(['audit', fixturePath('mlp-relu-planted.onnx'), '--md', '-', '--html', '-']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/both ask for standard output/);
  });
});

describe('warnings', () => {
  it('warns in text and JSON when output measures rest on fewer samples than neurons', async () => {
    const json = JSON.parse((await runCliInProcess(['audit', fixturePath('mnist-mlp.onnx'), '--random', '8', '--json'])).stdout) as AuditReport;
    const wide = json.layers.filter((l) => l.width > 8);
    expect(wide.length).toBeGreaterThan(0);
    for (const l of wide) expect(l.warnings.join(' ')).toMatch(/8 observations, fewer than its \d+ neurons/);
    expect(json.warnings.length).toBe(wide.length);
    const text = (await runCliInProcess(['audit', fixturePath('mnist-mlp.onnx'), '--random', '8'])).stdout;
    expect(text).toMatch(/^warning: .*rank-deficient/m);
    const md = (await runCliInProcess(['audit', fixturePath('mnist-mlp.onnx'), '--random', '8', '--md', '-'])).stdout;
    expect(md).toMatch(/not supported/);
  });

  it('diff warns when the two audits used different thresholds', async () => {
    const a = path.join(scratch, 'a.json');
    const b = path.join(scratch, 'b.json');
    fs.writeFileSync(a, (await runCliInProcess(['audit', fixturePath('mlp-relu-planted.onnx'), '--json'])).stdout);
    fs.writeFileSync(b, (await runCliInProcess(['audit', fixturePath('mlp-relu-planted.onnx'), '--json', '--threshold', '0.5'])).stdout);
    const run = await runCliInProcess(['diff', a, b]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/warning: the reports were made with different similarity thresholds \(0\.95 vs 0\.5\)/);
    const json = await runCliInProcess(['diff', a, b, '--json']);
    expect(json.stderr).toMatch(/^condense: warning: .*similarity thresholds/);
  });
});

describe('--help', () => {
  it.each(['inspect', 'audit', 'prune', 'check', 'series', 'diff'])('of %s ends with two or three examples that run that command', async (command) => {
    const run = await runCliInProcess([command, '--help']);
    expect(run.code).toBe(0);
    const tail = run.stdout.trimEnd().split('\n');
    const at = tail.lastIndexOf('Examples:');
    expect(at).toBeGreaterThan(0);
    const examples = tail.slice(at + 1);
    expect(examples.length).toBeGreaterThanOrEqual(2);
    expect(examples.length).toBeLessThanOrEqual(3);
    for (const e of examples) expect(e).toMatch(new RegExp(`^  \\$ condense ${command} |condense ${command} `));
  });
});
