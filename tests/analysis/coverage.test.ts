// Coverage and quantized layers: inspect and audit say how much of a model prune can rewrite and
// what blocks the rest, measure QDQ weights from their dequantized values, and name integer ops
// rather than report "no weight-bearing layers".

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FixtureExpectations } from '../../fixtures/fixture-expectations.js';
import { ExporterGraphBuilder } from '../../fixtures/exporter-graph-builder.js';
import { FIXTURES_DIR } from '../../fixtures/make-fixtures.js';
import { describeCoverage, measureCoverage } from '../../src/analysis/coverage.js';
import { dequantizedTensor } from '../../src/analysis/dequantized-weight.js';
import { findLayers } from '../../src/analysis/find-layers.js';
import { findUnsupportedLayers } from '../../src/analysis/unsupported-layers.js';
import { cloneModel } from '../../src/ir/clone-model.js';
import { DataType } from '../../src/ir/data-type.js';
import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { loadModel, saveModel } from '../../src/onnx/model-file.js';
import { audit } from '../../src/pipeline/audit.js';
import { inspect } from '../../src/pipeline/inspect.js';
import { prune } from '../../src/pipeline/prune.js';
import { auditReport, formatAuditTable } from '../../src/report/audit-report.js';
import { formatInspect, inspectReport } from '../../src/report/inspect-report.js';
import { dequantizeConstantWeights, requantizeWeights } from '../../src/rewrite/dequantize-weights.js';
import { fixturePath, runCliInProcess } from '../helpers/cli-runner.js';

const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES_DIR, 'expected.json'), 'utf8')) as FixtureExpectations;

/** A graph with one DequantizeLinear of constants, the way quantizers write a weight. */
function dequantizeNode(q: { type: number; dims: number[]; values: number[] }, scale: { dims: number[]; values: number[] }, zero?: { type: number; values: number[] }, axis?: number) {
  const g = new Graph('dq');
  const x = g.addInitializer('w_q', Tensor.fromNumbers(q.type, q.dims, q.values));
  const s = g.addInitializer('w_scale', Tensor.fromNumbers(DataType.FLOAT, scale.dims, scale.values));
  const inputs = [x, s];
  if (zero) inputs.push(g.addInitializer('w_zero', Tensor.fromNumbers(zero.type, scale.dims, zero.values)));
  return g.addNode({ opType: 'DequantizeLinear', name: 'dq', inputs, outputs: ['w'], attributes: axis === undefined ? [] : [{ name: 'axis', type: 'int', value: BigInt(axis) }] });
}

