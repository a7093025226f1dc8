// Whole duplicate heads merged by `prune`: in every attention form the fixtures cover (decomposed,
// packed, torch's nn.MultiheadAttention, com.microsoft Attention / MultiHeadAttention, ONNX
// Attention, torch-exported BERT and LLaMA), verified below 1e-5 relative error, then loaded again
// in onnxruntime and run on a batch and sequence length the probes never had.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findAttention } from '../../src/analysis/attention.js';
import { findLayers } from '../../src/analysis/find-layers.js';
import { auditHeads } from '../../src/analysis/head-audit.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { Value } from '../../src/ir/value.js';
import { planHeadMerges } from '../../src/rewrite/merge-heads.js';
import { DataType } from '../../src/ir/data-type.js';
import { loadModel } from '../../src/onnx/model-file.js';
import { prune } from '../../src/pipeline/prune.js';
import { hostToFloat64, type HostTensor } from '../../src/runtime/host-tensor.js';
import { ModelSession } from '../../src/runtime/model-session.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { fixturePath } from '../helpers/cli-runner.js';
import { scratchFolder } from '../helpers/scratch-folder.js';

const scratch = scratchFolder('merge-heads');

/** Feeds of batch x sequence for the model's inputs: floats for x, token ids below 32, a mask of ones. */
function feedsFor(file: string, batch: number, sequence: number, seed: number): Record<string, HostTensor> {
  const rng = new SeededRandom(seed);
  const model = loadModel(fixturePath(file));
  const feeds: Record<string, HostTensor> = {};
  for (const input of model.graph.inputs) {
    if (input.constantTensor()) continue;
    const shape = input.shape!.map((d, i) => d.value ?? (i === 0 ? batch : sequence));
    const count = shape.reduce((a, b) => a * b, 1);
    if (input.elemType === DataType.FLOAT) feeds[input.name] = { dataType: DataType.FLOAT, dims: shape, data: Float32Array.from({ length: count }, () => rng.gaussian()) };
    else if (input.name.includes('mask')) feeds[input.name] = { dataType: DataType.INT64, dims: shape, data: BigInt64Array.from({ length: count }, () => 1n) };
    else feeds[input.name] = { dataType: DataType.INT64, dims: shape, data: BigInt64Array.from({ length: count }, () => BigInt(rng.integer(32))) };
  }
  return feeds;
}

async function outputs(file: string, feeds: Record<string, HostTensor>): Promise<Float64Array[]> {
  const session = await ModelSession.create(file, file);
  try {
    const result = await session.run(feeds);
    return Object.keys(result).sort().map((k) => hostToFloat64(result[k]!));
  } finally {
    await session.release();
  }
}

function maxRelativeError(a: Float64Array[], b: Float64Array[]): number {
  let worst = 0;
  a.forEach((x, i) => {
    const y = b[i]!;
    expect(y.length).toBe(x.length);
    const scale = Math.max(...x.map(Math.abs), 1e-12);
    for (let k = 0; k < x.length; k++) worst = Math.max(worst, Math.abs(x[k]! - y[k]!) / scale);
  });
  return worst;
}

interface Case {
  file: string;
  /** Full shapes for the probes (dynamic sequence axes). */
  shapes?: Record<string, number[]>;
  headsBefore: number[];
  headsAfter: number[];
  /** The batch and sequence of the extra check (sequence fixed where the model fixes it). */
  check: [number, number];
}

