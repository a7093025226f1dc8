// Attention found where exporters put it (decomposed, packed QKV, grouped-query, fused ops), in the
// exporter-shaped fixtures (fixtures/attention/) and in torch.onnx exports (fixtures/transformers/),
// and the per-head audit: planted duplicate heads found by their QK circuits and value spaces.

import { describe, expect, it } from 'vitest';
import { findAttention, markAttentionLayers } from '../../src/analysis/attention.js';
import { findLayers } from '../../src/analysis/find-layers.js';
import { auditHeads } from '../../src/analysis/head-audit.js';
import { loadModel } from '../../src/onnx/model-file.js';
import { fixturePath } from '../helpers/cli-runner.js';
import { GraphBuilder, int, ints, type AttributeSpec } from '../helpers/graph-builder.js';
import { DataType } from '../../src/ir/data-type.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { Value } from '../../src/ir/value.js';
import { SeededRandom } from '../../fixtures/seeded-random.js';

function blocksOf(file: string) {
  const model = loadModel(fixturePath(file));
  const layers = findLayers(model);
  const blocks = findAttention(model, layers);
  return { model, layers, blocks };
}

const audit = (file: string, exactTolerance = 1e-6) => blocksOf(file).blocks.map((b) => auditHeads(b, { similarityThreshold: 0.95, exactTolerance }));

