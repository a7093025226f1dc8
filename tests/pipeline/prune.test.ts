// prune and audit end to end on model files: prune never touches its input, writes nothing when
// verification fails (and leaves no temporary files), and otherwise replaces the output in one
// rename; audit measures weights without data and outputs only when given probes.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findLayers } from '../../src/analysis/find-layers.js';
import { OptionError, VerificationError } from '../../src/errors.js';
import { loadModel, saveModel } from '../../src/onnx/model-file.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { audit } from '../../src/pipeline/audit.js';
import { prune } from '../../src/pipeline/prune.js';
import { buildMlp, CONSUMER, gaussianVector, HIDDEN, randomInputs, relativeError, runMlp } from '../rewrite/two-layer-mlp.js';

const INPUT_WIDTH = 4;
const OUTPUT_WIDTH = 2;

/** A ReLU layer of 8 neurons: 3 independent, then a copy, a 2x multiple, a 0.5x multiple a near-duplicate,
 * and a dead one (no input weights, no bias). */
function condensedMlp(): ReturnType<typeof buildMlp> {
  const rng = new SeededRandom(42);
  const u = [0, 1, 2].map(() => gaussianVector(rng, INPUT_WIDTH));
  const b = [0.3, -0.2, 0.1];
  const near = u[2]!.map((w) => w + 0.05 * rng.gaussian());
  return buildMlp({
    form: 'Gemm',
    activation: 'Relu',
    transB: true,
    inputWeights: [u[0]!, u[1]!, u[2]!, [...u[0]!], u[1]!.map((w) => 2 * w), u[0]!.map((w) => 0.5 * w), near, new Array(INPUT_WIDTH).fill(0)],
    biases: [b[0]!, b[1]!, b[2]!, b[0]!, 2 * b[1]!, 0.5 * b[0]!, b[2]! + 0.01, 0],
    outgoingWeights: Array.from({ length: 8 }, () => gaussianVector(rng, OUTPUT_WIDTH)),
    outputBias: gaussianVector(rng, OUTPUT_WIDTH),
  });
}

let dir: string;
let input: string;
let inputBytes: Buffer;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-prune-'));
  input = path.join(dir, 'model.onnx');
  saveModel(condensedMlp(), input);
  inputBytes = fs.readFileSync(input);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A fresh empty folder holding a copy of the input, so each test sees exactly what it wrote. */
function workFolder(name: string): { folder: string; model: string } {
  const folder = path.join(dir, name);
  fs.mkdirSync(folder);
  const model = path.join(folder, 'model.onnx');
  fs.writeFileSync(model, inputBytes);
  return { folder, model };
}