const cases: Case[] = [
  { file: 'attention/decomposed-planted.onnx', headsBefore: [4], headsAfter: [2], check: [3, 6] },
  { file: 'attention/packed-planted.onnx', headsBefore: [4], headsAfter: [2], check: [3, 6] },
  { file: 'attention/ms-attention-planted.onnx', headsBefore: [4], headsAfter: [2], check: [3, 6] },
  { file: 'attention/ms-mha-planted.onnx', headsBefore: [4], headsAfter: [2], check: [3, 6] },
  { file: 'attention/onnx-attention-planted.onnx', headsBefore: [4], headsAfter: [2], check: [3, 6] },
  { file: 'attention/torch-mha-planted.onnx', shapes: { x: [1, 6, 16] }, headsBefore: [4], headsAfter: [3], check: [3, 9] },
  { file: 'transformers/llama-tiny-planted.onnx', shapes: { input_ids: [1, 8] }, headsBefore: [4, 4], headsAfter: [3, 3], check: [2, 11] },
  { file: 'transformers/bert-tiny-planted.onnx', shapes: { input_ids: [1, 8], attention_mask: [1, 8] }, headsBefore: [4, 4], headsAfter: [3, 3], check: [2, 5] },
  { file: 'attention/torch-vit-planted.onnx', shapes: { x: [1, 6, 16] }, headsBefore: [4, 4, 4], headsAfter: [3, 3, 3], check: [3, 11] },
  { file: 'attention/paddle-reshape-first-planted.onnx', headsBefore: [4], headsAfter: [2], check: [3, 6] },
];