describe('findAttention', () => {
  const cases: [string, string, number, number][] = [
    ['attention/decomposed-planted.onnx', 'decomposed', 4, 4],
    ['attention/packed-planted.onnx', 'packed', 4, 4],
    ['attention/gqa-planted.onnx', 'decomposed', 4, 2],
    ['attention/ms-attention-planted.onnx', 'com.microsoft.Attention', 4, 4],
    ['attention/ms-mha-planted.onnx', 'com.microsoft.MultiHeadAttention', 4, 4],
    ['attention/onnx-attention-planted.onnx', 'Attention', 4, 4],
    ['attention/paddle-reshape-first-planted.onnx', 'packed-reshape-first', 4, 4],
  ];
  for (const [file, form, heads, kvHeads] of cases) {
    it(`finds one ${form} block with ${heads} query and ${kvHeads} key/value heads of 4 in ${file}`, () => {
      const { blocks } = blocksOf(file);
      expect(blocks).toHaveLength(1);
      expect(blocks[0]).toMatchObject({ form, heads, kvHeads, headSize: 4, valueHeadSize: 4 });
      expect(blocks[0]!.output?.name).toBe('/o_proj/MatMul');
    });
  }

  it('reads the packed projection as three parts at offsets 0, 16 and 32 of one weight', () => {
    const [b] = blocksOf('attention/packed-planted.onnx').blocks;
    expect([b!.q.offset, b!.k.offset, b!.v.offset]).toEqual([0, 16, 32]);
    expect(new Set([b!.q.weight, b!.k.weight, b!.v.weight]).size).toBe(1);
    expect(b!.q.indexMap).toEqual({ kind: 'head-blocks', heads: 4, headSize: 4 });
  });

  it('reads nn.MultiheadAttention as torch exports it: packed in_proj cut by computed Slices, heads folded into the batch axis', () => {
    const [b] = blocksOf('attention/torch-mha-planted.onnx').blocks;
    expect(b).toMatchObject({ form: 'packed', heads: 4, kvHeads: 4, headSize: 4 });
    expect(b!.q.split?.role).toBe('fold');
    expect([b!.q.offset, b!.k.offset, b!.v.offset]).toEqual([0, 16, 32]);
    expect(b!.output?.node.opType).toBe('Gemm');
  });

  it('finds both layers of the torch-exported BERT (packed in_proj) and LLaMA decoders', () => {
    const bert = blocksOf('transformers/bert-tiny-planted.onnx').blocks;
    expect(bert.map((b) => [b.form, b.heads, b.q.split?.role])).toEqual([['packed', 4, 'split'], ['packed', 4, 'split']]);
    const llama = blocksOf('transformers/llama-tiny-planted.onnx').blocks;
    expect(llama.map((b) => [b.form, b.heads, b.kvHeads, b.q.name])).toEqual([
      ['decomposed', 4, 4, '/layers.0/attn/q_proj/MatMul'],
      ['decomposed', 4, 4, '/layers.1/attn/q_proj/MatMul'],
    ]);
    const gqa = blocksOf('transformers/llama-gqa-planted.onnx').blocks;
    expect(gqa.map((b) => [b.heads, b.kvHeads, b.k.repeated])).toEqual([[4, 2, true], [4, 2, true]]);
    expect(gqa[0]!.blockers.map((b) => b.message).join()).toContain('grouped-query attention');
  });

  it('no longer blocks q/k/v projections with "consumer Reshape is not a linear layer" once their block is recognised', () => {
    const { layers, blocks } = blocksOf('transformers/llama-tiny-planted.onnx');
    const q = layers.find((l) => l.name === '/layers.0/attn/q_proj/MatMul')!;
    expect(q.blockers.some((b) => b.message.includes('Reshape') && b.message.includes('not a linear layer'))).toBe(true);
    markAttentionLayers(blocks);
    for (const name of ['q_proj', 'k_proj', 'v_proj']) {
      const layer = layers.find((l) => l.name === `/layers.0/attn/${name}/MatMul`)!;
      expect(layer.blockers.map((b) => b.code)).toEqual(['attention']);
      expect(layer.blockers[0]!.message).toContain('attention block attn1');
    }
  });

  it('reads packed QKV reshaped first ([.., 3, H, d] -> Transpose -> part p on axis 0) as part p, head h, channel i = row p*H*d + h*d + i', () => {
    const { blocks, layers } = blocksOf('attention/torch-vit-planted.onnx');
    // timm's unbind(0) (Split + Squeeze), qkv[i] (Gather), PVT's q + packed kv ([B, -1, 2, H, d]).
    expect(blocks.map((b) => [b.form, b.heads, b.kvHeads, b.headSize, b.valueHeadSize, b.output?.name])).toEqual([0, 1, 2].map((i) => ['packed-reshape-first', 4, 4, 4, 4, `/${i}/attn/proj/MatMul`]));
    for (const b of blocks.slice(0, 2)) {
      expect([b.q, b.k, b.v].map((p) => [p.offset, p.width, p.split?.role, p.split?.parts])).toEqual([[0, 16, 'packed-split', 3], [16, 16, 'packed-split', 3], [32, 16, 'packed-split', 3]]);
      expect(new Set([b.q.weight, b.k.weight, b.v.weight]).size).toBe(1);
      expect(b.q.split!.node).toBe(b.v.split!.node);
      expect(b.v.indexMap).toEqual({ kind: 'head-blocks', heads: 4, headSize: 4 });
    }
    const pvt = blocks[2]!;
    expect([pvt.q, pvt.k, pvt.v].map((p) => [p.name, p.offset, p.split?.role])).toEqual([['/2/attn/q/MatMul', 0, 'split'], ['/2/attn/kv/MatMul', 0, 'packed-split'], ['/2/attn/kv/MatMul', 16, 'packed-split']]);
    expect(pvt.k.split?.parts).toBe(2);
    expect(blocks.every((b) => b.blockers.length === 0)).toBe(true);
    // The packed projection was blocked by its Reshape; once its block is known, only 'attention' is left.
    const qkv = layers.find((l) => l.name === '/0/attn/qkv/MatMul')!;
    expect(qkv.blockers.some((b) => b.message.includes('Reshape') && b.message.includes('not a linear layer'))).toBe(true);
    markAttentionLayers(blocks);
    expect(qkv.blockers.map((b) => b.code)).toEqual(['attention']);
    expect(qkv.blockers[0]!.message).toContain('projects the Q/K/V heads of attention block attn1');
  });

  it('reads the Paddle2ONNX opset-9 form: Slice and Squeeze with attributes, shape pieces cast from int32', () => {
    const [b] = blocksOf('attention/paddle-reshape-first-planted.onnx').blocks;
    expect([b!.q.offset, b!.k.offset, b!.v.offset]).toEqual([0, 16, 32]);
    expect(b!.q.path.map((n) => n.opType)).toEqual(['Mul', 'Squeeze', 'Slice', 'Transpose', 'Reshape']);
    expect(b!.merge?.node.opType).toBe('Reshape');
    expect(b!.blockers).toEqual([]);
  });

  it('takes each part of a reshape-first packed projection however it is cut: Gather(0), Slice [1:2] + Squeeze, Slice [2:end] + Squeeze', () => {
    const b = new GraphBuilder();
    const x = b.input('x', DataType.FLOAT, ['batch', 6, 16]);
    const rng = new SeededRandom(9);
    const i64 = (name: string, values: (number | bigint)[], dims = [values.length]): Value => b.initializer(name, Tensor.fromInt64(dims, values));
    const [qkv] = b.node('MatMul', [x, b.initializer('qkv.weight', Tensor.fromNumbers(DataType.FLOAT, [16, 48], rng.gaussians(16 * 48)))], {}, { name: 'qkv' });
    const [parts] = b.node('Transpose', [b.node('Reshape', [qkv!, i64('qkv_shape', [0, 0, 3, 4, 4])])[0]!], { perm: ints([2, 0, 3, 1, 4]) });
    const [q] = b.node('Gather', [parts!, i64('zero', [0], [])], { axis: int(0) });
    const part = (start: number, end: number | bigint): Value => b.node('Squeeze', [b.node('Slice', [parts!, i64(`s${start}`, [start]), i64(`e${start}`, [end]), i64(`a${start}`, [0])])[0]!, i64(`sq${start}`, [0])])[0]!;
    const [k, v] = [part(1, 2), part(2, 9223372036854775807n)];
    const [scores] = b.node('MatMul', [q!, b.node('Transpose', [k!], { perm: ints([0, 1, 3, 2]) })[0]!]);
    const [context] = b.node('MatMul', [b.node('Softmax', [scores!], { axis: int(-1) })[0]!, v!]);
    const [joined] = b.node('Reshape', [b.node('Transpose', [context!], { perm: ints([0, 2, 1, 3]) })[0]!, i64('join_shape', [0, 0, 16])]);
    const [y] = b.node('MatMul', [joined!, b.initializer('o.weight', Tensor.fromNumbers(DataType.FLOAT, [16, 16], rng.gaussians(256)))], {}, { name: 'o_proj' });
    b.output(y!, DataType.FLOAT, ['batch', 6, 16]);
    const model = b.build(13);
    const [block] = findAttention(model, findLayers(model));
    expect(block).toMatchObject({ form: 'packed-reshape-first', heads: 4, headSize: 4, blockers: [] });
    expect([block!.q.offset, block!.k.offset, block!.v.offset]).toEqual([0, 16, 32]);
    expect(block!.v.path.map((n) => n.opType)).toEqual(['Squeeze', 'Slice', 'Transpose', 'Reshape']);
  });

  it('finds no attention in a model without any', () => {
    expect(blocksOf('mlp-relu-planted.onnx').blocks).toEqual([]);
  });
});