describe('dequantized weights', () => {
  it('computes (q - zero point) * scale per tensor and per channel, as DequantizeLinear does', () => {
    const perTensor = dequantizedTensor(dequantizeNode({ type: DataType.INT8, dims: [2, 2], values: [-2, 0, 3, 127] }, { dims: [], values: [0.5] }));
    expect(Array.from(perTensor!.tensor.toFloat64())).toEqual([-1, 0, 1.5, 63.5]);
    expect(perTensor!.source).toEqual({ quantized: 'w_q', elemType: 'int8', axis: null });
    const perChannel = dequantizedTensor(dequantizeNode({ type: DataType.UINT8, dims: [2, 3], values: [128, 130, 126, 0, 10, 255] }, { dims: [2], values: [0.25, 2] }, { type: DataType.UINT8, values: [128, 10] }, 0));
    expect(Array.from(perChannel!.tensor.toFloat64())).toEqual([0, 0.5, -0.5, -20, 0, 490]);
    expect(perChannel!.source.axis).toBe(0);
  });

  it('leaves a DequantizeLinear whose scale does not fit the axis, or of a float, alone', () => {
    expect(dequantizedTensor(dequantizeNode({ type: DataType.INT8, dims: [2, 3], values: [1, 2, 3, 4, 5, 6] }, { dims: [3], values: [1, 1, 1] }, undefined, 0))).toBeUndefined();
    expect(dequantizedTensor(dequantizeNode({ type: DataType.FLOAT, dims: [2], values: [1, 2] }, { dims: [], values: [1] }))).toBeUndefined();
  });

  it('replaces the DequantizeLinear by a float weight of the same name, so the layer is found and measured, and marks it quantized', () => {
    const model = inspect(fixturePath('qdq-cnn.onnx'));
    expect(model.layers.map((l) => [l.name, l.width, l.mergeable, l.blockers.map((b) => b.code)])).toEqual([
      ['conv1', 8, false, ['quantized', 'quantized']],
      ['conv2', 16, false, ['quantized']],
      ['fc', 10, false, ['graph-output']],
    ]);
    expect(model.layers[0]!.weight.value.name).toBe('conv1.weight_dequantized');
    expect(model.layers[0]!.blockers[0]!.message).toContain('"conv1.weight_DequantizeLinear" of int8 "conv1.weight_quantized", per channel along axis 0');
  });

  it('keeps a float layer whose consumer has quantized weights from merging, since the merge would rewrite them', () => {
    const model = loadModel(fixturePath('qdq-cnn.onnx'));
    const g = model.graph;
    const dq = g.nodes.find((n) => n.name === 'conv1.weight_DequantizeLinear')!;
    const float = g.addInitializer('conv1.weight_float', dequantizedTensor(dq)!.tensor);
    g.replaceAllUses(dq.outputs[0]!, float);
    g.removeNodes([dq]);
    const conv1 = inspect(model).layers.find((l) => l.name === 'conv1')!;
    expect(conv1.blockers.map((b) => [b.code, b.message])).toEqual([['quantized', 'consumer "conv2" reads it with quantized weights: a merge would rewrite them']]);
  });

  it('never touches the DequantizeLinear of an activation (its input is not a constant)', () => {
    const model: Model = loadModel(fixturePath('qdq-cnn.onnx'));
    const weights = dequantizeConstantWeights(model);
    expect(weights.map((w) => w.name)).toEqual(['conv1.weight_dequantized', 'conv2.weight_dequantized']);
    expect(model.graph.nodes.filter((n) => n.opType === 'DequantizeLinear').map((n) => n.name)).toEqual(['input_DequantizeLinear']);
    expect(model.graph.initializers.some((v) => v.name === 'conv1.weight_quantized')).toBe(false);
  });

  it('puts the int8 weights back on a dequantized copy, so a written QDQ model keeps its quantized storage', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-qdq-'));
    const out = path.join(dir, 'out.onnx');
    const before = loadModel(fixturePath('qdq-cnn.onnx'));
    const measured = loadModel(fixturePath('qdq-cnn.onnx'));
    expect(dequantizeConstantWeights(measured).length).toBe(2);
    // As prune does: the rewrite works on a copy of the measured (dequantized) model.
    const copy = cloneModel(measured);
    expect(requantizeWeights(copy)).toBe(2);
    saveModel(copy, out);
    const after = loadModel(out);
    const quantized = (m: Model) => m.graph.nodes.filter((n) => n.opType === 'DequantizeLinear').map((n) => [n.name, n.inputs[0]!.constantTensor()?.dataType ?? 'activation', n.getInt('axis', 1)]).sort();
    expect(quantized(after)).toEqual(quantized(before));
    const int8 = (m: Model) => m.graph.initializers.filter((v) => v.initializer!.dataType === DataType.INT8).map((v) => [v.name, Array.from(v.initializer!.toFloat64())]);
    expect(int8(after)).toEqual(int8(before));
    expect(fs.statSync(out).size).toBeLessThanOrEqual(fs.statSync(fixturePath('qdq-cnn.onnx')).size);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the int8 storage of quantized layers when a budgeted prune cuts the float ones around them', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-qdq-budget-'));
    // conv2 stored as float (its DequantizeLinear evaluated), conv1 still int8.
    const model = loadModel(fixturePath('qdq-cnn.onnx'));
    const dq = model.graph.nodes.find((n) => n.name === 'conv2.weight_DequantizeLinear')!;
    const conv2 = model.graph.nodes.find((n) => n.name === 'conv2')!;
    conv2.setInput(1, model.graph.addInitializer('conv2.weight', dequantizedTensor(dq)!.tensor));
    model.graph.removeNodes([dq]);
    const input = path.join(dir, 'mixed.onnx');
    saveModel(model, input);
    const output = path.join(dir, 'pruned.onnx');
    const result = await prune(input, { output, probe: { random: 256, seed: 0 }, budget: { maxError: 5e-2 } });
    expect(result.plan.layers.map((l) => l.layer)).toEqual(['conv2']);
    const written = loadModel(output);
    expect(written.graph.nodes.filter((n) => n.opType === 'DequantizeLinear').map((n) => n.name)).toContain('conv1.weight_DequantizeLinear');
    expect(written.graph.initializers.find((v) => v.name === 'conv1.weight_quantized')?.initializer?.dataType).toBe(DataType.INT8);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('prunes nothing in the QDQ fixture (its planted copies sit in quantized layers) and writes no copy', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-qdq-'));
    const out = path.join(dir, 'out.onnx');
    const run = await runCliInProcess(['prune', fixturePath('qdq-cnn.onnx'), '-o', out, '--random', '16', '--json']);
    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as { nothingToMerge: boolean }).nothingToMerge).toBe(true);
    expect(fs.existsSync(out)).toBe(false);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('measures the planted copies and multiple of the QDQ fixture from the dequantized weights', async () => {
    const result = await audit(fixturePath('qdq-cnn.onnx'));
    const effective = Object.fromEntries(result.layers.map((l) => [l.layer.name, l.weightClusters.count]));
    for (const layer of expected.models['qdq-cnn.onnx']!.quantizedLayers!) expect(effective[layer.node]).toBe(layer.directionCount);
    const report = auditReport(result);
    expect(report.coverage.blockers).toEqual([{ code: 'quantized', layers: 2, neurons: 24 }]);
    expect(report.layers.find((l) => l.name === 'conv1')!.reason).toContain('prune does not rewrite quantized weights');
  });
});

