// The commands on the torch-exported transformers, as a user runs them: inspect shows the SwiGLU
// layers mergeable and the residual stream as one approximate-only group; prune removes the
// planted GELU copies of the BERT encoder exactly; audit sees the small-initialisation decoder
// condense where the default-initialisation one does not.

import * as path from 'node:path';
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { AuditReport, PruneReport } from '../../src/index.js';
import type { inspectReport } from '../../src/report/inspect-report.js';
import { DataType } from '../../src/ir/data-type.js';
import { ModelSession } from '../../src/runtime/model-session.js';
import { fixturePath, runCliInProcess } from '../helpers/cli-runner.js';
import { scratchFolder } from '../helpers/scratch-folder.js';

type InspectReport = ReturnType<typeof inspectReport>;

const scratch = scratchFolder('transformer-cli');
const transformer = (file: string): string => fixturePath(path.join('transformers', file));

describe('condense on the exported transformers', () => {
  it('inspect: the SwiGLU layers are mergeable and the residual stream is one group, approximate only', async () => {
    const run = await runCliInProcess(['inspect', transformer('llama-tiny-planted.onnx'), '--json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as InspectReport;
    const gated = report.layers.filter((l) => l.op === 'SwiGLU');
    expect(gated.map((l) => [l.name, l.width, l.mergeable])).toEqual([
      ['/layers.0/mlp/gate_proj*up_proj', 32, true],
      ['/layers.1/mlp/gate_proj*up_proj', 32, true],
    ]);
    expect(report.groups).toHaveLength(1);
    expect(report.groups[0]).toMatchObject({ mergeable: false, approximateOnly: true, width: 16 });
    expect(report.groups[0]!.members).toHaveLength(4);
    const text = await runCliInProcess(['inspect', transformer('llama-tiny-planted.onnx')]);
    expect(text.stdout).toMatch(/group1 \(approximate only\): channels of/);
  });

  it('prune: the planted GELU copies of the BERT encoder go (32 -> 29, 32 -> 30) with relative error below 1e-5', async () => {
    const out = path.join(scratch.freshFolder(), 'bert.onnx');
    const run = await runCliInProcess(['prune', transformer('bert-tiny-planted.onnx'), '--random', '64', '--shape', 'input_ids=1x8', '--shape', 'attention_mask=1x8', '-o', out, '--json', '--quiet']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as PruneReport;
    expect(report.layers.map((l) => [l.name, l.widthAfter, l.merges.map((m) => m.kind)])).toEqual([
      ['/layers.0/fc1/MatMul', 29, ['copy', 'copy', 'copy']],
      ['/layers.1/fc1/MatMul', 30, ['copy', 'copy']],
    ]);
    expect(report.fidelity.maxRelError).toBeLessThan(1e-5);
    // The probes were token ids (and a mask of ones), not Gaussian floats, and the report says so.
    expect([report.probe, report.holdout]).toEqual(['random token ids (seed 0)', 'random token ids (seed 1000003), drawn apart from the fitting samples']);
    const session = await ModelSession.create(fs.readFileSync(out), 'bert');
    try {
      const ids = BigInt64Array.from([5, 9, 13, 2, 30, 1, 0, 0], BigInt);
      const mask = BigInt64Array.from([1, 1, 1, 1, 1, 1, 0, 0], BigInt);
      const logits = (await session.run({ input_ids: { dataType: DataType.INT64, dims: [1, 8], data: ids }, attention_mask: { dataType: DataType.INT64, dims: [1, 8], data: mask } })).logits!;
      expect(logits.dims).toEqual([1, 2]);
      expect(Array.from(logits.data as Float32Array).every(Number.isFinite)).toBe(true);
    } finally {
      await session.release();
    }
  });

  it('audit: after training from small initialisation W_Q, W_K and lm_head have fewer weight clusters than after the default', async () => {
    const audit = async (file: string): Promise<Map<string, number>> => {
      const run = await runCliInProcess(['audit', transformer(file), '--json', '--quiet']);
      expect(run.code).toBe(0);
      return new Map((JSON.parse(run.stdout) as AuditReport).layers.map((l) => [l.name, l.effectiveWidth.weight]));
    };
    const small = await audit('llama-trained-small-init.onnx');
    const standard = await audit('llama-trained-default-init.onnx');
    for (const layer of ['/layers.0/attn/q_proj/MatMul', '/layers.0/attn/k_proj/MatMul', '/lm_head/MatMul']) {
      expect(standard.get(layer)).toBe(16);
      expect(small.get(layer)!, layer).toBeLessThan(standard.get(layer)!);
    }
  });
});