describe('auditHeads', () => {
  it('finds the planted duplicates: head 2 copies head 0, head 3 is head 1 turned by an orthogonal matrix', () => {
    for (const file of ['attention/decomposed-planted.onnx', 'attention/packed-planted.onnx', 'attention/ms-attention-planted.onnx', 'attention/ms-mha-planted.onnx', 'attention/onnx-attention-planted.onnx', 'attention/paddle-reshape-first-planted.onnx']) {
      const [a] = audit(file);
      expect(a!.duplicates.map((d) => [d.head, d.into]), file).toEqual([[2, 0], [3, 1]]);
      expect(a!.similarPairs).toEqual([[0, 2], [1, 3]]);
      expect(a!.headSimilarity[0 * 4 + 2]).toBeCloseTo(1, 5);
      expect(a!.headSimilarity[0 * 4 + 1]).toBeLessThan(0.95);
    }
  });

  it('gives head 2 of the copy the value map 2 I (its V rows are twice head 0\'s)', () => {
    const [a] = audit('attention/decomposed-planted.onnx');
    const map = a!.duplicates.find((d) => d.head === 2)!.valueMap;
    const expected = [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2];
    map.forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 5));
  });

  it('compares heads by rows past the circuit budget: the copied head is still found, the turned one is not', () => {
    const { blocks } = blocksOf('attention/decomposed-planted.onnx');
    const a = auditHeads(blocks[0]!, { similarityThreshold: 0.95, exactTolerance: 1e-6, circuitBudget: 0 });
    expect(a.headSimilarityBasis).toBe('rows');
    expect(a.duplicates.map((d) => [d.head, d.into])).toEqual([[2, 0]]);
    expect(a.similarPairs).toEqual([[0, 2]]);
  });

  it('finds no duplicates when the tolerance is tighter than float32 rounding of the turned head', () => {
    const [a] = audit('attention/decomposed-planted.onnx', 1e-12);
    expect(a!.duplicates.map((d) => d.head)).not.toContain(3);
  });

  it('finds the torch fixtures\' planted head copies (head 3 of head 1 in each layer)', () => {
    expect(audit('transformers/bert-tiny-planted.onnx').map((a) => a.duplicates.map((d) => [d.head, d.into]))).toEqual([[[3, 1]], [[3, 1]]]);
    expect(audit('transformers/llama-tiny-planted.onnx').map((a) => a.duplicates.map((d) => [d.head, d.into]))).toEqual([[[3, 1]], [[3, 1]]]);
    expect(audit('attention/torch-mha-planted.onnx').map((a) => a.duplicates.map((d) => [d.head, d.into]))).toEqual([[[2, 0]]]);
    expect(audit('attention/torch-vit-planted.onnx').map((a) => a.duplicates.map((d) => [d.head, d.into]))).toEqual([[[3, 1]], [[3, 1]], [[3, 1]]]);
  });

  it('clusters Q/K/V rows per head of a reshape-first packed projection: the planted q_3 = 0.5 q_1 and v_2 = -1.5 v_0 are one cluster each, in every head', () => {
    const [a] = audit('attention/torch-vit-within-head.onnx');
    expect(a!.heads.map((h) => [h.queryClusters, h.keyClusters, h.valueClusters, h.queryKeyMerges, h.valueOutputMerges])).toEqual(Array.from({ length: 4 }, () => [3, 4, 3, 1, 1]));
    expect(a!.duplicates.map((d) => [d.head, d.into])).toEqual([[3, 1]]);
  });

  it('clusters query neurons within each head: the small-init decoder condenses (fewer Q and K clusters) where the default-init one does not', () => {
    const [small] = audit('transformers/llama-trained-small-init.onnx');
    const [standard] = audit('transformers/llama-trained-default-init.onnx');
    expect(small!.queryClusters).toBeLessThan(standard!.queryClusters);
    expect(small!.keyClusters).toBeLessThan(standard!.keyClusters);
    expect(Math.min(...small!.heads.map((h) => h.queryClusters))).toBeLessThan(4);
    expect(standard!.heads.every((h) => h.queryClusters === 4)).toBe(true);
  });
});

