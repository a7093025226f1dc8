// The activation tracer names the elementwise chain after a layer and works out its algebra on
// numbers. Each case builds x -> MatMul(identity) -> activation -> Gemm(identity) -> y, so y[:, k]
// is the activation of neuron k; onnxruntime runs that model on a grid and the tracer's own
// evaluation of the chain must agree with it, which keeps the numeric model of each op honest.

import { describe, expect, it } from 'vitest';
import { findLayers, type NeuronLayer } from '../../src/analysis/find-layers.js';
import { DataType } from '../../src/ir/data-type.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { Value } from '../../src/ir/value.js';
import { encodeModel } from '../../src/onnx/encode-model.js';
import { ModelSession } from '../../src/runtime/model-session.js';
import { float, GraphBuilder, str } from '../helpers/graph-builder.js';

const WIDTH = 3;
const f32 = (dims: number[], values: number[]): Tensor => Tensor.fromNumbers(DataType.FLOAT, dims, values);
const scalar = (x: number): Tensor => f32([], [x]);
const identity = (m: number): Tensor => f32([m, m], Array.from({ length: m * m }, (_, i) => (i % (m + 1) === 0 ? 1 : 0)));

/** Points where each neuron's activation is compared with onnxruntime (kept where float32 is precise). */
const GRID = Float64Array.from({ length: 97 }, (_, i) => -6 + i * 0.125);

interface Case {
  title: string;
  /** Appends the activation after z and returns its output. */
  activation: (b: GraphBuilder, z: Value) => Value;
  name: string;
  homogeneous: boolean;
  odd: boolean;
  opset?: number;
}

function buildModel(activation: Case['activation'], opset: number): Model {
  const b = new GraphBuilder('activation');
  const x = b.input('x', DataType.FLOAT, ['N', WIDTH]);
  const [z] = b.node('MatMul', [x, b.initializer('w1', identity(WIDTH))], {}, { name: 'layer' });
  const h = activation(b, z!);
  const [y] = b.node('Gemm', [h, b.initializer('w2', identity(WIDTH)), b.initializer('b2', f32([WIDTH], [0, 0, 0]))], {}, { name: 'consumer', outputs: ['y'] });
  b.output(y!, DataType.FLOAT, ['N', WIDTH]);
  return b.build(opset);
}

/** Runs the model with neuron k's column holding GRID and returns y column by column. */
async function runColumns(model: Model): Promise<Float64Array[]> {
  const x = new Float32Array(GRID.length * WIDTH);
  GRID.forEach((v, n) => {
    for (let k = 0; k < WIDTH; k++) x[n * WIDTH + k] = v;
  });
  const session = await ModelSession.create(encodeModel(model).modelBytes, 'activation model');
  try {
    const out = await session.run({ x: { dataType: DataType.FLOAT, dims: [GRID.length, WIDTH], data: x } });
    const y = out.y!.data as Float32Array;
    return Array.from({ length: WIDTH }, (_, k) => Float64Array.from(GRID, (_v, n) => y[n * WIDTH + k]!));
  } finally {
    await session.release();
  }
}

function tracedLayer(model: Model): NeuronLayer {
  const layer = findLayers(model).find((l) => l.name === 'layer');
  expect(layer, 'the MatMul layer is found').toBeDefined();
  return layer!;
}

async function expectAgreesWithRuntime(model: Model, layer: NeuronLayer): Promise<void> {
  const columns = await runColumns(model);
  for (let k = 0; k < WIDTH; k++) {
    const traced = layer.activation.evaluate(k, GRID);
    const actual = columns[k]!;
    for (let i = 0; i < GRID.length; i++) {
      expect(Math.abs(traced[i]! - actual[i]!), `neuron ${k} at z = ${GRID[i]}`).toBeLessThanOrEqual(2e-6 * (1 + Math.abs(actual[i]!)));
    }
  }
}

