// Statistics computed where the data is: for each watched value, nodes appended to (a copy of)
// the graph reduce it to a batch mean [1, m] and a centred scatter matrix [m, m], so only m x m
// numbers leave onnxruntime per batch, and its multi-threaded GEMM does the heavy work.

import { DataType } from '../ir/data-type.js';
import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import type { Value } from '../ir/value.js';

export interface WatchedValue {
  /** Key the statistics are returned under. */
  key: string;
  value: Value;
  width: number;
  /** Axis holding the neurons, counted from the last (1 = last). */
  neuronAxisFromEnd: number;
  /** Rank of the value when the neuron axis is not the last (needed to move it there). */
  rank?: number;
}

export interface StatisticsHead {
  key: string;
  width: number;
  meanOutput: string;
  scatterOutput: string;
  shapeOutput: string;
}

/**
 * Appends statistics nodes for each watched value to `model` (which the caller owns: pass a
 * copy). Every position of every sample counts as one observation of the m neurons.
 */
export function addStatisticsHeads(model: Model, watched: WatchedValue[]): StatisticsHead[] {
  const g = model.graph;
  const opset = model.opsetVersion('') ?? 13;
  const heads: StatisticsHead[] = [];
  const constant = (name: string, tensor: Tensor): Value => g.addInitializer(name, tensor);
  for (const w of watched) {
    const base = `condense_stats_${w.key.replace(/[^A-Za-z0-9_]/g, '_')}`;
    let x = w.value;
    if (x.elemType !== undefined && x.elemType !== DataType.FLOAT) {
      x = g.addNode({ opType: 'Cast', inputs: [x], outputs: [`${base}_float`], attributes: [{ name: 'to', type: 'int', value: BigInt(DataType.FLOAT) }] }).outputs[0]!;
    }
    if (w.neuronAxisFromEnd !== 1) {
      const rank = w.rank!;
      const axis = rank - w.neuronAxisFromEnd;
      const perm = [...Array(rank).keys()].filter((i) => i !== axis).concat(axis);
      x = g.addNode({ opType: 'Transpose', inputs: [x], outputs: [`${base}_last`], attributes: [{ name: 'perm', type: 'ints', value: perm.map(BigInt) }] }).outputs[0]!;
    }
    const rows = g.addNode({ opType: 'Reshape', inputs: [x, constant(`${base}_shape`, Tensor.fromInt64([2], [-1, w.width]))], outputs: [`${base}_rows`] }).outputs[0]!;
    const meanNode = opset >= 18
      ? g.addNode({ opType: 'ReduceMean', inputs: [rows, constant(`${base}_axes`, Tensor.fromInt64([1], [0]))], outputs: [`${base}_mean`], attributes: [{ name: 'keepdims', type: 'int', value: 1n }] })
      : g.addNode({ opType: 'ReduceMean', inputs: [rows], outputs: [`${base}_mean`], attributes: [{ name: 'axes', type: 'ints', value: [0n] }, { name: 'keepdims', type: 'int', value: 1n }] });
    const mean = meanNode.outputs[0]!;
    const centred = g.addNode({ opType: 'Sub', inputs: [rows, mean], outputs: [`${base}_centred`] }).outputs[0]!;
    const transposed = g.addNode({ opType: 'Transpose', inputs: [centred], outputs: [`${base}_centred_t`], attributes: [{ name: 'perm', type: 'ints', value: [1n, 0n] }] }).outputs[0]!;
    const scatter = g.addNode({ opType: 'MatMul', inputs: [transposed, centred], outputs: [`${base}_scatter`] }).outputs[0]!;
    const shape = g.addNode({ opType: 'Shape', inputs: [rows], outputs: [`${base}_rows_shape`] }).outputs[0]!;
    for (const [v, elemType] of [[mean, DataType.FLOAT], [scatter, DataType.FLOAT], [shape, DataType.INT64]] as const) {
      v.type = { kind: 'tensor', elemType };
      g.outputs.push(v);
    }
    heads.push({ key: w.key, width: w.width, meanOutput: mean.name, scatterOutput: scatter.name, shapeOutput: shape.name });
  }
  return heads;
}
