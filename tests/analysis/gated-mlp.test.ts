// Gated MLPs (SwiGLU, GeGLU): the gate and up projections that feed one Mul are found as one layer
// whose neuron is the pair (gate row, up row), measured on the product, and merged exactly when the
// gate rows are equal and the up rows proportional (the scale folded into down), approximately
// (least-squares refit of down) otherwise. Checked on the torch-exported LLaMA fixtures and on a
// GeGLU built here, always through onnxruntime.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findLayers, type NeuronLayer } from '../../src/analysis/find-layers.js';
import { inputWeightVectors, unitInputWeights } from '../../src/analysis/input-weights.js';
import { measureCondensation } from '../../src/analysis/measure-condensation.js';
import { DataType } from '../../src/ir/data-type.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { loadModel, saveModel } from '../../src/onnx/model-file.js';
import { ModelSession } from '../../src/runtime/model-session.js';
import { planMerges } from '../../src/rewrite/plan-merges.js';
import type { PruneReport } from '../../src/report/prune-report.js';
import { fixturePath, runCliInProcess } from '../helpers/cli-runner.js';
import { GraphBuilder } from '../helpers/graph-builder.js';
import { scratchFolder } from '../helpers/scratch-folder.js';

const scratch = scratchFolder('gated-mlp');
const llama = (file: string): string => fixturePath(path.join('transformers', file));

interface Manifest {
  models: Record<string, { planted: { layer: number; mlp: { pairs: { neuron: number; of: number; upScale: number }[] } }[] }>;
}
const manifest = JSON.parse(fs.readFileSync(llama('expected.json'), 'utf8')) as Manifest;

/** Neurons that the planted pairs make equivalent, as sorted classes of two or more. */
function plantedClasses(pairs: { neuron: number; of: number }[]): number[][] {
  const classes = new Map<number, Set<number>>();
  for (const { neuron, of } of pairs) classes.set(of, (classes.get(of) ?? new Set([of])).add(neuron));
  return [...classes.values()].map((s) => [...s].sort((a, b) => a - b)).sort((a, b) => a[0]! - b[0]!);
}

/** The classes a plan's merges form (each neuron with the representative it folds into). */
function mergedClasses(merges: { neuron: number; into: number }[]): number[][] {
  return plantedClasses(merges.map((m) => ({ neuron: m.neuron, of: m.into })));
}

async function logitsOf(file: string | Uint8Array, ids: number[][]): Promise<Float32Array> {
  const session = await ModelSession.create(typeof file === 'string' ? fs.readFileSync(file) : file, 'model');
  try {
    const out = await session.run({ input_ids: { dataType: DataType.INT64, dims: [ids.length, ids[0]!.length], data: BigInt64Array.from(ids.flat(), BigInt) } });
    return out.logits!.data as Float32Array;
  } finally {
    await session.release();
  }
}

function maxRelative(a: Float32Array, b: Float32Array): number {
  let gap = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    gap = Math.max(gap, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(a[i]!));
  }
  return gap / scale;
}

const swiglu = (layers: NeuronLayer[]): NeuronLayer[] => layers.filter((l) => l.gated);

