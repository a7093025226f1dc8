// Layer discovery: which nodes become neuron layers, how wide they are, and why a layer cannot be
// merged, in words that name the cause. The last part walks the ONNX backend test suite: whatever
// a real model holds, discovery and measurement must not throw.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findLayers, type NeuronLayer } from '../../src/analysis/find-layers.js';
import { measureCondensation } from '../../src/analysis/measure-condensation.js';
import { DataType, isFloatType } from '../../src/ir/data-type.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { Value } from '../../src/ir/value.js';
import { encodeModel } from '../../src/onnx/encode-model.js';
import { decodeTensorFile } from '../../src/onnx/decode-model.js';
import { loadModel } from '../../src/onnx/model-file.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { ModelSession } from '../../src/runtime/model-session.js';
import { float, graph, GraphBuilder, int, ints } from '../helpers/graph-builder.js';

const IN = 4;
const WIDTH = 6;
const OUT = 3;

function randomTensor(rng: SeededRandom, dims: number[]): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return Tensor.fromNumbers(DataType.FLOAT, dims, Array.from({ length: n }, () => rng.gaussian()));
}

/** A constant either as an initializer or as a Constant node, the two forms files use. */
type ConstantForm = 'initializer' | 'Constant node';
function constantOf(b: GraphBuilder, form: ConstantForm, name: string, t: Tensor): Value {
  return form === 'initializer' ? b.initializer(name, t) : b.constant(name, t);
}

/** x -> layer -> Relu -> h -> what `tail` appends; returns the model and h. */
function withLayer(tail: (b: GraphBuilder, h: Value, x: Value) => Value | undefined, opset = 13): Model {
  const rng = new SeededRandom(7);
  const b = new GraphBuilder('g');
  const x = b.input('x', DataType.FLOAT, ['N', IN]);
  const [z] = b.node('Gemm', [x, b.initializer('w1', randomTensor(rng, [WIDTH, IN])), b.initializer('b1', randomTensor(rng, [WIDTH]))], { transB: int(1) }, { name: 'layer' });
  const [h] = b.node('Relu', [z!], {}, { outputs: ['h'] });
  const y = tail(b, h!, x);
  if (y) b.output(y, DataType.FLOAT);
  return b.build(opset);
}

/** A Gemm consumer reading h with constant weights: the linear reader a mergeable layer needs. */
function gemmConsumer(b: GraphBuilder, h: Value, name = 'consumer', width = WIDTH): Value {
  const rng = new SeededRandom(11);
  return b.node('Gemm', [h, b.initializer(`${name}_w`, randomTensor(rng, [width, OUT])), b.initializer(`${name}_b`, randomTensor(rng, [OUT]))], {}, { name })[0]!;
}

function layerNamed(model: Model, name: string): NeuronLayer {
  const layer = findLayers(model).find((l) => l.name === name);
  expect(layer, `layer "${name}"`).toBeDefined();
  return layer!;
}

/** Runs the model once, so every in-memory model here is also one onnxruntime accepts. */
async function expectRuns(model: Model, feeds: Record<string, number[]>): Promise<void> {
  const session = await ModelSession.create(encodeModel(model).modelBytes, 'find-layers model');
  try {
    const inputs = Object.fromEntries(Object.entries(feeds).map(([name, dims]) => [name, { dataType: DataType.FLOAT, dims, data: new Float32Array(dims.reduce((a, c) => a * c, 1)).fill(0.5) }]));
    const out = await session.run(inputs);
    expect(Object.keys(out).length).toBeGreaterThan(0);
  } finally {
    await session.release();
  }
}

function expectBlocked(layer: NeuronLayer, cause: RegExp): void {
  expect(layer.mergeable).toBe(false);
  expect(layer.blockers.some((b) => cause.test(b.message)), `reasons: ${layer.blockers.map((b) => b.message).join('; ')}`).toBe(true);
}

