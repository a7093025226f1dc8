// Exact merging, differentially: plant redundant neurons in a random two-layer MLP, plan, apply
// and clean up, then run the original and the rewrite in onnxruntime on random inputs. The law
// (condensation.md, "Why merging is exact"): positive multiples under a positively homogeneous
// activation, negations under an odd one, copies under any, and zero-input neurons fold away
// without changing the outputs.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { findLayers } from '../../src/analysis/find-layers.js';
import { measureCondensation } from '../../src/analysis/measure-condensation.js';
import { loadModel, saveModel } from '../../src/onnx/model-file.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { prune } from '../../src/pipeline/prune.js';
import { applyMergePlan } from '../../src/rewrite/apply-merge-plan.js';
import { cleanUp } from '../../src/rewrite/clean-up.js';
import { planMerges, type MergePlan } from '../../src/rewrite/plan-merges.js';
import type { Model } from '../../src/ir/model.js';
import { buildMlp, CONSUMER, gaussianVector, HIDDEN, modelBytes, randomInputs, relativeError, runMlp, type MlpActivation, type MlpForm } from './two-layer-mlp.js';

const INPUT_WIDTH = 5;
const OUTPUT_WIDTH = 3;
const ROWS = 32;

type Planted = 'base' | 'multiple' | 'negated' | 'copy' | 'zero-input';

interface PlantedLayer {
  model: Model;
  /** What each neuron is, the base neuron it derives from, and h_k = factor * h_base. */
  neurons: { kind: Planted; base: number; factor: number }[];
}

/**
 * A width-m layer where the first `baseCount` neurons (before shuffling) are independent and every
 * other one is planted: a multiple (ReLU) or negation (tanh) of a base neuron, a copy, or a neuron
 * with zero input weights.
 */