describe('integer ops named', () => {
  it('lists ConvInteger and MatMulInteger by name, op and width with the code quantized', () => {
    const found = findUnsupportedLayers(loadModel(fixturePath('conv-integer.onnx')));
    expect(found.map((u) => [u.name, u.op, u.width, u.blocker.code])).toEqual([
      ['conv1_quant', 'ConvInteger', 8, 'quantized'],
      ['fc_quant', 'MatMulInteger', 10, 'quantized'],
    ]);
    // The float conv between them is still found and measured.
    expect(findLayers(loadModel(fixturePath('conv-integer.onnx'))).map((l) => l.name)).toEqual(['conv2']);
  });

  it('names QLinearConv, QLinearMatMul and com.microsoft MatMulNBits with their widths, and only in their own domains', () => {
    const g = new Graph('q');
    const x = g.createValue('x');
    g.inputs.push(x);
    const int8 = (name: string, dims: number[]) => g.addInitializer(name, Tensor.fromNumbers(DataType.INT8, dims, new Array(dims.reduce((a, b) => a * b, 1)).fill(1)));
    const f = (name: string) => g.addInitializer(name, Tensor.fromNumbers(DataType.FLOAT, [], [1]));
    const z = (name: string) => g.addInitializer(name, Tensor.fromNumbers(DataType.INT8, [], [0]));
    g.addNode({ opType: 'QLinearConv', name: 'qconv', inputs: [x, f('xs'), z('xz'), int8('w', [6, 3, 1, 1]), f('ws'), z('wz'), f('ys'), z('yz')], outputs: ['y1'] });
    g.addNode({ opType: 'QLinearMatMul', name: 'qmm', inputs: [x, f('as'), z('az'), int8('b', [4, 5]), f('bs'), z('bz'), f('ys2'), z('yz2')], outputs: ['y2'] });
    g.addNode({ opType: 'MatMulNBits', domain: 'com.microsoft', name: 'nbits', inputs: [x], outputs: ['y3'], attributes: [{ name: 'N', type: 'int', value: 32n }, { name: 'K', type: 'int', value: 16n }] });
    g.addNode({ opType: 'MatMulNBits', domain: 'example.other', name: 'lookalike', inputs: [x], outputs: ['y4'] });
    const found = findUnsupportedLayers(new Model(g));
    expect(found.map((u) => [u.name, u.op, u.width, u.blocker.code])).toEqual([
      ['qconv', 'QLinearConv', 6, 'quantized'],
      ['qmm', 'QLinearMatMul', 5, 'quantized'],
      ['nbits', 'com.microsoft.MatMulNBits', 32, 'quantized'],
    ]);
  });

  it('says so in inspect and audit, text and JSON, and never "no weight-bearing layers"', async () => {
    const inspected = inspectReport(inspect(fixturePath('conv-integer.onnx')));
    expect(inspected.unsupportedLayers.map((u) => [u.name, u.op, u.code])).toEqual([['conv1_quant', 'ConvInteger', 'quantized'], ['fc_quant', 'MatMulInteger', 'quantized']]);
    const text = formatInspect(inspected, { width: 200 });
    expect(text).toContain('not measured: conv1_quant (ConvInteger) computes in integers');
    expect(text).not.toContain('no weight-bearing layers');
    const run = await runCliInProcess(['audit', fixturePath('conv-integer.onnx'), '--json']);
    expect(run.code).toBe(0);
    const json = JSON.parse(run.stdout) as { unsupportedLayers: { name: string; width: number }[]; coverage: { neurons: number; blockers: { code: string; neurons: number }[] }; notes: string[] };
    expect(json.unsupportedLayers.map((u) => [u.name, u.width])).toEqual([['conv1_quant', 8], ['fc_quant', 10]]);
    expect(json.coverage.blockers.find((b) => b.code === 'quantized')).toEqual({ code: 'quantized', layers: 2, neurons: 18 });
    expect(json.notes.join(' ')).not.toContain('no weight-bearing layers');
  });
});