describe('findLayers finds dense layers', () => {
  it.each([0, 1])('finds a Gemm with transB=%i and reads its width from the right weight axis', async (transB) => {
    const rng = new SeededRandom(1);
    const b = new GraphBuilder('g');
    const x = b.input('x', DataType.FLOAT, ['N', IN]);
    // transB=1 stores W as [width, in]; transB=0 as [in, width].
    const w = randomTensor(rng, transB ? [WIDTH, IN] : [IN, WIDTH]);
    const [z] = b.node('Gemm', [x, b.initializer('w1', w), b.initializer('b1', randomTensor(rng, [WIDTH]))], { transB: int(transB) }, { name: 'layer' });
    const [h] = b.node('Relu', [z!]);
    b.output(gemmConsumer(b, h!), DataType.FLOAT);
    const model = b.build();
    const layer = layerNamed(model, 'layer');
    expect(layer.op).toBe('Gemm');
    expect(layer.width).toBe(WIDTH);
    expect(layer.outAxis).toBe(transB ? 0 : 1);
    expect(layer.bias?.perNeuron).toBe(true);
    expect(layer.mergeable, layer.blockers.map((b) => b.message).join('; ')).toBe(true);
    expect(layer.consumers.map((c) => c.node.label)).toEqual(['consumer']);
    await expectRuns(model, { x: [2, IN] });
  });

  it.each<ConstantForm>(['initializer', 'Constant node'])('finds MatMul+Add with weights given as an %s', async (form) => {
    const rng = new SeededRandom(2);
    const b = new GraphBuilder('g');
    const x = b.input('x', DataType.FLOAT, ['N', IN]);
    const [p] = b.node('MatMul', [x, constantOf(b, form, 'w1', randomTensor(rng, [IN, WIDTH]))], {}, { name: 'layer' });
    const [z] = b.node('Add', [p!, constantOf(b, form, 'b1', randomTensor(rng, [WIDTH]))], {}, { name: 'layer_bias' });
    const [h] = b.node('Tanh', [z!]);
    const [q] = b.node('MatMul', [h!, constantOf(b, form, 'w2', randomTensor(rng, [WIDTH, OUT]))], {}, { name: 'consumer' });
    const [y] = b.node('Add', [q!, constantOf(b, form, 'b2', randomTensor(rng, [OUT]))]);
    b.output(y!, DataType.FLOAT);
    const model = b.build();
    const layer = layerNamed(model, 'layer');
    expect(layer.op).toBe('MatMul+Add');
    expect(layer.width).toBe(WIDTH);
    expect(layer.biasNode?.label).toBe('layer_bias');
    expect(layer.bias?.perNeuron).toBe(true);
    expect(layer.activation.name).toBe('Tanh');
    expect(layer.mergeable, layer.blockers.map((b) => b.message).join('; ')).toBe(true);
    expect(layer.consumers).toHaveLength(1);
    expect(layer.consumers[0]!.bias?.value.name).toBe('b2');
    // The consumer is a layer too; its output is the graph output, so it cannot be merged.
    expectBlocked(layerNamed(model, 'consumer'), /graph output/);
    await expectRuns(model, { x: [2, IN] });
  });
});

