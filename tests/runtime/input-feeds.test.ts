// Inputs that are not one float batch: pinned values (--input), batch axes other than the first
// (--batch-axis), recurrent state fed zeros, and token-like integer inputs drawn as a model
// accepts them. Run on the voice-activity-like and token fixtures in onnxruntime.

import { describe, expect, it } from 'vitest';
import { DataType } from '../../src/ir/data-type.js';
import { loadModel, type AuditReport } from '../../src/index.js';
import { integerFill, moveSampleAxis, parsePinnedValue } from '../../src/runtime/input-feeds.js';
import { randomProbes } from '../../src/runtime/probe-data.js';
import { fixturePath, runCliInProcess } from '../helpers/cli-runner.js';

describe('pinned values', () => {
  it('parses scalars and nested arrays, and refuses ragged or non-numeric text', () => {
    expect(parsePinnedValue('16000')).toEqual({ dims: [], values: [16000] });
    expect(parsePinnedValue('[[1, 2], [3, 4], [5, 6]]')).toEqual({ dims: [3, 2], values: [1, 2, 3, 4, 5, 6] });
    expect(parsePinnedValue('[[1, 2], [3]]')).toBeUndefined();
    expect(parsePinnedValue('sixteen')).toBeUndefined();
    expect(parsePinnedValue('[]')).toBeUndefined();
  });
});

describe('moving the sample axis', () => {
  it('puts sample i of a [n, 2, 3] layout at [:, i, :] of a [2, n, 3] layout', () => {
    const n = 4;
    const data = Float32Array.from({ length: n * 2 * 3 }, (_, i) => i);
    const moved = moveSampleAxis(data, n, [2, 3], 1);
    for (let i = 0; i < n; i++) {
      for (let a = 0; a < 2; a++) {
        for (let c = 0; c < 3; c++) expect(moved[(a * n + i) * 3 + c]).toBe(data[(i * 2 + a) * 3 + c]);
      }
    }
  });
});

describe('the voice-activity-like fixture', () => {
  const model = loadModel(fixturePath('vad-like.onnx'));

  it('draws the frame, pins sr and feeds the state zeros with the samples on axis 1', () => {
    const set = randomProbes(model, 6, { seed: 3, pinned: { sr: { dims: [], values: [16000] } }, batchAxes: { state: 1 } });
    const batch = set.read(2, 5);
    expect(batch.input!.dims).toEqual([3, 64]);
    expect(batch.state!.dims).toEqual([2, 3, 128]);
    expect(Array.from(batch.state!.data as Float32Array).every((x) => x === 0)).toBe(true);
    expect(batch.sr).toEqual({ dataType: DataType.INT64, dims: [], data: BigInt64Array.of(16000n) });
    expect(set.notes!.join('\n')).toMatch(/"state" reads like recurrent state and is fed zeros \(batch on axis 1\)/);
    expect(set.notes!.join('\n')).toMatch(/"sr" is pinned to 16000/);
  });

  it('audits with --input and --batch-axis: fc1 loses its 4 planted copies in the output measure', async () => {
    const run = await runCliInProcess(['audit', fixturePath('vad-like.onnx'), '--random', '64', '--input', 'sr=16000', '--batch-axis', 'state=1', '--json', '--quiet']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as AuditReport;
    const fc1 = report.layers.find((l) => l.name === 'fc1')!;
    expect(fc1.width).toBe(32);
    expect(fc1.effectiveWidth.output).toBe(28);
    expect(report.notes.some((n) => n.includes('fed zeros'))).toBe(true);
  });

  it('without --input, exits 2 naming the scalar sr and the option that pins it', async () => {
    const run = await runCliInProcess(['audit', fixturePath('vad-like.onnx'), '--random', '8', '--batch-axis', 'state=1', '--quiet']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/"sr" is a scalar.*--input sr=VALUE/);
    expect(run.stdout).toBe('');
  });

  it('refuses a pinned value of the wrong rank and a batch axis past the input rank', async () => {
    const rank = await runCliInProcess(['audit', fixturePath('vad-like.onnx'), '--random', '8', '--input', 'sr=[16000]', '--batch-axis', 'state=1', '--quiet']);
    expect(rank.code).toBe(2);
    expect(rank.stderr).toMatch(/--input: "sr" has rank 0, got a value of rank 1/);
    const axis = await runCliInProcess(['audit', fixturePath('vad-like.onnx'), '--random', '8', '--input', 'sr=16000', '--batch-axis', 'state=3', '--quiet']);
    expect(axis.code).toBe(2);
    expect(axis.stderr).toMatch(/input "state" has rank 3 .* got axis 3/);
  });
});

describe('the token fixture', () => {
  const model = loadModel(fixturePath('tokens-tiny.onnx'));

  it('reads the id range from the embedding table input_ids indexes; masks are ones, type ids zeros', () => {
    expect(integerFill(model, 'input_ids', DataType.INT64)).toMatchObject({ kind: 'ids', below: 50 });
    const shapes = { input_ids: [1, 8], attention_mask: [1, 8], token_type_ids: [1, 8] };
    const batch = randomProbes(model, 200, { seed: 1, shapes }).read(0, 200);
    const ids = Array.from(batch.input_ids!.data as BigInt64Array, Number);
    expect(Math.max(...ids)).toBe(49);
    expect(Math.min(...ids)).toBe(0);
    expect(new Set(Array.from(batch.attention_mask!.data as BigInt64Array))).toEqual(new Set([1n]));
    expect(new Set(Array.from(batch.token_type_ids!.data as BigInt64Array))).toEqual(new Set([0n]));
  });

  it('audits with --random: fc1 loses its 3 planted copies', async () => {
    const run = await runCliInProcess(['audit', fixturePath('tokens-tiny.onnx'), '--random', '64', '--shape', 'input_ids=1x8', '--shape', 'attention_mask=1x8', '--shape', 'token_type_ids=1x8', '--json', '--quiet']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as AuditReport;
    expect(report.layers.find((l) => l.name === 'fc1')!.effectiveWidth.output).toBe(21);
    expect(report.notes.some((n) => n.includes('[0, 50)'))).toBe(true);
  });
});