describe('coverage', () => {
  it('counts every hidden neuron once, rewritable or under each code that blocks it, and leaves read-outs apart', () => {
    for (const file of ['resnet-planted.onnx', 'depthwise-separable.onnx', 'se-block.onnx', 'mobilenet-v2.onnx', 'tf2onnx-nhwc.onnx', 'unet-concat.onnx']) {
      const r = inspect(fixturePath(file));
      const c = r.coverage;
      const widths = r.layers.reduce((n, l) => n + l.width, 0);
      expect(c.neurons + c.readoutNeurons, file).toBe(widths);
      expect(c.rewritableNeurons, file).toBe(c.aloneNeurons + c.groupedNeurons);
      expect(c.rewritableShare, file).toBeCloseTo(c.rewritableNeurons / c.neurons, 12);
      // Each blocked neuron counts under at least one code, and no code counts more than the blocked ones.
      const blocked = c.neurons - c.rewritableNeurons;
      expect(Math.max(0, ...c.blockers.map((b) => b.neurons)), file).toBeLessThanOrEqual(blocked);
      if (blocked > 0) expect(c.blockers.length, file).toBeGreaterThan(0);
      else expect(c.blockers, file).toEqual([]);
    }
  });

  it('finds the planted ResNet fully rewritable (its classifier a read-out), and names what holds back the LayerNorm MLP', () => {
    const resnet = inspect(fixturePath('resnet-planted.onnx')).coverage;
    expect([resnet.neurons, resnet.rewritableNeurons, resnet.groupedNeurons, resnet.mergeableGroups, resnet.readoutLayers, resnet.readoutNeurons]).toEqual([80, 80, 48, 1, 1, 10]);
    // fc1 feeds a LayerNorm, fc3's activation is a graph output; fc2 merges; the Gemm to 3 is the read-out.
    const mlp = inspect(fixturePath('mlp-layernorm.onnx')).coverage;
    expect([mlp.neurons, mlp.rewritableNeurons, mlp.aloneNeurons, mlp.readoutNeurons]).toEqual([44, 16, 16, 3]);
    expect(mlp.blockers.find((b) => b.code === 'normaliser')).toEqual({ code: 'normaliser', layers: 1, neurons: 16 });
    expect(mlp.blockers.find((b) => b.code === 'graph-output')).toEqual({ code: 'graph-output', layers: 1, neurons: 12 });
    const depthwise = inspect(fixturePath('depthwise-separable.onnx')).coverage;
    expect([depthwise.neurons, depthwise.rewritableNeurons]).toEqual([32, 32]);
    expect(depthwise.blockers.map((b) => b.code)).not.toContain('grouped-conv');
  });

  it('does not count a conv that feeds a residual Add as a read-out, though nothing linear reads it', () => {
    const r = inspect(fixturePath('mobilenet-v2.onnx'));
    const total = r.layers.filter((l) => l.name !== 'classifier').reduce((n, l) => n + l.width, 0);
    expect(r.coverage.neurons).toBe(total);
    expect([r.coverage.readoutLayers, r.coverage.readoutNeurons]).toEqual([1, 10]);
  });

  it('is one line in the inspect and audit text, and an object in their JSON', async () => {
    const text = formatInspect(inspectReport(inspect(fixturePath('mlp-layernorm.onnx'))), { width: 400 });
    const line = text.split('\n').find((l) => l.startsWith('coverage:'))!;
    expect(line).toMatch(/^coverage: prune can rewrite 16 of 44 neurons outside read-out layers \(36\.4%\), exactly where they agree or by refit \(--approximate\); 16 in layers merged alone; blocked by /);
    expect(line).toContain('normaliser 16 neurons (1 layer)');
    const result = await audit(fixturePath('mlp-layernorm.onnx'));
    expect(formatAuditTable(auditReport(result), { width: 400 })).toContain(describeCoverage(result.coverage));
    const run = await runCliInProcess(['inspect', fixturePath('se-block.onnx'), '--json']);
    const json = JSON.parse(run.stdout) as { coverage: Record<string, unknown> };
    expect(Object.keys(json.coverage).sort()).toEqual(['aloneNeurons', 'approximateGroupNeurons', 'approximateGroups', 'blockers', 'groupedNeurons', 'headBlocks', 'headNeurons', 'layers', 'mergeableGroups', 'neurons', 'readoutLayers', 'readoutNeurons', 'rewritableLayers', 'rewritableNeurons', 'rewritableShare']);
    expect(json.coverage).toMatchObject({ neurons: 56, readoutNeurons: 10 });
  });

  it('adds unsupported layers to the neurons and to their blocker code', () => {
    const model = loadModel(fixturePath('conv-integer.onnx'));
    const c = measureCoverage(findLayers(model), [], findUnsupportedLayers(model));
    expect([c.layers, c.neurons, c.rewritableNeurons]).toEqual([3, 34, 0]);
    expect(c.blockers[0]).toEqual({ code: 'quantized', layers: 2, neurons: 18 });
    expect(describeCoverage(c)).toContain('blocked by quantized 18 neurons (2 layers)');
  });

  it('counts the Q/K/V projections of attention blocks whose heads merge, packed ones too, and not grouped-query ones', () => {
    const llama = inspect(path.join(FIXTURES_DIR, 'transformers', 'llama-tiny-planted.onnx')).coverage;
    // Two blocks of three 16-wide projections; SwiGLU (2 x 32) merges alone; the stream's four
    // writers (o_proj, down_proj) merge approximately only, as one group.
    expect([llama.headNeurons, llama.headBlocks, llama.aloneNeurons, llama.approximateGroupNeurons, llama.approximateGroups, llama.rewritableNeurons, llama.neurons]).toEqual([96, 2, 64, 64, 1, 224, 224]);
    expect(describeCoverage(llama)).toContain('64 in 1 approximate-only group (residual stream, --approximate)');
    expect(llama.blockers.map((b) => b.code)).not.toContain('attention');
    expect(describeCoverage(llama)).toContain('96 in the Q/K/V projections of 2 attention blocks');
    // One packed 48-wide QKV projection cut by Split: its group is held back only by the block's own Reshapes.
    const packed = inspect(path.join(FIXTURES_DIR, 'attention', 'packed-planted.onnx')).coverage;
    expect([packed.headNeurons, packed.headBlocks]).toEqual([48, 1]);
    // Grouped-query heads are audited, not merged: their projections stay blocked by 'attention'.
    const gqa = inspect(path.join(FIXTURES_DIR, 'attention', 'gqa-planted.onnx')).coverage;
    expect(gqa.headNeurons).toBe(0);
    expect(gqa.blockers.find((b) => b.code === 'attention')).toMatchObject({ layers: 3, neurons: 32 });
  });

  it('counts packed QKV reshaped first (timm ViT, PVT\'s packed kv, Paddle2ONNX), whose projections were blocked by their Reshape', () => {
    // Three blocks: two 48-wide qkv projections and one 16-wide q with a 32-wide kv; 144 of 192 neurons.
    const vit = inspect(path.join(FIXTURES_DIR, 'attention', 'torch-vit-planted.onnx')).coverage;
    expect([vit.headNeurons, vit.headBlocks, vit.rewritableNeurons, vit.neurons]).toEqual([144, 3, 144, 192]);
    // Only the three 16-wide output projections (residual writers) are left to a non-linear consumer.
    expect(vit.blockers.find((b) => b.code === 'nonlinear-consumer')).toMatchObject({ layers: 3, neurons: 48 });
    const paddle = inspect(path.join(FIXTURES_DIR, 'attention', 'paddle-reshape-first-planted.onnx')).coverage;
    expect([paddle.headNeurons, paddle.headBlocks]).toEqual([48, 1]);
  });

  it('counts a classifier whose Softmax is the graph output as a read-out, not as blocked by a normaliser', () => {
    const b = new ExporterGraphBuilder('softmax-head');
    const dense = (outWidth: number, inWidth: number) => ({ outWidth, inWidth, weights: Float64Array.from({ length: outWidth * inWidth }, (_, i) => Math.sin(i + 1)), bias: undefined });
    const hidden = b.relu('relu', b.gemm('fc1', b.input('x', 4), dense(8, 4), 'initializer'), 'h');
    const probs = b.op('Softmax', 'softmax', [b.gemm('fc2', hidden, dense(5, 8), 'initializer')], 'probs', [{ name: 'axis', type: 'int', value: 1n }]);
    b.output(probs, 5);
    const c = measureCoverage(findLayers(b.model()), []);
    expect([c.readoutLayers, c.readoutNeurons, c.neurons, c.blockers]).toEqual([1, 5, 8, []]);
    // A Softmax inside the graph (attention scores) still blocks: only the output's is the read-out's.
    const inner = new ExporterGraphBuilder('softmax-inside');
    const s = inner.op('Softmax', 'softmax', [inner.gemm('fc1', inner.input('x', 4), dense(8, 4), 'initializer')], 's', [{ name: 'axis', type: 'int', value: 1n }]);
    inner.output(inner.gemm('fc2', s, dense(5, 8), 'initializer'), 5);
    expect(measureCoverage(findLayers(inner.model()), []).blockers.map((x) => x.code)).toContain('normaliser');
  });
});
