// Seeded models for the benchmark: plain MLPs and CNNs of any width, with optional planted
// redundancy (neurons that are positive multiples of others, which a ReLU layer merges exactly),
// so pruning has something to remove and the speedup can be set against the FLOPs removed.

import { DataType } from '../src/ir/data-type.js';
import { Graph } from '../src/ir/graph.js';
import { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import type { Value } from '../src/ir/value.js';
import { SeededRandom } from '../src/numeric/seeded-random.js';

export interface MlpSpec {
  inputWidth: number;
  /** Hidden widths, each a Gemm(transB=1) + Relu. */
  widths: number[];
  classes: number;
  seed: number;
  /** Share of each hidden layer's neurons planted as positive multiples of the others (0..1). */
  redundancy?: number;
}

export interface CnnSpec {
  inputChannels: number;
  /** Height and width of the input image. */
  size: number;
  /** Output channels of each 3x3 conv (+ Relu). */
  channels: number[];
  /** Stride of each conv (default 1). */
  strides?: number[];
  classes: number;
  seed: number;
  redundancy?: number;
  /** Every tensor in float16 (input, weights, activations, logits), as a half-precision export. */
  float16?: boolean;
}

/** A generated model and its multiply-accumulate count per sample. */
export interface GeneratedModel {
  model: Model;
  macsPerSample: number;
  inputName: string;
  /** The input's shape for one sample (without the batch axis). */
  sampleShape: number[];
}

/**
 * Fills `rows` x `dim` He-initialised weights (plus biases), with the last `redundancy` share of
 * the rows replaced by positive multiples of random earlier rows.
 */
function plantedRows(random: SeededRandom, rows: number, dim: number, redundancy: number): { weights: Float32Array; bias: Float32Array } {
  const weights = new Float32Array(rows * dim);
  const bias = new Float32Array(rows);
  const scale = Math.sqrt(2 / dim);
  const unique = Math.max(1, Math.round(rows * (1 - redundancy)));
  for (let r = 0; r < rows; r++) {
    if (r < unique) {
      for (let k = 0; k < dim; k++) weights[r * dim + k] = random.gaussian() * scale;
      bias[r] = random.gaussian() * 0.1;
    } else {
      const of = random.integer(unique);
      const t = 0.5 + 1.5 * random.next();
      for (let k = 0; k < dim; k++) weights[r * dim + k] = t * weights[of * dim + k]!;
      bias[r] = t * bias[of]!;
    }
  }
  return { weights, bias };
}

function declareInput(graph: Graph, name: string, shape: (number | string)[], elemType: number = DataType.FLOAT): Value {
  const value = graph.createValue(name, { kind: 'tensor', elemType, shape: shape.map((d) => (typeof d === 'number' ? { value: d } : { param: d })) });
  graph.inputs.push(value);
  return value;
}

function declareOutput(graph: Graph, value: Value, classes: number, elemType: number = DataType.FLOAT): void {
  value.type = { kind: 'tensor', elemType, shape: [{ param: 'batch' }, { value: classes }] };
  graph.outputs.push(value);
}

function finish(graph: Graph): Model {
  const model = new Model(graph);
  model.opsetImports = [{ domain: '', version: 13 }];
  model.producerName = 'onnx-condense bench';
  return model;
}

function weightTensor(dims: number[], values: Float32Array, isHalf: boolean): Tensor {
  return isHalf ? Tensor.fromNumbers(DataType.FLOAT16, dims, values) : Tensor.fromFloat32(dims, values);
}

function gemm(graph: Graph, x: Value, weights: Float32Array, bias: Float32Array, rows: number, dim: number, name: string, isHalf = false): Value {
  const w = graph.addInitializer(`${name}_w`, weightTensor([rows, dim], weights, isHalf));
  const b = graph.addInitializer(`${name}_b`, weightTensor([rows], bias, isHalf));
  return graph.addNode({ opType: 'Gemm', name, inputs: [x, w, b], outputs: [`${name}_z`], attributes: [{ name: 'transB', type: 'int', value: 1n }] }).outputs[0]!;
}

function relu(graph: Graph, x: Value, name: string): Value {
  return graph.addNode({ opType: 'Relu', name, inputs: [x], outputs: [`${name}_h`] }).outputs[0]!;
}

/** input[batch, inputWidth] -> (Gemm + Relu) per width -> Gemm to `classes` logits. */
export function buildMlp(spec: MlpSpec): GeneratedModel {
  const random = new SeededRandom(spec.seed);
  const graph = new Graph('bench_mlp');
  let x = declareInput(graph, 'x', ['batch', spec.inputWidth]);
  let dim = spec.inputWidth;
  let macs = 0;
  spec.widths.forEach((width, i) => {
    const { weights, bias } = plantedRows(random, width, dim, spec.redundancy ?? 0);
    x = relu(graph, gemm(graph, x, weights, bias, width, dim, `fc${i + 1}`), `relu${i + 1}`);
    macs += width * dim;
    dim = width;
  });
  const head = plantedRows(random, spec.classes, dim, 0);
  declareOutput(graph, gemm(graph, x, head.weights, head.bias, spec.classes, dim, 'head'), spec.classes);
  macs += spec.classes * dim;
  return { model: finish(graph), macsPerSample: macs, inputName: 'x', sampleShape: [spec.inputWidth] };
}

/** input[batch, C, size, size] -> (3x3 Conv + Relu) per channel count -> GlobalAveragePool -> Flatten -> Gemm. */
export function buildCnn(spec: CnnSpec): GeneratedModel {
  const random = new SeededRandom(spec.seed);
  const graph = new Graph('bench_cnn');
  const isHalf = spec.float16 ?? false;
  const elemType = isHalf ? DataType.FLOAT16 : DataType.FLOAT;
  let x = declareInput(graph, 'x', ['batch', spec.inputChannels, spec.size, spec.size], elemType);
  let inChannels = spec.inputChannels;
  let side = spec.size;
  let macs = 0;
  spec.channels.forEach((outChannels, i) => {
    const stride = spec.strides?.[i] ?? 1;
    const dim = inChannels * 9;
    const { weights, bias } = plantedRows(random, outChannels, dim, spec.redundancy ?? 0);
    const name = `conv${i + 1}`;
    const w = graph.addInitializer(`${name}_w`, weightTensor([outChannels, inChannels, 3, 3], weights, isHalf));
    const b = graph.addInitializer(`${name}_b`, weightTensor([outChannels], bias, isHalf));
    const z = graph.addNode({
      opType: 'Conv',
      name,
      inputs: [x, w, b],
      outputs: [`${name}_z`],
      attributes: [
        { name: 'kernel_shape', type: 'ints', value: [3n, 3n] },
        { name: 'pads', type: 'ints', value: [1n, 1n, 1n, 1n] },
        { name: 'strides', type: 'ints', value: [BigInt(stride), BigInt(stride)] },
      ],
    }).outputs[0]!;
    side = Math.floor((side + 2 - 3) / stride) + 1;
    z.type = { kind: 'tensor', elemType, shape: [{ param: 'batch' }, { value: outChannels }, { value: side }, { value: side }] };
    x = relu(graph, z, `relu${i + 1}`);
    x.type = z.type;
    // Declared, so a saved model keeps its shapes (collection strides positions by them).
    graph.valueInfos.push(z, x);
    macs += outChannels * dim * side * side;
    inChannels = outChannels;
  });
  const pooled = graph.addNode({ opType: 'GlobalAveragePool', name: 'gap', inputs: [x], outputs: ['pooled'] }).outputs[0]!;
  const flat = graph.addNode({ opType: 'Flatten', name: 'flatten', inputs: [pooled], outputs: ['flat'] }).outputs[0]!;
  const head = plantedRows(random, spec.classes, inChannels, 0);
  declareOutput(graph, gemm(graph, flat, head.weights, head.bias, spec.classes, inChannels, 'head', isHalf), spec.classes, elemType);
  macs += spec.classes * inChannels;
  return { model: finish(graph), macsPerSample: macs, inputName: 'x', sampleShape: [spec.inputChannels, spec.size, spec.size] };
}