describe('findLayers explains why a layer is not mergeable', () => {
  it('names a LayerNormalization after the layer', async () => {
    const model = withLayer((b, h) => {
      const [n] = b.node('LayerNormalization', [h, b.initializer('gamma', Tensor.fromNumbers(DataType.FLOAT, [WIDTH], new Array(WIDTH).fill(1)))], { axis: int(-1) }, { name: 'norm' });
      return gemmConsumer(b, n!);
    }, 17);
    expectBlocked(layerNamed(model, 'layer'), /LayerNormalization.*"norm"/);
    await expectRuns(model, { x: [2, IN] });
  });

  it('names the ReduceMean of a decomposed LayerNorm', async () => {
    const model = withLayer((b, h) => {
      const [mean] = b.node('ReduceMean', [h], { axes: ints([-1]), keepdims: int(1) }, { name: 'mean' });
      const [centred] = b.node('Sub', [h, mean!], {}, { name: 'centre' });
      const [square] = b.node('Mul', [centred!, centred!]);
      const [variance] = b.node('ReduceMean', [square!], { axes: ints([-1]), keepdims: int(1) });
      const [shifted] = b.node('Add', [variance!, b.initializer('eps', Tensor.fromNumbers(DataType.FLOAT, [], [1e-5]))]);
      const [std] = b.node('Sqrt', [shifted!]);
      const [normed] = b.node('Div', [centred!, std!]);
      return gemmConsumer(b, normed!);
    });
    expectBlocked(layerNamed(model, 'layer'), /ReduceMean.*"mean"/);
    await expectRuns(model, { x: [2, IN] });
  });

  it('names a Softmax over the neurons', async () => {
    const model = withLayer((b, h) => b.node('Softmax', [h], { axis: int(-1) }, { name: 'softmax' })[0]);
    expectBlocked(layerNamed(model, 'layer'), /Softmax.*"softmax"/);
    await expectRuns(model, { x: [2, IN] });
  });

  it('names a residual Add with a non-constant operand', async () => {
    const model = withLayer((b, h) => {
      const rng = new SeededRandom(3);
      const b2 = b.initializer('skip_w', randomTensor(rng, [WIDTH, IN]));
      const [skip] = b.node('Gemm', [b.graph.inputs[0]!, b2], { transB: int(1) }, { name: 'skip' });
      const [sum] = b.node('Add', [h, skip!], {}, { name: 'residual' });
      return gemmConsumer(b, sum!);
    });
    expectBlocked(layerNamed(model, 'layer'), /Add with a non-constant operand.*"residual"/);
    await expectRuns(model, { x: [2, IN] });
  });

  it('names a layer output that is a graph output', async () => {
    const model = withLayer((b, h) => {
      b.output(gemmConsumer(b, h), DataType.FLOAT);
      return h;
    });
    expectBlocked(layerNamed(model, 'layer'), /"h" is a graph output/);
    await expectRuns(model, { x: [2, IN] });
  });

  it('names a consumer that multiplies by another activation (attention-like), not a constant', async () => {
    const rng = new SeededRandom(4);
    const b = new GraphBuilder('g');
    const x = b.input('x', DataType.FLOAT, ['T', IN]);
    const [q] = b.node('MatMul', [x, b.initializer('wq', randomTensor(rng, [IN, WIDTH]))], {}, { name: 'query' });
    const [k] = b.node('MatMul', [x, b.initializer('wk', randomTensor(rng, [IN, WIDTH]))], {}, { name: 'key' });
    const [kt] = b.node('Transpose', [k!], { perm: ints([1, 0]) }, { name: 'key_t' });
    const [scores] = b.node('MatMul', [q!, kt!], {}, { name: 'scores' });
    b.output(scores!, DataType.FLOAT);
    const model = b.build();
    expectBlocked(layerNamed(model, 'query'), /consumer "scores" \(MatMul\) multiplies by a non-constant/);
    expectBlocked(layerNamed(model, 'key'), /"key_t" \(Transpose\)/);
    await expectRuns(model, { x: [5, IN] });
  });

  it('names the other node that shares the layer weights', async () => {
    const rng = new SeededRandom(5);
    const b = new GraphBuilder('g');
    const x = b.input('x', DataType.FLOAT, ['N', IN]);
    const w = b.initializer('w_shared', randomTensor(rng, [WIDTH, IN]));
    const [z1] = b.node('Gemm', [x, w], { transB: int(1) }, { name: 'first' });
    const [z2] = b.node('Gemm', [x, w], { transB: int(1) }, { name: 'second' });
    const [h1] = b.node('Relu', [z1!]);
    const [h2] = b.node('Relu', [z2!]);
    b.output(gemmConsumer(b, h1!, 'c1'), DataType.FLOAT);
    b.output(gemmConsumer(b, h2!, 'c2'), DataType.FLOAT);
    const model = b.build();
    expectBlocked(layerNamed(model, 'first'), /weights are shared with "second"/);
    expectBlocked(layerNamed(model, 'second'), /weights are shared with "first"/);
    await expectRuns(model, { x: [2, IN] });
  });

  it('names the If whose branch holds the layer', async () => {
    const rng = new SeededRandom(6);
    const b = new GraphBuilder('g');
    const x = b.input('x', DataType.FLOAT, ['N', IN]);
    const cond = b.input('cond', DataType.BOOL, []);
    const branch = (name: string): GraphBuilder => {
      const sub = new GraphBuilder(name, b);
      const [z] = sub.node('Gemm', [x, sub.constant(`${name}_w1`, randomTensor(rng, [WIDTH, IN]))], { transB: int(1) }, { name: `${name}_layer` });
      const [h] = sub.node('Relu', [z!]);
      const [y] = sub.node('Gemm', [h!, sub.constant(`${name}_w2`, randomTensor(rng, [WIDTH, OUT]))], {}, { name: `${name}_consumer` });
      sub.output(y!, DataType.FLOAT, ['N', OUT]);
      return sub;
    };
    const [y] = b.node('If', [cond], { then_branch: graph(branch('then')), else_branch: graph(branch('else')) }, { name: 'choose' });
    b.output(y!, DataType.FLOAT, ['N', OUT]);
    const model = b.build();
    for (const name of ['then_layer', 'else_layer']) {
      const layer = layerNamed(model, name);
      expectBlocked(layer, /inside the body of If "choose"/);
      expect(layer.subgraphOf?.label).toBe('choose');
      expect(layer.width).toBe(WIDTH);
    }
    const session = await ModelSession.create(encodeModel(model).modelBytes, 'if model');
    try {
      const out = await session.run({
        x: { dataType: DataType.FLOAT, dims: [2, IN], data: new Float32Array(2 * IN).fill(1) },
        cond: { dataType: DataType.BOOL, dims: [], data: Uint8Array.of(1) },
      });
      expect(out[y!.name]!.dims).toEqual([2, OUT]);
    } finally {
      await session.release();
    }
  });

  it('takes a chain of activations as one, and names its end as a graph output', () => {
    const model = withLayer((b, h) => b.node('LeakyRelu', [h], { alpha: float(0.2) }, { name: 'again' })[0]);
    const layer = layerNamed(model, 'layer');
    expect(layer.activation.nodes.map((n) => n.opType)).toEqual(['Relu', 'LeakyRelu']);
    expectBlocked(layer, /graph output/);
  });
});