const cases: Case[] = [
  { title: 'Relu', activation: (b, z) => b.node('Relu', [z])[0]!, name: 'Relu', homogeneous: true, odd: false },
  { title: 'LeakyRelu', activation: (b, z) => b.node('LeakyRelu', [z], { alpha: float(0.1) })[0]!, name: 'LeakyRelu(0.1)', homogeneous: true, odd: false },
  { title: 'Tanh', activation: (b, z) => b.node('Tanh', [z])[0]!, name: 'Tanh', homogeneous: false, odd: true },
  { title: 'Sigmoid', activation: (b, z) => b.node('Sigmoid', [z])[0]!, name: 'Sigmoid', homogeneous: false, odd: false },
  { title: 'the Gelu op', activation: (b, z) => b.node('Gelu', [z])[0]!, name: 'Gelu', homogeneous: false, odd: false, opset: 20 },
  {
    title: 'the Gelu op with approximate="tanh"',
    activation: (b, z) => b.node('Gelu', [z], { approximate: str('tanh') })[0]!,
    name: 'Gelu',
    homogeneous: false,
    odd: false,
    opset: 20,
  },
  {
    // What torch.onnx writes for nn.GELU() before opset 20: x * 0.5 * (1 + erf(x / sqrt(2))).
    title: 'a decomposed GELU (x * 0.5 * (1 + Erf(x / 1.41421356)))',
    activation: (b, z) => {
      const [scaled] = b.node('Div', [z, b.constant('sqrt2', scalar(1.41421356))]);
      const [erf] = b.node('Erf', [scaled!]);
      const [onePlus] = b.node('Add', [erf!, b.constant('one', scalar(1))]);
      const [times] = b.node('Mul', [z, onePlus!]);
      return b.node('Mul', [times!, b.constant('half', scalar(0.5))])[0]!;
    },
    name: 'Gelu (decomposed)',
    homogeneous: false,
    odd: false,
  },
  {
    // The tanh form: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))).
    title: 'the tanh-form GELU decomposition',
    activation: (b, z) => {
      const [cube] = b.node('Pow', [z, b.constant('three', scalar(3))]);
      const [cubeScaled] = b.node('Mul', [cube!, b.constant('c', scalar(0.044715))]);
      const [inner] = b.node('Add', [z, cubeScaled!]);
      const [arg] = b.node('Mul', [inner!, b.constant('k', scalar(Math.sqrt(2 / Math.PI)))]);
      const [t] = b.node('Tanh', [arg!]);
      const [onePlus] = b.node('Add', [t!, b.constant('one', scalar(1))]);
      const [half] = b.node('Mul', [z, b.constant('half', scalar(0.5))]);
      return b.node('Mul', [half!, onePlus!])[0]!;
    },
    name: 'Gelu(tanh) (decomposed)',
    homogeneous: false,
    odd: false,
  },
  {
    // x * Clip(x + 3, 0, 6) / 6 with the bounds as Constant inputs (opset >= 11 Clip).
    title: 'a decomposed HardSwish with Clip bounds as Constant inputs',
    activation: (b, z) => {
      const [shifted] = b.node('Add', [z, b.constant('three', scalar(3))]);
      const [clipped] = b.node('Clip', [shifted!, b.constant('lo', scalar(0)), b.constant('hi', scalar(6))]);
      const [times] = b.node('Mul', [z, clipped!]);
      return b.node('Div', [times!, b.constant('six', scalar(6))])[0]!;
    },
    name: 'HardSwish (decomposed)',
    homogeneous: false,
    odd: false,
  },
  { title: 'HardSigmoid', activation: (b, z) => b.node('HardSigmoid', [z])[0]!, name: 'HardSigmoid', homogeneous: false, odd: false },
  {
    // Relu6: Clip(0, 6) caps large values, so scaling the input does not scale the output.
    title: 'Clip(0, 6) (ReLU6)',
    activation: (b, z) => b.node('Clip', [z, b.constant('lo', scalar(0)), b.constant('hi', scalar(6))])[0]!,
    name: 'Clip',
    homogeneous: false,
    odd: false,
  },
  { title: 'an Identity node', activation: (b, z) => b.node('Identity', [z])[0]!, name: 'Identity', homogeneous: true, odd: true },
  { title: 'no activation at all', activation: (_b, z) => z, name: 'Identity', homogeneous: true, odd: true },
];

describe('traceActivation', () => {
  it.each(cases)('classifies $title as "$name" (homogeneous $homogeneous, odd $odd), matching onnxruntime', async (c) => {
    const model = buildModel(c.activation, c.opset ?? 13);
    const layer = tracedLayer(model);
    const act = layer.activation;
    expect(act.name).toBe(c.name);
    expect(act.isPositivelyHomogeneous).toBe(c.homogeneous);
    expect(act.isOdd).toBe(c.odd);
    expect(layer.mergeable, layer.blockers.map((b) => b.message).join('; ')).toBe(true);
    // One function for every neuron: the constants are shared scalars.
    expect([...act.functionIds]).toEqual([0, 0, 0]);
    await expectAgreesWithRuntime(model, layer);
  });

  it('takes the whole decomposed chain as the activation, so the consumer reads its last node', () => {
    const gelu = cases.find((c) => c.name === 'Gelu (decomposed)')!;
    const layer = tracedLayer(buildModel(gelu.activation, 13));
    expect(layer.activation.nodes.map((n) => n.opType)).toEqual(['Div', 'Erf', 'Add', 'Mul', 'Mul']);
    expect(layer.activation.output.uses().map((u) => u.node.label)).toEqual(['consumer']);
    expect(layer.consumers.map((c) => c.node.label)).toEqual(['consumer']);
  });

  it('gives PRelu neurons with different slopes different function ids, and equal slopes the same', async () => {
    const slopes = [0.25, 0.5, 0.25];
    const model = buildModel((b, z) => b.node('PRelu', [z, b.initializer('slope', f32([WIDTH], slopes))])[0]!, 13);
    const layer = tracedLayer(model);
    const act = layer.activation;
    expect(act.name).toBe('PRelu');
    expect(act.isPositivelyHomogeneous).toBe(true);
    expect(act.isOdd).toBe(false);
    expect(act.perNeuron.map((v) => v.name)).toEqual(['slope']);
    expect(act.functionIds[0]).toBe(act.functionIds[2]);
    expect(act.functionIds[0]).not.toBe(act.functionIds[1]);
    await expectAgreesWithRuntime(model, layer);
  });

  it('finds a negative LeakyRelu slope and a PRelu slope of -1 (which is |z|) positively homogeneous but not odd', () => {
    const leaky = tracedLayer(buildModel((b, z) => b.node('LeakyRelu', [z], { alpha: float(-0.5) })[0]!, 13)).activation;
    expect(leaky.isPositivelyHomogeneous).toBe(true);
    expect(leaky.isOdd).toBe(false);
    const abs = tracedLayer(buildModel((b, z) => b.node('PRelu', [z, b.initializer('slope', f32([1], [-1]))])[0]!, 13)).activation;
    expect(abs.isPositivelyHomogeneous).toBe(true);
    expect(abs.isOdd).toBe(false);
    expect(abs.perNeuron).toEqual([]);
  });
});