describe('fused attention ops built in memory', () => {
  function fused(opType: string, attributes: Record<string, AttributeSpec>, extraInputs = 0) {
    const b = new GraphBuilder();
    const x = b.input('x', DataType.FLOAT, ['batch', 6, 16]);
    const rng = new SeededRandom(5);
    const proj = (name: string, out: number): Value => b.node('MatMul', [x, b.initializer(`${name}.weight`, Tensor.fromNumbers(DataType.FLOAT, [16, out], rng.gaussians(16 * out)))], {}, { name })[0]!;
    const q = proj('q_proj', 16);
    const k = proj('k_proj', 8);
    const v = proj('v_proj', 8);
    const extra = Array.from({ length: extraInputs }, (_, i) => b.input(`extra${i}`, DataType.INT32, [1]));
    const [att] = b.node(opType, [q, k, v, ...extra], attributes, { domain: 'com.microsoft', name: 'gqa' });
    const [y] = b.node('MatMul', [att!, b.initializer('o.weight', Tensor.fromNumbers(DataType.FLOAT, [16, 16], rng.gaussians(256)))], {}, { name: 'o_proj' });
    b.output(y!, DataType.FLOAT, ['batch', 6, 16]);
    const model = b.build(17, { otherOpsets: { 'com.microsoft': 1 } });
    const layers = findLayers(model);
    return { blocks: findAttention(model, layers), layers };
  }

  it('finds com.microsoft GroupQueryAttention (4 query heads on 2 key/value heads) and audits it without merging', () => {
    const { blocks } = fused('GroupQueryAttention', { num_heads: int(4), kv_num_heads: int(2) }, 4);
    expect(blocks).toHaveLength(1);
    expect(blocks[0]).toMatchObject({ form: 'com.microsoft.GroupQueryAttention', heads: 4, kvHeads: 2, headSize: 4, valueHeadSize: 4 });
    expect(blocks[0]!.blockers.map((x) => x.message).join('; ')).toMatch(/grouped-query attention/);
    const a = auditHeads(blocks[0]!, { similarityThreshold: 0.95, exactTolerance: 1e-6 });
    expect(a.heads.map((h) => h.kvHead)).toEqual([0, 0, 1, 1]);
  });

  it('names the extra inputs of a fused op that head merges would not rewrite', () => {
    const { blocks } = fused('MultiHeadAttention', { num_heads: int(4) }, 1);
    expect(blocks[0]!.blockers.map((x) => x.message).join('; ')).toContain('reads bias, mask or past-state inputs');
  });
});
