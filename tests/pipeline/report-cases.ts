// The command lines whose JSON reports must not change when the middle floor is rebuilt: every
// fixture audited with and without probes and pruned (dry run), plus an approximate prune, a
// check with a prune rule and a series. make-report-snapshots.ts ran them on the code before
// issue 8 and stored the reports in reports-before/; reports-unchanged.test.ts runs them now.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fixturePath, repoRoot, runCliInProcess, type CliResult } from '../helpers/cli-runner.js';

export interface ReportCase {
  /** File name in reports-before/ (without .json). */
  name: string;
  args: string[];
}

/** Shapes for models with dynamic spatial dims (what --random needs). */
const shapes: Record<string, string> = {
  'cnn-exporter.onnx': 'input=1x3x16x16',
  'depthwise-separable.onnx': 'input=1x3x16x16',
  'resnet-planted.onnx': 'input=1x3x16x16',
  'se-block.onnx': 'input=1x3x16x16',
};

/** What --random needs besides a shape for models whose inputs are not one float batch (issue 13; their snapshots were made after issue 8). */
const probeArgs: Record<string, string[]> = {
  'tokens-tiny.onnx': ['--shape', 'input_ids=1x8', '--shape', 'attention_mask=1x8', '--shape', 'token_type_ids=1x8'],
  'vad-like.onnx': ['--input', 'sr=16000', '--batch-axis', 'state=1'],
};

/**
 * Fixtures added with issue 9 (export-style and quantized CNNs): the coupling work of that issue
 * changes what the commands report on them, so no report from before it can stand for them. Their
 * expectations live in fixtures/expected.json and tests/fixtures/export-cnn-fixtures.test.ts.
 */
const addedAfterSnapshots = new Set(['mobilenet-v2.onnx', 'mobilenet-v3.onnx', 'resnet-downsample.onnx', 'unet-concat.onnx', 'tf2onnx-nhwc.onnx', 'efficientnet-mbconv.onnx', 'qdq-cnn.onnx', 'conv-integer.onnx']);

export function fixtureModels(): string[] {
  return fs.readdirSync(path.join(repoRoot, 'fixtures')).filter((f) => f.endsWith('.onnx') && !addedAfterSnapshots.has(f)).sort();
}

export function reportCases(configPath: string): ReportCase[] {
  const cases: ReportCase[] = [];
  for (const model of fixtureModels()) {
    const file = `fixtures/${model}`;
    const stem = model.replace(/\.onnx$/, '');
    const shape = shapes[model] ? ['--shape', shapes[model]!] : probeArgs[model] ?? [];
    cases.push({ name: `audit-weights-${stem}`, args: ['audit', file, '--json'] });
    cases.push({ name: `audit-probed-${stem}`, args: ['audit', file, '--random', '48', ...shape, '--json'] });
    cases.push({ name: `prune-${stem}`, args: ['prune', file, '--random', '64', ...shape, '--dry-run', '--json'] });
  }
  cases.push({ name: 'prune-approximate-mlp-relu-planted', args: ['prune', 'fixtures/mlp-relu-planted.onnx', '--random', '64', '--approximate', '--max-error', '1', '--dry-run', '--json'] });
  cases.push({ name: 'check-prune-rule-mlp-relu-planted', args: ['check', 'fixtures/mlp-relu-planted.onnx', '--random', '64', '--config', configPath, '--json'] });
  cases.push({ name: 'series-two-layer-small-init', args: ['series', ...[0, 1, 2, 3, 4].map((i) => `fixtures/series/two-layer-small-init-ckpt-${i}.onnx`), '--json'] });
  return cases;
}

/** A check config with layer rules and a prune rule (written to a temporary folder). */
export function writeCheckConfig(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-reports-'));
  const file = path.join(dir, 'condense.config.json');
  fs.writeFileSync(file, JSON.stringify({ rules: { maxRedundancy: 0.5, maxStaticShare: 0.5, prune: { maxParameterShare: 0.9, maxRelativeError: 1e-4 } } }));
  return file;
}

/** What the report says, without what differs between runs and machines (temporary paths). */
export function normaliseReport(result: CliResult): unknown {
  const body = result.code === 0 || result.code === 1 ? JSON.parse(result.stdout) : { code: result.code, stderr: result.stderr.trim() };
  return JSON.parse(JSON.stringify({ code: result.code, report: body }).replaceAll(os.tmpdir(), '<tmp>').replace(/condense-reports-[A-Za-z0-9]+/g, 'condense-reports-X'));
}

export async function runReportCase(c: ReportCase): Promise<unknown> {
  return normaliseReport(await runCliInProcess(c.args));
}

export { fixturePath };
