// The budget flags of `condense prune` (issue 11): a parameter target writes a model of that size
// and says its verified error and top-1 agreement; a target beyond --max-error exits 3 and says
// the error reached; --labels reports accuracy; --sweep prints a monotone curve (and an HTML plot);
// bad budget flags exit 2 naming the flag.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../src/onnx/model-file.js';
import { fixturePath, runCliInProcess } from '../helpers/cli-runner.js';
import { scratchFolder } from '../helpers/scratch-folder.js';

const scratch = scratchFolder('prune-budget');
const MNIST = ['--probe', fixturePath('mnist-probe.npy')];

describe('condense prune with a budget', () => {
  it('writes half the parameters of the MNIST MLP with --target-params 0.5 and prints the verified error and top-1 agreement', async () => {
    const out = path.join(scratch.freshFolder(), 'half.onnx');
    const run = await runCliInProcess(['prune', fixturePath('mnist-mlp.onnx'), ...MNIST, '--target-params', '0.5', '--labels', fixturePath('mnist-probe-labels.npy'), '-o', out]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const before = loadModel(fixturePath('mnist-mlp.onnx')).parameterCount();
    const after = loadModel(out).parameterCount();
    expect(after).toBeLessThanOrEqual(before / 2);
    // The largest cut that reaches the target, not more: one neuron fewer would miss it.
    expect(after).toBeGreaterThan(before / 2 - 800);
    expect(run.stdout).toMatch(/verified on 128 held-out samples never used to fit .*max rel error \d\.\d\de-\d+/s);
    expect(run.stdout).toMatch(/top-1 agreement \d+\.\d\d%/);
    expect(run.stdout).toMatch(/accuracy \d+\.\d\d% -> \d+\.\d\d%/);
    expect(run.stdout).toMatch(/constant on the fit probes only/);
  });

  it('cuts to --target-flops and keeps to --max-accuracy-drop against --labels', async () => {
    const flops = JSON.parse((await runCliInProcess(['prune', fixturePath('mnist-mlp.onnx'), ...MNIST, '--target-flops', '0.5', '--dry-run', '--json'])).stdout) as { budget: { flops: { before: number; after: number }; decidedBy: string } };
    expect(flops.budget.decidedBy).toBe('target-flops');
    expect(flops.budget.flops.after).toBeLessThanOrEqual(flops.budget.flops.before / 2);
    const run = await runCliInProcess(['prune', fixturePath('mnist-mlp.onnx'), ...MNIST, '--labels', fixturePath('mnist-probe-labels.npy'), '--max-accuracy-drop', '0.02', '--dry-run', '--json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as { params: { before: number; after: number }; budget: { accuracy: { original: number; rewritten: number } } };
    const { original, rewritten } = report.budget.accuracy;
    expect(original - rewritten).toBeLessThanOrEqual(0.02 + 1e-12);
    expect(report.params.after).toBeLessThan(report.params.before);
  });

  it('refuses a target whose verified error is above --max-error with exit 3, saying the error reached, and writes nothing', async () => {
    const folder = scratch.freshFolder();
    const run = await runCliInProcess(['prune', fixturePath('mnist-mlp.onnx'), ...MNIST, '--target-params', '0.5', '--max-error', '1e-3', '-o', path.join(folder, 'x.onnx')]);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/the target is reached at a verified error of \d\.\d\de-\d+ .* beyond the budget \(max error 0\.001\); dominated by fc1/);
    expect(fs.readdirSync(folder)).toEqual([]);
  });

  it('keeps to --max-error with the largest verified reduction, as JSON with the search behind it', async () => {
    const run = await runCliInProcess(['prune', fixturePath('two-layer-standard-init.onnx'), '--random', '1024', '--max-error', '1e-2', '--dry-run', '--json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as { fidelity: { maxRelError: number; samples: number }; budget: { maxError: number; verifications: number; layers: { name: string; width: number; widthAfter: number }[] } };
    expect(report.fidelity.maxRelError).toBeLessThanOrEqual(1e-2);
    expect(report.fidelity.samples).toBe(256);
    expect(report.budget.maxError).toBe(1e-2);
    expect(report.budget.verifications).toBeGreaterThan(3);
    const fc1 = report.budget.layers.find((l) => l.name === 'fc1')!;
    expect(fc1.widthAfter).toBeLessThan(fc1.width / 2);
  });

  it('prints a monotone trade-off curve with --sweep, as a table, JSON and an HTML plot, writing no model', async () => {
    const folder = scratch.freshFolder();
    const html = path.join(folder, 'sweep.html');
    const args = ['prune', fixturePath('two-layer-standard-init.onnx'), '--random', '1024', '--sweep', '1e-4,1e-3,1e-2,1e-1'];
    const table = await runCliInProcess([...args, '--html', html]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/budget\s+params removed\s+FLOPs removed\s+verified error/);
    expect(fs.readFileSync(html, 'utf8')).toMatch(/<svg[^]*parameters[^]*<\/svg>/);
    expect(fs.readdirSync(folder)).toEqual(['sweep.html']);
    const json = JSON.parse((await runCliInProcess([...args, '--json'])).stdout) as { output: null; budget: { sweep: { budget: number; paramsRemoved: number; flopsRemoved: number; maxRelError: number }[] } };
    expect(json.output).toBeNull();
    const curve = json.budget.sweep;
    expect(curve.map((p) => p.budget)).toEqual([1e-4, 1e-3, 1e-2, 1e-1]);
    for (const [i, p] of curve.entries()) {
      expect(p.maxRelError).toBeLessThanOrEqual(p.budget);
      if (i > 0) {
        expect(p.paramsRemoved).toBeGreaterThanOrEqual(curve[i - 1]!.paramsRemoved);
        expect(p.flopsRemoved).toBeGreaterThanOrEqual(curve[i - 1]!.flopsRemoved);
      }
    }
    expect(curve.at(-1)!.paramsRemoved).toBeGreaterThan(curve[0]!.paramsRemoved);
  });

  it('says there is nothing to merge within a budget no removal meets, with the smallest error any removal reaches', async () => {
    const folder = scratch.freshFolder();
    const run = await runCliInProcess(['prune', fixturePath('cnn-mnist-default-init.onnx'), '--random', '64', '--max-error', '1e-6', '-o', path.join(folder, 'x.onnx')]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/nothing to merge within the budget \(max rel error 0\.000001\), so no copy was written/);
    expect(run.stdout).toMatch(/the cheapest removal \(in conv1\) already gives a verified error of \d\.\d\de-\d+/);
    expect(fs.readdirSync(folder)).toEqual([]);
  });

  it('exits 2 naming the flag for a bad budget', async () => {
    const model = fixturePath('mnist-mlp.onnx');
    const cases: [string[], RegExp][] = [
      [['--target-params', '1.5'], /^condense: --target-params: expected a fraction in \(0, 1\], got "1\.5"/],
      [['--min-top1', 'x'], /^condense: --min-top1: expected a share in \[0, 1\], got "x"/],
      [['--approximate', '--target-params', '0.5'], /^condense: --approximate: merges every cluster at once/],
      [['--max-accuracy-drop', '0.01'], /^condense: --max-accuracy-drop: needs --labels/],
      [['--labels', fixturePath('mnist-probe-labels.npy')], /^condense: --labels: needs a budget/],
      [['--random', '64', '--labels', fixturePath('mnist-probe-labels.npy'), '--max-accuracy-drop', '0.01'], /^condense: --labels: labels name the classes of probe samples/],
      [['--html', 'x.html'], /^condense: --html: is the trade-off curve of --sweep/],
      [['--sweep', '--target-params', '0.5'], /^condense: --sweep: walks a ladder of error budgets/],
    ];
    for (const [flags, message] of cases) {
      const run = await runCliInProcess(['prune', model, ...(flags.includes('--random') ? [] : MNIST), ...flags, '--dry-run']);
      expect([flags.join(' '), run.code]).toEqual([flags.join(' '), 2]);
      expect(run.stderr).toMatch(message);
    }
  });
});