// The ONNX backend test suite as a corpus: hundreds of graphs written by others.
const CORPUS = process.env.ONNX_TESTDATA ?? '/usr/share/libonnx-testdata/data';
const corpusModels = fs.existsSync(CORPUS)
  ? fs.readdirSync(CORPUS).flatMap((suite) => {
    const dir = path.join(CORPUS, suite);
    if (!fs.statSync(dir).isDirectory()) return [];
    return fs.readdirSync(dir).map((t) => path.join(dir, t, 'model.onnx')).filter((f) => fs.existsSync(f));
  })
  : [];
if (corpusModels.length === 0) console.warn(`find-layers: skipping the ONNX backend suite, ${CORPUS} is missing (apt-get install libonnx-testdata)`);

/**
 * The model as onnxruntime reads it: before IR version 4 every initializer had to be listed among
 * the graph inputs too, and such an initializer is still a constant (onnxruntime lets callers
 * override initializers only from IR 4 on). The IR treats every initializer that is also an input
 * as overridable, so without this step the old PyTorch exports here show no layers at all.
 */
function asConstantInitializers(model: Model): Model {
  if (model.irVersion < 4) model.graph.inputs = model.graph.inputs.filter((v) => !v.initializer);
  return model;
}

/**
 * The node tests feed weights as graph inputs, so nothing in them is a layer as written. Freezing
 * every input after the first to its stored value (test_data_set_0) turns the Gemm, MatMul and
 * Conv tests into layers with the odd shapes and attributes the suite exercises.
 */
function freezeStoredInputs(model: Model, folder: string): Model {
  const fed = model.graph.inputs.filter((v) => !v.initializer);
  fed.forEach((v, i) => {
    const file = path.join(folder, 'test_data_set_0', `input_${i}.pb`);
    if (i === 0 || v.type?.kind !== 'tensor' || !isFloatType(v.type.elemType) || !fs.existsSync(file)) return;
    v.initializer = decodeTensorFile(fs.readFileSync(file), file).withName(v.name);
    model.graph.initializers.push(v);
    model.graph.inputs = model.graph.inputs.filter((x) => x !== v);
  });
  return model;
}

describe('findLayers on the ONNX backend test suite', () => {
  it.skipIf(corpusModels.length === 0)(`never throws, nor does measureCondensation on what it finds (skipped without ${CORPUS}: apt-get install libonnx-testdata)`, () => {
    let decoded = 0;
    let layerCount = 0;
    const ops = new Set<string>();
    const failures: string[] = [];
    for (const file of corpusModels) {
      let model: Model;
      try {
        model = loadModel(file);
      } catch {
        continue;
      }
      decoded++;
      try {
        // As the file says, then with IR < 4 initializers read as the constants they are, then
        // with the node tests' weights frozen.
        findLayers(model);
        const layers = [...findLayers(asConstantInitializers(model)), ...findLayers(freezeStoredInputs(model, path.dirname(file)))];
        for (const layer of layers) {
          const subject = `${file}: ${layer.name}`;
          expect(layer.width, subject).toBeGreaterThan(0);
          expect(layer.mergeable, subject).toBe(layer.blockers.length === 0);
          const measured = measureCondensation(layer, undefined);
          expect(measured.weightClusters.labels.length, subject).toBe(layer.width);
          expect(measured.outputClusters, subject).toBeUndefined();
          layerCount++;
          ops.add(layer.op);
        }
      } catch (error) {
        failures.push(`${path.relative(CORPUS, file)}: ${(error as Error).message.split('\n')[0]}`);
      }
    }
    expect(failures, failures.slice(0, 10).join('\n')).toEqual([]);
    // About 1070 of the suite's models decode, holding over 90 layers of all four kinds.
    expect(decoded).toBeGreaterThan(1000);
    expect(layerCount).toBeGreaterThan(80);
    expect([...ops].sort()).toEqual(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);
  });
});
