// Two-layer MLPs for rewrite and pipeline tests: x -> layer -> activation -> consumer -> y, with the
// hidden layer's input weights given neuron by neuron, so a test can plant multiples, negations,
// copies and static neurons and know exactly which neurons condensation makes redundant.

import { DataType } from '../../src/ir/data-type.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { Value } from '../../src/ir/value.js';
import { encodeModel } from '../../src/onnx/encode-model.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { ModelSession } from '../../src/runtime/model-session.js';
import { GraphBuilder, int } from '../helpers/graph-builder.js';

/** Gemm ... Gemm (with transB on both) or MatMul+Add ... MatMul+Add. */
export type MlpForm = 'Gemm' | 'MatMul+Add';
export type MlpActivation = 'Relu' | 'Tanh' | 'Gelu';

export interface MlpSpec {
  form: MlpForm;
  activation: MlpActivation;
  /** Neuron k's input weights w_k (all of length inputWidth). */
  inputWeights: number[][];
  /** b_k per neuron. */
  biases: number[];
  /** Neuron k's outgoing weights a_k (all of length outputWidth). */
  outgoingWeights: number[][];
  outputBias: number[];
  /** Gemm only: store the weights transposed (transB=1), as torch.nn.Linear exports them. */
  transB?: boolean;
}

const f32 = (dims: number[], values: number[]): Tensor => Tensor.fromNumbers(DataType.FLOAT, dims, values);

/** Names of the two dense nodes, so tests can find the layers. */
export const HIDDEN = 'hidden';
export const CONSUMER = 'readout';

export function buildMlp(spec: MlpSpec): Model {
  const m = spec.inputWeights.length;
  const d = spec.inputWeights[0]!.length;
  const o = spec.outputBias.length;
  // Row-major [m, d] (neurons as rows) and its transpose [d, m].
  const wRows = spec.inputWeights.flat();
  const wCols = Array.from({ length: d * m }, (_, i) => spec.inputWeights[i % m]![Math.floor(i / m)]!);
  const aRows = spec.outgoingWeights.flat();
  const aCols = Array.from({ length: o * m }, (_, i) => spec.outgoingWeights[i % m]![Math.floor(i / m)]!);
  const b = new GraphBuilder('mlp');
  const x = b.input('x', DataType.FLOAT, ['N', d]);
  let z: Value;
  if (spec.form === 'Gemm') {
    const w = spec.transB ? b.initializer('w1', f32([m, d], wRows)) : b.initializer('w1', f32([d, m], wCols));
    z = b.node('Gemm', [x, w, b.initializer('b1', f32([m], spec.biases))], { transB: int(spec.transB ? 1 : 0) }, { name: HIDDEN })[0]!;
  } else {
    const [p] = b.node('MatMul', [x, b.initializer('w1', f32([d, m], wCols))], {}, { name: HIDDEN });
    z = b.node('Add', [p!, b.initializer('b1', f32([m], spec.biases))], {}, { name: `${HIDDEN}_bias` })[0]!;
  }
  const [h] = b.node(spec.activation, [z], {}, { outputs: ['h'] });
  let y: Value;
  if (spec.form === 'Gemm') {
    const a = spec.transB ? b.initializer('w2', f32([o, m], aCols)) : b.initializer('w2', f32([m, o], aRows));
    y = b.node('Gemm', [h!, a, b.initializer('b2', f32([o], spec.outputBias))], { transB: int(spec.transB ? 1 : 0) }, { name: CONSUMER, outputs: ['y'] })[0]!;
  } else {
    const [q] = b.node('MatMul', [h!, b.initializer('w2', f32([m, o], aRows))], {}, { name: CONSUMER });
    y = b.node('Add', [q!, b.initializer('b2', f32([o], spec.outputBias))], {}, { outputs: ['y'] })[0]!;
  }
  b.output(y, DataType.FLOAT, ['N', o]);
  return b.build(spec.activation === 'Gelu' ? 20 : 13);
}

export function gaussianVector(rng: SeededRandom, n: number): number[] {
  return Array.from({ length: n }, () => rng.gaussian());
}

/** Runs model bytes on the input x ([rows, width], float32) and returns output "y". */
export async function runMlp(bytes: Uint8Array, x: Float32Array, width: number): Promise<Float32Array> {
  const session = await ModelSession.create(bytes, 'mlp');
  try {
    const out = await session.run({ x: { dataType: DataType.FLOAT, dims: [x.length / width, width], data: x } });
    return out.y!.data as Float32Array;
  } finally {
    await session.release();
  }
}

export function modelBytes(model: Model): Uint8Array {
  return encodeModel(model).modelBytes;
}

/** max |a - b| / max |a|: the measure verification uses. */
export function relativeError(reference: Float32Array, other: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < reference.length; i++) {
    diff = Math.max(diff, Math.abs(reference[i]! - other[i]!));
    scale = Math.max(scale, Math.abs(reference[i]!));
  }
  return diff / Math.max(scale, 1e-30);
}

export function randomInputs(seed: number, rows: number, width: number): Float32Array {
  const rng = new SeededRandom(seed);
  return Float32Array.from({ length: rows * width }, () => rng.gaussian());
}