describe('prune', () => {
  it('refuses to write over its input, by the same path or another spelling of it, and leaves the input byte-identical', async () => {
    const { folder, model } = workFolder('same-path');
    const spellings = [model, path.join(folder, '..', 'same-path', '.', 'model.onnx')];
    fs.symlinkSync(model, path.join(folder, 'link.onnx'));
    spellings.push(path.join(folder, 'link.onnx'));
    for (const output of spellings) {
      const error = await prune(model, { output, probe: { random: 64 } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OptionError);
      expect((error as OptionError).code).toBe('BAD_OPTION');
      // The library names the API option; the CLI shows it as --output.
      expect((error as OptionError).subject).toBe('output');
      expect((error as Error).message).toMatch(/is the input model/);
    }
    expect(fs.readFileSync(model).equals(inputBytes)).toBe(true);
    expect(fs.readdirSync(folder).sort()).toEqual(['link.onnx', 'model.onnx']);
  });

  it('writes nothing and leaves no temporary file when verification fails, naming the layer at fault', async () => {
    const { folder, model } = workFolder('verification-fails');
    const output = path.join(folder, 'pruned.onnx');
    // An approximate refit is never exact, so a bound of 0 cannot be met.
    const error = await prune(model, {
      output,
      probe: { random: 128, seed: 1 },
      analysis: { similarityThreshold: 0.95 },
      merge: { approximate: true },
      verify: { maxError: 0 },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VerificationError);
    const failure = error as VerificationError;
    expect(failure.code).toBe('VERIFICATION_FAILED');
    expect(failure.subject).toBe(model);
    expect(failure.layersAtFault).toEqual([HIDDEN]);
    expect(failure.message).toMatch(new RegExp(`layers at fault: ${HIDDEN} \\(`));
    expect(failure.message).toMatch(/nothing was written/);
    expect(fs.existsSync(output)).toBe(false);
    expect(fs.readdirSync(folder)).toEqual(['model.onnx']);
    expect(fs.readFileSync(model).equals(inputBytes)).toBe(true);
  });

  it('replaces an existing output in one step with a verified, narrower model and leaves nothing else behind', async () => {
    const { folder, model } = workFolder('writes');
    const output = path.join(folder, 'pruned.onnx');
    fs.writeFileSync(output, 'an older file the pruned model replaces');
    const result = await prune(model, { output, probe: { random: 128, seed: 2 } });
    expect(result.output).toBe(output);
    expect(fs.readdirSync(folder).sort()).toEqual(['model.onnx', 'pruned.onnx']);
    expect(fs.readFileSync(model).equals(inputBytes)).toBe(true);

    // Exact mode: the copy and the two multiples merge and the dead neuron goes; the near-duplicate stays.
    const lp = result.plan.layers.find((l) => l.layer === HIDDEN)!;
    expect(lp.merges.map((m) => m.kind).sort()).toEqual(['copy', 'multiple', 'multiple']);
    expect(lp.statics.map((s) => s.neuron)).toEqual([7]);
    expect(lp.widthAfter).toBe(4);
    expect(result.neurons).toEqual({ before: 8 + OUTPUT_WIDTH, after: 4 + OUTPUT_WIDTH });
    expect(result.params.after).toBe(result.params.before - 4 * (INPUT_WIDTH + 1 + OUTPUT_WIDTH));
    expect(result.fidelity.maxRelError).toBeLessThanOrEqual(1e-5);

    const written = loadModel(output);
    expect(findLayers(written).find((l) => l.name === HIDDEN)?.width).toBe(4);
    expect(findLayers(written).find((l) => l.name === CONSUMER)).toBeDefined();
    const x = randomInputs(3, 50, INPUT_WIDTH);
    expect(relativeError(await runMlp(inputBytes, x, INPUT_WIDTH), await runMlp(fs.readFileSync(output), x, INPUT_WIDTH))).toBeLessThanOrEqual(1e-5);
  });

  it('writes nothing on a dry run but still plans and verifies', async () => {
    const { folder, model } = workFolder('dry-run');
    const result = await prune(model, { output: path.join(folder, 'pruned.onnx'), dryRun: true, probe: { random: 64 } });
    expect(result.output).toBeNull();
    expect(result.plan.layers.find((l) => l.layer === HIDDEN)?.widthAfter).toBe(4);
    expect(result.fidelity.samples).toBeGreaterThan(0);
    expect(fs.readdirSync(folder)).toEqual(['model.onnx']);
  });

  it('says at once that there is nothing to merge, verifying and writing no identical copy', async () => {
    const folder = path.join(dir, 'nothing-to-merge');
    fs.mkdirSync(folder);
    const output = path.join(folder, 'pruned.onnx');
    const result = await prune(path.join(import.meta.dirname, '../../fixtures/mnist-mlp.onnx'), { output, probe: { random: 64 } });
    expect(result.nothingToMerge).toBe(true);
    expect(result.output).toBeNull();
    expect(result.fidelity.samples).toBe(0);
    expect(result.params.after).toBe(result.params.before);
    expect(fs.readdirSync(folder)).toEqual([]);
  });

  it('under a budget, says there is nothing removable without one verification run when no layer can lose a neuron', async () => {
    const folder = path.join(dir, 'nothing-removable');
    fs.mkdirSync(folder);
    const rng = new SeededRandom(9);
    // One hidden neuron: a layer keeps at least one, and it has no exact merge.
    const model = path.join(folder, 'one-neuron.onnx');
    saveModel(buildMlp({ form: 'Gemm', activation: 'Relu', transB: true, inputWeights: [gaussianVector(rng, INPUT_WIDTH)], biases: [0.1], outgoingWeights: [gaussianVector(rng, OUTPUT_WIDTH)], outputBias: [0, 0] }), model);
    const output = path.join(folder, 'pruned.onnx');
    const result = await prune(model, { output, probe: { random: 64 }, budget: { maxError: 1 } });
    expect(result.nothingToMerge).toBe(true);
    expect(result.search?.verifications).toBe(0);
    expect(fs.readdirSync(folder)).toEqual(['one-neuron.onnx']);
  });
});

describe('audit', () => {
  it('is data-free without probes: weight clusters only, no output clusters', async () => {
    const result = await audit(input);
    expect(result.probeSamples).toBe(0);
    expect(result.probeSource).toBeUndefined();
    const hidden = result.layers.find((l) => l.layer.name === HIDDEN)!;
    expect(result.layers.every((l) => l.outputClusters === undefined && l.outputCosine === undefined)).toBe(true);
    // Weight clusters: {0, 3, 5}, {1, 4}, {2, 6} (the near-duplicate has cos > 0.95) and static 7.
    expect(hidden.staticNeurons).toEqual([7]);
    expect(hidden.weightClusters.count).toBe(3);
    const labels = hidden.weightClusters.labels;
    expect([labels[0], labels[5]]).toEqual([labels[3], labels[3]]);
    expect(labels[4]).toBe(labels[1]);
    expect(labels[6]).toBe(labels[2]);
    expect(labels[7]).toBe(-1);
  });

  it('runs random probes through the model with --random and clusters the outputs too', async () => {
    const result = await audit(input, { probe: { random: 96, seed: 4 } });
    expect(result.probeSamples).toBe(96);
    expect(result.probeSource).toMatch(/random/);
    const hidden = result.layers.find((l) => l.layer.name === HIDDEN)!;
    expect(hidden.outputClusters).toBeDefined();
    expect(hidden.statistics?.count).toBe(96);
    expect(hidden.outputClusters!.labels[3]).toBe(hidden.outputClusters!.labels[0]);
    // Output similarity of a neuron with its own copy is 1.
    expect(hidden.outputCosine![3 * 8 + 0]).toBeCloseTo(1, 5);
  });
});