describe('gated MLPs in the exported LLaMA decoder', () => {
  const model = loadModel(llama('llama-tiny-planted.onnx'));
  const layers = findLayers(model);

  it('are one mergeable SwiGLU layer per block, replacing the gate and up projections, with down as the consumer', () => {
    const gated = swiglu(layers);
    expect(gated.map((l) => l.name)).toEqual(['/layers.0/mlp/gate_proj*up_proj', '/layers.1/mlp/gate_proj*up_proj']);
    for (const [i, layer] of gated.entries()) {
      expect(layer.op).toBe('SwiGLU');
      expect(layer.width).toBe(32);
      expect(layer.mergeable, layer.blockers.map((b) => b.message).join('; ')).toBe(true);
      expect(layer.activation.name).toBe('Silu (decomposed) * up');
      expect(layer.activation.output).toBe(layer.gated!.mul.outputs[0]);
      expect(layer.consumers.map((c) => c.node.name)).toEqual([`/layers.${i}/mlp/down_proj/MatMul`]);
    }
    const names = layers.map((l) => l.name);
    expect(names.some((n) => n.endsWith('gate_proj/MatMul') || n.endsWith('up_proj/MatMul'))).toBe(false);
  });

  it('give input-weight vectors in which a planted pair is u_j = t u_r with the planted up scale t, of either sign', () => {
    const layer = swiglu(layers)[0]!;
    const { rows, dim } = inputWeightVectors(layer);
    for (const { neuron, of, upScale } of manifest.models['llama-tiny-planted.onnx']!.planted[0]!.mlp.pairs) {
      for (let i = 0; i < dim; i++) expect(rows[neuron * dim + i]!).toBeCloseTo(upScale * rows[of * dim + i]!, 6);
    }
    // An unplanted pair is not parallel.
    const dot = (a: number, b: number): number => rows.subarray(a * dim, (a + 1) * dim).reduce((s, x, i) => s + x * rows[b * dim + i]!, 0);
    expect(Math.abs(dot(0, 1)) / Math.sqrt(dot(0, 0) * dot(1, 1))).toBeLessThan(0.9);
  });

  it('give wide-layer unit vectors (float32, read in place) equal to the input-weight vectors normalised', () => {
    const layer = swiglu(layers)[1]!;
    const { rows, dim } = inputWeightVectors(layer);
    const { unit, norms, dim: unitDim } = unitInputWeights(layer);
    expect(unitDim).toBe(dim);
    for (let k = 0; k < layer.width; k++) {
      const row = rows.subarray(k * dim, (k + 1) * dim);
      const norm = Math.hypot(...row);
      expect(norms[k]).toBeCloseTo(norm, 10);
      for (let i = 0; i < dim; i++) expect(unit[k * dim + i]).toBeCloseTo(row[i]! / norm, 6);
    }
  });

  it('plan exactly the planted merges: 32 -> 29 and 32 -> 30', () => {
    const measured = swiglu(layers).map((l) => measureCondensation(l, undefined));
    const plan = planMerges(measured);
    expect(plan.layers.map((l) => [l.layer, l.widthAfter])).toEqual([['/layers.0/mlp/gate_proj*up_proj', 29], ['/layers.1/mlp/gate_proj*up_proj', 30]]);
    for (const [i, lp] of plan.layers.entries()) {
      expect(mergedClasses(lp.merges)).toEqual(plantedClasses(manifest.models['llama-tiny-planted.onnx']!.planted[i]!.mlp.pairs));
      expect(lp.statics).toEqual([]);
    }
  });

  it.each(['llama-tiny-planted.onnx', 'llama-gqa-planted.onnx'])('are pruned from %s by `condense prune` with relative error below 1e-5, and the written model runs in onnxruntime', async (file) => {
    const out = path.join(scratch.freshFolder(), 'pruned.onnx');
    const run = await runCliInProcess(['prune', llama(file), '--random', '64', '--shape', 'input_ids=1x8', '-o', out, '--json', '--quiet']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as PruneReport;
    expect(report.layers.map((l) => [l.name, l.width, l.widthAfter, l.refit])).toEqual([
      ['/layers.0/mlp/gate_proj*up_proj', 32, 29, false],
      ['/layers.1/mlp/gate_proj*up_proj', 32, 30, false],
    ]);
    expect(report.fidelity.maxRelError).toBeLessThan(1e-5);
    const pruned = loadModel(out);
    const weightDims = (name: string): readonly number[] => pruned.graph.nodes.find((n) => n.name === name)!.inputs[1]!.constantTensor()!.dims;
    expect(weightDims('/layers.0/mlp/gate_proj/MatMul')).toEqual([16, 29]);
    expect(weightDims('/layers.0/mlp/up_proj/MatMul')).toEqual([16, 29]);
    expect(weightDims('/layers.0/mlp/down_proj/MatMul')).toEqual([29, 16]);
    expect(weightDims('/layers.1/mlp/down_proj/MatMul')).toEqual([30, 16]);
    // Our own run, independent of prune's verification: other ids, another length.
    const ids = [[3, 14, 15, 9, 2, 6, 5, 3, 5, 8, 9], [27, 1, 8, 28, 18, 28, 4, 5, 9, 0, 31]];
    expect(maxRelative(await logitsOf(llama(file), ids), await logitsOf(out, ids))).toBeLessThan(1e-5);
  });

  it('merge approximately, refitting down by least squares, when a gate row is only close to another', async () => {
    const perturbed = loadModel(llama('llama-tiny-planted.onnx'));
    const gate = perturbed.graph.nodes.find((n) => n.name === '/layers.0/mlp/gate_proj/MatMul')!.inputs[1]!;
    const t = gate.constantTensor()!;
    const w = t.toFloat32();
    for (let i = 0; i < 16; i++) w[i * 32 + 7]! += 1e-3 * Math.cos(i); // neuron 7's gate row was a copy of neuron 3's
    perturbed.graph.setConstant(gate, Tensor.fromFloat32(t.dims, w, t.name));
    const dir = scratch.freshFolder();
    const input = path.join(dir, 'perturbed.onnx');
    saveModel(perturbed, input);
    const exact = await runCliInProcess(['prune', input, '--random', '64', '--shape', 'input_ids=1x8', '--dry-run', '--json', '--quiet']);
    expect((JSON.parse(exact.stdout) as PruneReport).layers[0]!.widthAfter).toBe(30);
    const out = path.join(dir, 'approximate.onnx');
    const run = await runCliInProcess(['prune', input, '--random', '512', '--shape', 'input_ids=1x8', '--approximate', '--threshold', '0.999', '--max-error', '1e-2', '-o', out, '--json', '--quiet']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as PruneReport;
    const first = report.layers.find((l) => l.name === '/layers.0/mlp/gate_proj*up_proj')!;
    expect(first.refit).toBe(true);
    expect(first.widthAfter).toBeLessThanOrEqual(29);
    expect(report.fidelity.maxRelError).toBeLessThan(1e-2);
    expect(fs.existsSync(out)).toBe(true);
  });
});

/** x[batch, 6] -> GeGLU (gate and up MatMul+Add 6 -> 8, GELU as Div/Erf/Add/Mul/Mul) -> down MatMul+Add 8 -> 3. */
function buildGeglu(): Model {
  const b = new GraphBuilder('geglu');
  const x = b.input('x', DataType.FLOAT, ['batch', 6]);
  const random = (n: number, seed: number): number[] => Array.from({ length: n }, (_, i) => Math.sin(seed * 97.1 + i * 12.9898) * 0.6);
  const gateW = random(48, 1);
  const gateB = random(8, 2);
  const upW = random(48, 3);
  const upB = random(8, 4);
  // Neuron 5 = (gate of neuron 1, up of neuron 1 times -2); weights are [in, out], so neuron k is column k.
  for (let i = 0; i < 6; i++) {
    gateW[i * 8 + 5] = gateW[i * 8 + 1]!;
    upW[i * 8 + 5] = -2 * upW[i * 8 + 1]!;
  }
  gateB[5] = gateB[1]!;
  upB[5] = -2 * upB[1]!;
  const f32 = (dims: number[], v: number[]): Tensor => Tensor.fromFloat32(dims, Float32Array.from(v));
  const [gz] = b.node('MatMul', [x, b.initializer('gate.w', f32([6, 8], gateW))], {}, { name: 'gate' });
  const [g] = b.node('Add', [gz!, b.initializer('gate.b', f32([8], gateB))], {}, { name: 'gate_bias' });
  const [d] = b.node('Div', [g!, b.initializer('sqrt2', f32([], [Math.SQRT2]))], {}, { name: 'gelu_div' });
  const [e] = b.node('Erf', [d!], {}, { name: 'gelu_erf' });
  const [e1] = b.node('Add', [e!, b.initializer('one', f32([], [1]))], {}, { name: 'gelu_add' });
  const [m] = b.node('Mul', [g!, e1!], {}, { name: 'gelu_mul' });
  const [act] = b.node('Mul', [m!, b.initializer('half', f32([], [0.5]))], {}, { name: 'gelu_half' });
  const [uz] = b.node('MatMul', [x, b.initializer('up.w', f32([6, 8], upW))], {}, { name: 'up' });
  const [u] = b.node('Add', [uz!, b.initializer('up.b', f32([8], upB))], {}, { name: 'up_bias' });
  const [h] = b.node('Mul', [u!, act!], {}, { name: 'glu' });
  const [dz] = b.node('MatMul', [h!, b.initializer('down.w', f32([8, 3], random(24, 5)))], {}, { name: 'down' });
  const [y] = b.node('Add', [dz!, b.initializer('down.b', f32([3], random(3, 6)))], {}, { name: 'down_bias', outputs: ['y'] });
  b.output(y!, DataType.FLOAT, ['batch', 3]);
  return b.build(17);
}

describe('a GeGLU with the up factor first in the Mul', () => {
  it('is found as one GeGLU layer and its planted pair (equal gate, up scaled by -2) merges exactly: 8 -> 7', async () => {
    const model = buildGeglu();
    const layers = findLayers(model);
    expect(layers.map((l) => [l.name, l.op, l.mergeable])).toEqual([['gate*up', 'GeGLU', true], ['down', 'MatMul+Add', false]]);
    const dir = scratch.freshFolder();
    const input = path.join(dir, 'geglu.onnx');
    saveModel(model, input);
    const out = path.join(dir, 'pruned.onnx');
    const run = await runCliInProcess(['prune', input, '--random', '64', '-o', out, '--json', '--quiet']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as PruneReport;
    expect(report.layers).toHaveLength(1);
    // The larger vector is kept: neuron 1 folds into 5 with t = -1/2 (the sign goes into down).
    expect(report.layers[0]!.merges).toEqual([{ neuron: 1, into: 5, scale: -0.5, kind: 'multiple' }]);
    expect(report.fidelity.maxRelError).toBeLessThan(1e-5);
    expect(loadModel(out).graph.nodes.find((n) => n.name === 'up')!.inputs[1]!.constantTensor()!.dims).toEqual([6, 7]);
  });
});

describe('what is not a gated MLP', () => {
  /** x, z [batch, 6] -> sigmoid(x Wg) * (src Wu) -> down; src is x or z; `extraReader` also reads the gate activation. */
  function build(upReadsOtherInput: boolean, extraReader: boolean): Model {
    const b = new GraphBuilder('not_glu');
    const x = b.input('x', DataType.FLOAT, ['batch', 6]);
    const z = b.input('z', DataType.FLOAT, ['batch', 6]);
    const w = (name: string, rows: number, cols: number): ReturnType<GraphBuilder['initializer']> => b.initializer(name, Tensor.fromFloat32([rows, cols], Float32Array.from({ length: rows * cols }, (_, i) => Math.cos(name.length + i))));
    const [g] = b.node('MatMul', [x, w('gate.w', 6, 8)], {}, { name: 'gate' });
    const [s] = b.node('Sigmoid', [g!], {}, { name: 'gate_act' });
    const [u] = b.node('MatMul', [upReadsOtherInput ? z : x, w('up.w', 6, 8)], {}, { name: 'up' });
    const [h] = b.node('Mul', [s!, u!], {}, { name: 'glu' });
    const [y] = b.node('MatMul', [h!, w('down.w', 8, 3)], {}, { name: 'down', outputs: ['y'] });
    b.output(y!, DataType.FLOAT, ['batch', 3]);
    if (extraReader) b.output(s!, DataType.FLOAT, ['batch', 8]);
    return b.build(17);
  }

  it('joins the gate and up projections only when both read the same data and nothing else reads the gate', () => {
    expect(findLayers(build(false, false)).map((l) => [l.name, l.op])).toEqual([['gate*up', 'GLU'], ['down', 'MatMul']]);
    for (const model of [build(true, false), build(false, true)]) {
      const layers = findLayers(model);
      expect(layers.map((l) => l.name)).toEqual(['gate', 'up', 'down']);
      expect(layers.every((l) => !l.gated)).toBe(true);
      expect(layers[1]!.blockers.map((b) => b.code)).toContain('gate');
    }
  });
});