describe('prune merges whole duplicate heads', () => {
  for (const c of cases) {
    it(`removes the planted heads of ${c.file} (${c.headsBefore.join(', ')} -> ${c.headsAfter.join(', ')}) below 1e-5 and the result runs at other shapes`, async () => {
      const output = path.join(scratch.freshFolder(), 'pruned.onnx');
      const result = await prune(fixturePath(c.file), { output, probe: { random: 24, ...(c.shapes ? { shapes: c.shapes } : {}) }, verify: { maxError: 1e-5 } });
      expect(result.fidelity.maxRelError).toBeLessThan(1e-5);
      expect(result.plan.heads?.map((h) => [h.heads, h.headsAfter])).toEqual(c.headsBefore.map((h, i) => [h, c.headsAfter[i]]));
      expect(fs.existsSync(output)).toBe(true);
      // Neuron counts hold every projection row, those inside a fused op's packed weight too, and never go below zero.
      expect(result.neurons.after).toBeGreaterThan(0);
      expect(result.neurons.before - result.neurons.after).toBeGreaterThanOrEqual(c.headsBefore.reduce((s, h, i) => s + (h - c.headsAfter[i]!) * 12, 0));

      // The written model, found again: fewer heads of the same size, and it still runs.
      const rewritten = loadModel(output);
      const blocks = findAttention(rewritten, findLayers(rewritten));
      expect(blocks.map((b) => b.heads)).toEqual(c.headsAfter);
      expect(blocks.every((b) => b.headSize === 4)).toBe(true);
      const feeds = feedsFor(c.file, c.check[0], c.check[1], 7);
      expect(maxRelativeError(await outputs(fixturePath(c.file), feeds), await outputs(output, feeds))).toBeLessThan(1e-5);
    });
  }

  it('writes the new head count into fused ops\' attributes', async () => {
    for (const [file, attrs] of [['attention/ms-attention-planted.onnx', ['num_heads']], ['attention/ms-mha-planted.onnx', ['num_heads']], ['attention/onnx-attention-planted.onnx', ['q_num_heads', 'kv_num_heads']]] as const) {
      const output = path.join(scratch.freshFolder(), 'pruned.onnx');
      await prune(fixturePath(file), { output, probe: { random: 16 }, verify: { maxError: 1e-5 } });
      const fused = loadModel(output).graph.nodes.find((n) => n.opType === 'Attention' || n.opType === 'MultiHeadAttention')!;
      for (const a of attrs) expect(fused.getInt(a, 0), `${file} ${a}`).toBe(2);
    }
  });

  for (const file of ['attention/within-head-planted.onnx', 'attention/ms-mha-within-head.onnx']) {
    it(`merges neurons inside the heads that stay in ${file}: q_3 = 0.5 q_1 (k_1 absorbs), v_2 = -1.5 v_0 (O_0 absorbs); heads of 3`, async () => {
      const output = path.join(scratch.freshFolder(), 'pruned.onnx');
      const result = await prune(fixturePath(file), { output, probe: { random: 24 }, verify: { maxError: 1e-5 } });
      expect(result.fidelity.maxRelError).toBeLessThan(1e-5);
      const [plan] = result.plan.heads!;
      expect(plan!.headsAfter).toBe(2);
      expect(plan!.withinHead).toMatchObject({ headSizeAfter: 3, valueHeadSizeAfter: 3, notApplied: [] });
      expect(plan!.withinHead!.queryKey.map((r) => [r.head, r.side, r.neuron, r.into])).toEqual([[0, 'q', 3, 1], [1, 'q', 3, 1]]);
      expect(plan!.withinHead!.queryKey[0]!.scale).toBeCloseTo(0.5, 6);
      expect(plan!.withinHead!.valueOutput.map((r) => [r.head, r.neuron, r.into])).toEqual([[0, 2, 0], [1, 2, 0]]);
      expect(result.neurons.before - result.neurons.after).toBe(2 * 12 + 2 * 2 + 2);
      const rewritten = loadModel(output);
      const [block] = findAttention(rewritten, findLayers(rewritten));
      expect([block!.heads, block!.headSize, block!.valueHeadSize]).toEqual([2, 3, 3]);
      if (block!.fused) expect(block!.fused.getFloat('scale', 0)).toBeCloseTo(0.5, 7); // 1/sqrt(4), not 1/sqrt(3)
      const feeds = feedsFor(file, 5, 6, 11);
      expect(maxRelativeError(await outputs(fixturePath(file), feeds), await outputs(output, feeds))).toBeLessThan(1e-5);
    });
  }

  it('rewrites the shared [.., 3, H, d] shape of packed QKV reshaped first (and PVT\'s [.., 2, H, d]) and the joining Reshape as constants', async () => {
    const output = path.join(scratch.freshFolder(), 'pruned.onnx');
    await prune(fixturePath('attention/torch-vit-planted.onnx'), { output, probe: { random: 16, shapes: { x: [1, 6, 16] } }, verify: { maxError: 1e-5 } });
    const rewritten = loadModel(output);
    const blocks = findAttention(rewritten, findLayers(rewritten));
    const shape = (node: { inputs: readonly (Value | null)[] }): number[] => [...node.inputs[1]!.constantTensor()!.toFloat64()];
    expect(blocks.map((b) => [b.q, b.k, b.v].map((p) => shape(p.split!.node)))).toEqual([
      [[0, 0, 3, 3, 4], [0, 0, 3, 3, 4], [0, 0, 3, 3, 4]],
      [[0, 0, 3, 3, 4], [0, 0, 3, 3, 4], [0, 0, 3, 3, 4]],
      [[0, 0, 3, 4], [0, 0, 2, 3, 4], [0, 0, 2, 3, 4]],
    ]);
    expect(blocks.map((b) => shape(b.merge!.node))).toEqual([[0, 0, 12], [0, 0, 12], [0, 0, 12]]);
    expect(blocks.map((b) => [b.q.weight.constantTensor()!.dims, b.output!.weight.constantTensor()!.dims])).toEqual([[[16, 36], [12, 16]], [[16, 36], [12, 16]], [[16, 12], [12, 16]]]);
    expect(blocks[2]!.k.weight.constantTensor()!.dims).toEqual([16, 24]);
  });

  it('merges neurons inside the heads of packed QKV reshaped first: one d for Q, K and V, so each head drops one Q/K and one V/O neuron (heads of 3)', async () => {
    const file = 'attention/torch-vit-within-head.onnx';
    const output = path.join(scratch.freshFolder(), 'pruned.onnx');
    const result = await prune(fixturePath(file), { output, probe: { random: 24, shapes: { x: [1, 6, 16] } }, verify: { maxError: 1e-5 } });
    expect(result.fidelity.maxRelError).toBeLessThan(1e-5);
    const [plan] = result.plan.heads!;
    expect(plan!.merges.map((m) => [m.head, m.into])).toEqual([[3, 1]]);
    expect(plan!.withinHead).toMatchObject({ headSizeAfter: 3, valueHeadSizeAfter: 3, notApplied: [] });
    expect(plan!.withinHead!.queryKey.map((r) => [r.head, r.side, r.neuron, r.into])).toEqual([[0, 'q', 3, 1], [1, 'q', 3, 1], [2, 'q', 3, 1]]);
    expect(plan!.withinHead!.valueOutput.map((r) => [r.head, r.neuron, r.into])).toEqual([[0, 2, 0], [1, 2, 0], [2, 2, 0]]);
    const rewritten = loadModel(output);
    const [block] = findAttention(rewritten, findLayers(rewritten));
    expect([block!.form, block!.heads, block!.headSize, block!.valueHeadSize]).toEqual(['packed-reshape-first', 3, 3, 3]);
    expect([...block!.q.split!.node.inputs[1]!.constantTensor()!.toFloat64()]).toEqual([0, 0, 3, 3, 3]);
    const feeds = feedsFor(file, 2, 13, 3);
    expect(maxRelativeError(await outputs(fixturePath(file), feeds), await outputs(output, feeds))).toBeLessThan(1e-5);
  });

  it('merges the duplicate head through a rotary embedding but leaves its Q/K relations (the rotation mixes channel pairs)', async () => {
    const file = 'attention/torch-rotary-planted.onnx';
    const output = path.join(scratch.freshFolder(), 'pruned.onnx');
    const result = await prune(fixturePath(file), { output, probe: { random: 24, shapes: { x: [1, 6, 16] } }, verify: { maxError: 1e-5 } });
    expect(result.fidelity.maxRelError).toBeLessThan(1e-5);
    const [plan] = result.plan.heads!;
    expect(plan!.merges.map((m) => [m.head, m.into])).toEqual([[2, 0]]);
    expect(plan!.withinHead).toMatchObject({ headSizeAfter: 4, valueHeadSizeAfter: 3, queryKey: [] });
    expect(plan!.withinHead!.notApplied).toEqual(['3 Q/K merges: a rotary embedding mixes Q/K channels in pairs']);
    const rewritten = loadModel(output);
    const [block] = findAttention(rewritten, findLayers(rewritten));
    expect([block!.heads, block!.q.rotary]).toEqual([3, true]);
    const feeds = feedsFor(file, 2, 9, 5);
    expect(maxRelativeError(await outputs(fixturePath(file), feeds), await outputs(output, feeds))).toBeLessThan(1e-5);
  });

  it('gives every head one size: when one head has no Q/K relation, none is applied and the plan says why', () => {
    const model = loadModel(fixturePath('attention/within-head-planted.onnx'));
    const layers = findLayers(model);
    const [block] = findAttention(model, layers);
    // Break head 0's q_3 = 0.5 q_1 (row 0 of the [in, out] weight, output channel 3); head 2, its
    // copy, is then no duplicate and stays, with the relation intact.
    const t = block!.q.weight.constantTensor()!;
    const w = t.toFloat32();
    w[0 * 16 + 3]! += 0.25;
    model.graph.setConstant(block!.q.weight, Tensor.fromFloat32(t.dims, w));
    const [plan] = planHeadMerges([auditHeads(block!, { similarityThreshold: 0.95, exactTolerance: 1e-6 })], 1e-6);
    expect(plan!.merges.map((m) => m.head)).toEqual([3]);
    expect(plan!.withinHead!.queryKey).toEqual([]);
    expect(plan!.withinHead!.valueOutput.map((r) => r.head)).toEqual([0, 1, 2]);
    expect(plan!.withinHead!.headSizeAfter).toBe(4);
    expect(plan!.withinHead!.notApplied.join()).toContain('every head keeps one size: 0 Q/K and 1 V/O merges per head applied of 2 and 3 found');
  });

  it('keeps grouped-query attention as it is and says why: dropping a query head would leave the groups uneven', async () => {
    const result = await prune(fixturePath('transformers/llama-gqa-planted.onnx'), { output: path.join(scratch.freshFolder(), 'p.onnx'), dryRun: true, probe: { random: 16, shapes: { input_ids: [1, 8] } }, verify: { maxError: 1e-5 } });
    expect(result.plan.heads).toBeUndefined();
    const model = loadModel(fixturePath('transformers/llama-gqa-planted.onnx'));
    const [block] = findAttention(model, findLayers(model));
    expect(block!.blockers[0]!.message).toMatch(/grouped-query attention \(4 query heads share 2 key\/value heads\)/);
  });
});