function plantLayer(form: MlpForm, activation: MlpActivation, width: number, baseCount: number, seed: number, transB: boolean): PlantedLayer {
  const rng = new SeededRandom(seed);
  const order = [...Array(width).keys()];
  for (let i = width - 1; i > 0; i--) {
    const j = rng.integer(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const inputWeights: number[][] = new Array(width);
  const biases: number[] = new Array(width);
  const neurons: PlantedLayer['neurons'] = new Array(width);
  const bases = order.slice(0, baseCount);
  for (const k of bases) {
    inputWeights[k] = gaussianVector(rng, INPUT_WIDTH);
    biases[k] = rng.gaussian();
    neurons[k] = { kind: 'base', base: k, factor: 1 };
  }
  const scaleKind: Planted = activation === 'Relu' ? 'multiple' : 'negated';
  for (const k of order.slice(baseCount)) {
    const kind = (['copy', scaleKind, 'zero-input'] as const)[rng.integer(3)]!;
    const base = bases[rng.integer(baseCount)]!;
    if (kind === 'zero-input') {
      inputWeights[k] = new Array(INPUT_WIDTH).fill(0);
      biases[k] = rng.gaussian();
      neurons[k] = { kind, base: k, factor: 1 };
      continue;
    }
    // Multiples stay well away from 1, so they are not mistaken for copies.
    const factor = kind === 'copy' ? 1 : kind === 'negated' ? -1 : (rng.next() < 0.5 ? 0.25 + 0.6 * rng.next() : 1.2 + 2.8 * rng.next());
    inputWeights[k] = inputWeights[base]!.map((w) => factor * w);
    biases[k] = factor * biases[base]!;
    neurons[k] = { kind, base, factor };
  }
  const model = buildMlp({
    form,
    activation,
    transB,
    inputWeights,
    biases,
    outgoingWeights: Array.from({ length: width }, () => gaussianVector(rng, OUTPUT_WIDTH)),
    outputBias: gaussianVector(rng, OUTPUT_WIDTH),
  });
  return { model, neurons };
}

/** Plans exact merges for the model's layers (without probes: a data-free plan). */
function planExact(model: Model): { plan: MergePlan; layers: ReturnType<typeof findLayers> } {
  const layers = findLayers(model);
  const plan = planMerges(layers.map((l) => measureCondensation(l, undefined)));
  return { plan, layers };
}

describe('exact merging of planted neurons', () => {
  it('removes exactly the planted neurons and leaves the outputs unchanged in onnxruntime', async () => {
    const cases = fc.record({
      mlp: fc.constantFrom<[MlpForm, MlpActivation]>(['Gemm', 'Relu'], ['MatMul+Add', 'Tanh']),
      width: fc.integer({ min: 2, max: 24 }),
      baseShare: fc.double({ min: 0, max: 1, noNaN: true }),
      seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      transB: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(cases, async ({ mlp: [form, activation], width, baseShare, seed, transB }) => {
        const baseCount = 1 + Math.floor(baseShare * (width - 1));
        const { model, neurons } = plantLayer(form, activation, width, baseCount, seed, transB);
        const original = modelBytes(model);
        const { plan, layers } = planExact(model);

        // Planning: only the hidden layer is mergeable (the readout's output is the graph output).
        expect(layers.find((l) => l.name === CONSUMER)?.mergeable).toBe(false);
        const planted = neurons.filter((n) => n.kind !== 'base').length;
        if (planted === 0) {
          expect(plan.layers).toEqual([]);
          return;
        }
        expect(plan.layers).toHaveLength(1);
        const lp = plan.layers[0]!;
        expect(lp.layer).toBe(HIDDEN);
        expect(lp.width).toBe(width);
        expect(lp.widthAfter).toBe(baseCount);
        const zeroInput = neurons.flatMap((n, k) => (n.kind === 'zero-input' ? [k] : []));
        expect(lp.statics.map((s) => s.neuron).sort((a, b) => a - b)).toEqual(zeroInput);
        expect(lp.statics.every((s) => s.kind === 'zero-input')).toBe(true);
        for (const merge of lp.merges) {
          const from = neurons[merge.neuron]!;
          const into = neurons[merge.into]!;
          // Merged neurons derive from the same base, and h_neuron = scale * h_into.
          expect(from.base).toBe(into.base);
          expect(merge.scale).toBeCloseTo(from.factor / into.factor, 5);
          expect(merge.kind).toBe(merge.scale === 1 ? 'copy' : activation === 'Relu' ? 'multiple' : 'negated');
        }
        expect(lp.merges.length + lp.statics.length).toBe(planted);

        // Applying: the hidden layer keeps baseCount neurons and the outputs do not move.
        applyMergePlan(model, layers, plan);
        cleanUp(model);
        const after = findLayers(model).find((l) => l.name === HIDDEN)!;
        expect(after.width).toBe(baseCount);
        expect(after.mergeable).toBe(true);
        const x = randomInputs(seed ^ 0x5bd1e995, ROWS, INPUT_WIDTH);
        const [yBefore, yAfter] = [await runMlp(original, x, INPUT_WIDTH), await runMlp(modelBytes(model), x, INPUT_WIDTH)];
        expect(yAfter).toHaveLength(yBefore.length);
        expect(relativeError(yBefore, yAfter)).toBeLessThanOrEqual(1e-5);
      }),
      { numRuns: 20, seed: 20240601 },
    );
  });

  it.each<[MlpForm, MlpActivation, number]>([
    ['Gemm', 'Gelu', 2],
    ['Gemm', 'Tanh', 2],
    ['MatMul+Add', 'Tanh', -2],
    ['MatMul+Add', 'Relu', -1],
  ])('does not merge, in a %s layer with %s, a neuron that is %d times another, but merges a copy', (form, activation, factor) => {
    const rng = new SeededRandom(99);
    const u = gaussianVector(rng, INPUT_WIDTH);
    const v = gaussianVector(rng, INPUT_WIDTH);
    // Neurons: u, factor * u, v, v (a copy).
    const model = buildMlp({
      form,
      activation,
      inputWeights: [u, u.map((w) => factor * w), v, [...v]],
      biases: [0.5, 0.5 * factor, -0.3, -0.3],
      outgoingWeights: Array.from({ length: 4 }, () => gaussianVector(rng, OUTPUT_WIDTH)),
      outputBias: gaussianVector(rng, OUTPUT_WIDTH),
    });
    const { plan, layers } = planExact(model);
    const hidden = layers.find((l) => l.name === HIDDEN)!;
    expect(hidden.mergeable).toBe(true);
    // The planner saw the pair as parallel: cos(u, factor u) = sign(factor).
    const measured = measureCondensation(hidden, undefined);
    expect(Math.abs(measured.weightCosine[1 * 4 + 0]!)).toBeCloseTo(1, 6);
    expect(plan.layers).toHaveLength(1);
    expect(plan.layers[0]!.merges).toEqual([{ neuron: 3, into: 2, scale: 1, kind: 'copy' }]);
    expect(plan.layers[0]!.widthAfter).toBe(3);
  });
});

describe('approximate merging', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-approx-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('shrinks a tanh layer of near-duplicates (cos ~ 0.999), keeping the error small and below naive folding', async () => {
    const rng = new SeededRandom(5);
    const directions = 4;
    const copies = 4;
    const width = directions * copies;
    const inputWeights: number[][] = [];
    const biases: number[] = [];
    let smallestCosine = 1;
    for (let d = 0; d < directions; d++) {
      const u = gaussianVector(rng, INPUT_WIDTH + 1);
      const norm = Math.hypot(...u);
      for (let c = 0; c < copies; c++) {
        // A perturbation of 4% of |u| in a random direction: cos(u, u') is about 0.999.
        const noise = gaussianVector(rng, INPUT_WIDTH + 1);
        const noiseNorm = Math.hypot(...noise);
        const near = u.map((x, i) => x + (0.04 * norm * noise[i]!) / noiseNorm);
        const dot = near.reduce((s, x, i) => s + x * u[i]!, 0);
        smallestCosine = Math.min(smallestCosine, dot / (norm * Math.hypot(...near)));
        inputWeights.push(near.slice(0, INPUT_WIDTH));
        biases.push(near[INPUT_WIDTH]!);
      }
    }
    expect(smallestCosine).toBeGreaterThan(0.998);
    expect(smallestCosine).toBeLessThan(0.9995);
    const outgoingWeights = Array.from({ length: width }, () => gaussianVector(rng, OUTPUT_WIDTH));
    const outputBias = gaussianVector(rng, OUTPUT_WIDTH);
    const model = buildMlp({ form: 'MatMul+Add', activation: 'Tanh', inputWeights, biases, outgoingWeights, outputBias });
    const input = path.join(dir, 'near.onnx');
    const output = path.join(dir, 'near-pruned.onnx');
    saveModel(model, input);
    // Exactly, nothing merges: no two neurons are exact multiples.
    expect(planExact(loadModel(input)).plan.layers).toEqual([]);

    const result = await prune(input, {
      output,
      probe: { random: 512, seed: 3 },
      analysis: { similarityThreshold: 0.99 },
      merge: { approximate: true },
      verify: { maxError: 0.1 },
    });
    const lp = result.plan.layers.find((l) => l.layer === HIDDEN)!;
    expect(lp.refit).toBeDefined();
    expect(lp.widthAfter).toBe(directions);
    expect(result.fidelity.maxRelError).toBeGreaterThan(0);
    expect(result.fidelity.maxRelError).toBeLessThanOrEqual(0.1);
    const written = findLayers(loadModel(output)).find((l) => l.name === HIDDEN)!;
    expect(written.width).toBe(directions);

    // On fresh inputs the pruned model stays close to the original, and closer than folding each
    // near-duplicate into the first of its group with scale 1 (what exact merging would do).
    const rows = 256;
    const x = randomInputs(77, rows, INPUT_WIDTH);
    const yOriginal = await runMlp(fs.readFileSync(input), x, INPUT_WIDTH);
    const refitError = relativeError(yOriginal, await runMlp(fs.readFileSync(output), x, INPUT_WIDTH));
    const yNaive = new Float32Array(rows * OUTPUT_WIDTH);
    for (let r = 0; r < rows; r++) {
      const h = inputWeights.map((w, k) => Math.tanh(w.reduce((s, wi, i) => s + wi * x[r * INPUT_WIDTH + i]!, biases[k]!)));
      for (let o = 0; o < OUTPUT_WIDTH; o++) {
        yNaive[r * OUTPUT_WIDTH + o] = outgoingWeights.reduce((s, a, k) => s + a[o]! * h[k - (k % copies)]!, outputBias[o]!);
      }
    }
    const naiveError = relativeError(yOriginal, yNaive);
    expect(refitError).toBeLessThanOrEqual(0.1);
    expect(refitError).toBeLessThan(naiveError);
  });
});
