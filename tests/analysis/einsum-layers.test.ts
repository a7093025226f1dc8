// Einsum in its two-operand matmul form was added to the op table (analysis/layer-rules.ts) and
// nowhere else: these tests show it is found as a layer and as a consumer, in both weight
// orientations, that its planted neurons merge, and that onnxruntime agrees with the rewrite.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findLayers } from '../../src/analysis/find-layers.js';
import { einsumMatmulAxes, producerRules } from '../../src/analysis/layer-rules.js';
import { DataType } from '../../src/ir/data-type.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { encodeModel } from '../../src/onnx/encode-model.js';
import { loadModel, saveModel } from '../../src/onnx/model-file.js';
import { prune } from '../../src/pipeline/prune.js';
import { compareModels } from '../../src/pipeline/verify-rewrite.js';
import { randomProbes } from '../../src/runtime/probe-data.js';
import { GraphBuilder, str } from '../helpers/graph-builder.js';

const IN = 5;
const HIDDEN = 8;
const OUT = 3;

/**
 * x -> Einsum(x, W1) + b1 -> Relu -> Einsum(h, W2) -> y, where hidden neuron 6 is 2.5 x neuron 1
 * and neuron 7 has zero input weights (a static neuron). `transposed` stores the weights as
 * [out, in] ('bi,ji->bj') instead of [in, out] ('bi,ij->bj').
 */
function einsumMlp(transposed: boolean): Model {
  const rng = new SeededRandom(7);
  const rows = Array.from({ length: HIDDEN }, () => Array.from({ length: IN }, () => rng.gaussian()));
  const b1 = Array.from({ length: HIDDEN }, () => rng.gaussian() * 0.3);
  rows[6] = rows[1]!.map((w) => 2.5 * w);
  b1[6] = 2.5 * b1[1]!;
  rows[7] = new Array(IN).fill(0);
  b1[7] = 0.8;
  const out = Array.from({ length: HIDDEN }, () => Array.from({ length: OUT }, () => rng.gaussian()));
  const g = new GraphBuilder('einsum-mlp');
  const x = g.input('x', DataType.FLOAT, ['N', IN]);
  const w1 = transposed
    ? g.initializer('W1', Tensor.fromNumbers(DataType.FLOAT, [HIDDEN, IN], rows.flat()))
    : g.initializer('W1', Tensor.fromNumbers(DataType.FLOAT, [IN, HIDDEN], Array.from({ length: IN * HIDDEN }, (_, i) => rows[i % HIDDEN]![Math.floor(i / HIDDEN)]!)));
  const w2 = transposed
    ? g.initializer('W2', Tensor.fromNumbers(DataType.FLOAT, [OUT, HIDDEN], Array.from({ length: OUT * HIDDEN }, (_, i) => out[i % HIDDEN]![Math.floor(i / HIDDEN)]!)))
    : g.initializer('W2', Tensor.fromNumbers(DataType.FLOAT, [HIDDEN, OUT], out.flat()));
  const eq = transposed ? 'bi,ji->bj' : 'bi,ij->bj';
  const [z] = g.node('Einsum', [x, w1], { equation: str(eq) }, { name: 'fc1' });
  const [a] = g.node('Add', [z!, g.initializer('b1', Tensor.fromNumbers(DataType.FLOAT, [HIDDEN], b1))], {}, { name: 'fc1_bias' });
  const [h] = g.node('Relu', [a!], {}, { name: 'relu' });
  const [y] = g.node('Einsum', [h!, w2], { equation: str(transposed ? 'bj,kj->bk' : 'bj,jk->bk') }, { name: 'fc2', outputs: ['y'] });
  g.output(y!, DataType.FLOAT, ['N', OUT]);
  return g.build(13);
}

describe('Einsum in matmul form', () => {
  it('reads the contracted and output axes from the equation, and refuses other forms', () => {
    const axes = (equation: string): unknown => {
      const g = new GraphBuilder();
      const x = g.input('x', DataType.FLOAT, [2, 2]);
      g.node('Einsum', [x, x], { equation: str(equation) }, { name: 'e' });
      return einsumMatmulAxes(g.graph.nodes[0]!);
    };
    expect(axes('bi,ij->bj')).toEqual({ inAxis: 0, outAxis: 1 });
    expect(axes('bi,ji->bj')).toEqual({ inAxis: 1, outAxis: 0 });
    expect(axes('...i, io -> ...o')).toEqual({ inAxis: 0, outAxis: 1 });
    expect(axes('bsi,io->bso')).toEqual({ inAxis: 0, outAxis: 1 });
    expect(axes('ij,jk->ik')).toEqual({ inAxis: 0, outAxis: 1 });
    expect(axes('bi,ij->jb')).toBeUndefined();
    expect(axes('bij,jk->bik')).toEqual({ inAxis: 0, outAxis: 1 });
    expect(axes('bji,jk->bik')).toBeUndefined();
    expect(axes('bi,bi->b')).toBeUndefined();
    expect(axes('bi,ij')).toBeUndefined();
    expect(producerRules.Einsum).toBeDefined();
  });

  for (const transposed of [false, true]) {
    const form = transposed ? '[out, in] weights' : '[in, out] weights';
    it(`is a mergeable layer with its Add bias and an Einsum consumer (${form})`, () => {
      const layers = findLayers(einsumMlp(transposed));
      const fc1 = layers.find((l) => l.name === 'fc1')!;
      expect(fc1.op).toBe('Einsum+Add');
      expect(fc1.width).toBe(HIDDEN);
      expect(fc1.outAxis).toBe(transposed ? 0 : 1);
      expect(fc1.bias?.perNeuron).toBe(true);
      expect(fc1.consumers.map((c) => c.node.label)).toEqual(['fc2']);
      expect(fc1.blockers).toEqual([]);
      expect(fc1.mergeable).toBe(true);
    });

    it(`merges the planted neurons and onnxruntime agrees with the original (${form})`, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-einsum-'));
      const input = path.join(dir, 'einsum.onnx');
      const output = path.join(dir, 'einsum-pruned.onnx');
      saveModel(einsumMlp(transposed), input);
      const result = await prune(input, { output, probe: { random: 64 }, verify: { maxError: 1e-5 } });
      const plan = result.plan.layers.find((l) => l.layer === 'fc1')!;
      // Neuron 1 folds into its multiple 6 (h_1 = 0.4 h_6), whichever way the planner orders them.
      expect(plan.merges.map((m) => [m.neuron, m.into])).toEqual([[1, 6]]);
      expect(plan.merges[0]!.scale).toBeCloseTo(0.4, 5);
      expect(plan.statics.map((s) => s.neuron)).toEqual([7]);
      expect(plan.widthAfter).toBe(HIDDEN - 2);
      const pruned = loadModel(output);
      const weights = pruned.graph.initializers.find((v) => v.name === 'W2')!.constantTensor()!;
      expect(weights.dims).toEqual(transposed ? [OUT, HIDDEN - 2] : [HIDDEN - 2, OUT]);
      // The static neuron's constant went into a new bias Add after fc2, which kept the name "y".
      expect(pruned.graph.nodes.map((n) => n.opType)).toEqual(['Einsum', 'Add', 'Relu', 'Einsum', 'Add']);
      expect(pruned.graph.outputs.map((v) => v.name)).toEqual(['y']);
      const fidelity = await compareModels(encodeModel(einsumMlp(transposed)).modelBytes, encodeModel(pruned).modelBytes, 'einsum', randomProbes(pruned, 32, { seed: 3 }));
      expect(fidelity.maxRelError).toBeLessThan(1e-5);
    });
  }
});
