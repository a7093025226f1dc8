// Statistics computed where the data is: for each watched value, nodes appended to (a copy of)
// the graph reduce it to a batch mean [1, m] and a centred scatter matrix [m, m], so only m x m
// numbers leave onnxruntime per batch, and its multi-threaded GEMM does the heavy work.
// Where every spatial position would make the statistics cost more than a fair share of the layer
// itself (few input channels, many output channels, large feature maps), a deterministic stride
// over each sample's positions keeps the cost down; unsampled twins of those heads, inside an If
// that only a calibration run switches on, measure what the stride costs in accuracy. (onnxruntime
// runs every node whose output is a graph output, fetched or not: only a branch not taken is free.)

import { CondenseError } from '../errors.js';
import { DataType } from '../ir/data-type.js';
import { Graph } from '../ir/graph.js';
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
  /**
   * Keep every positionStride-th position of each sample (positions flattened over all axes but
   * the batch and neuron axes, the first kept at stride / 2). Default 1: every position.
   */
  positionStride?: number;
  /** Scatter block side: layers wider than this get their scatter as an upper triangle of blocks (default 1024). */
  scatterBlockNeurons?: number;
  /** The value's element type where the graph does not declare it (a layer's output has its weight's type). */
  elemType?: number;
}

/** One block of the centred scatter: neurons [rowStart, rowEnd) against [columnStart, columnEnd). */
export interface ScatterBlock {
  output: string;
  rowStart: number;
  rowEnd: number;
  columnStart: number;
  columnEnd: number;
}

/** The graph outputs one head's statistics are fetched from. */
export interface StatisticsOutputs {
  /** m means (float32). */
  meanOutput: string;
  /**
   * The centred scatter's blocks on and above the diagonal (float32, row-major each): the whole
   * m x m matrix in one block for most layers; for wide ones, a symmetric matrix needs only its
   * upper triangle of blocks, which halves both the GEMM work and what leaves the runtime.
   */
  scatterBlocks: ScatterBlock[];
  /** The number of observations (samples x kept positions), an int64 scalar. */
  rowCountOutput: string;
}

export interface StatisticsHead extends StatisticsOutputs {
  key: string;
  width: number;
  /** The stride the statistics were taken at (1: every position). */
  positionStride: number;
  /**
   * With a stride above 1: the same statistics over every position. They come out only of runs
   * that feed `calibrationInput` true (a bool scalar); other runs feed false and they cost nothing.
   */
  unsampled?: StatisticsOutputs & { calibrationInput: string };
}

/**
 * The oldest ai.onnx opset heads are written in: from 7 on, Sub and Gemm broadcast numpy-style and
 * Reshape takes its shape as an input. Every node below is chosen per opset from 7 to the newest.
 */
export const OLDEST_HEADS_OPSET = 7;

// Largest int64 Slice accepts as "to the end".
const SLICE_END = 2 ** 53 - 1;
// Layers at least this wide get their scatter in blocks of about this many neurons a side.
const SCATTER_BLOCK_NEURONS = 1024;

/**
 * Appends statistics nodes for each watched value to `model` (which the caller owns: pass a
 * copy). Every kept position of every sample counts as one observation of the m neurons.
 */
export function addStatisticsHeads(model: Model, watched: WatchedValue[]): StatisticsHead[] {
  const g = model.graph;
  let opset = model.opsetVersion('');
  if (opset === undefined) {
    // A model of other domains only: the heads bring their own ai.onnx import.
    opset = 13;
    model.opsetImports.push({ domain: '', version: opset });
  }
  if (opset < OLDEST_HEADS_OPSET) {
    throw new CondenseError('BAD_MODEL', 'model', `imports ai.onnx opset ${opset}; statistics need opset ${OLDEST_HEADS_OPSET} or newer (convert it, e.g. with onnx.version_converter)`);
  }
  const heads: StatisticsHead[] = [];
  // The unsampled twins, built inside the calibration branch once their inputs are known.
  const twins: { head: StatisticsHead; build: (branch: Graph) => StatisticsOutputs }[] = [];
  for (const w of watched) {
    const base = `condense_stats_${w.key.replace(/[^A-Za-z0-9_]/g, '_')}`;
    let x = w.value;
    const elemType = x.elemType ?? w.elemType;
    if (elemType !== undefined && elemType !== DataType.FLOAT) {
      x = g.addNode({ opType: 'Cast', inputs: [x], outputs: [`${base}_float`], attributes: [{ name: 'to', type: 'int', value: BigInt(DataType.FLOAT) }] }).outputs[0]!;
    }
    const rank = w.rank ?? (w.neuronAxisFromEnd === 1 ? 2 : undefined);
    // A [samples, m] value has one position per sample; Slice with steps and If need opset 10 / 11.
    const stride = opset >= 11 && rank !== 2 ? Math.max(1, Math.floor(w.positionStride ?? 1)) : 1;
    const blockNeurons = w.scatterBlockNeurons ?? SCATTER_BLOCK_NEURONS;
    const outputs = reduceObservations(g, opset, observations(g, x, w, rank, stride, base), w.width, blockNeurons, base);
    const head: StatisticsHead = { key: w.key, width: w.width, positionStride: stride, ...outputs };
    heads.push(head);
    const input = x;
    if (stride > 1) twins.push({ head, build: (branch) => reduceObservations(branch, opset, observations(branch, input, w, rank, 1, `${base}_every`), w.width, blockNeurons, `${base}_every`) });
  }
  if (twins.length > 0) addCalibrationBranch(g, twins);
  return heads;
}

/**
 * One If on a bool input: its then-branch computes every twin, its else-branch hands out empty
 * placeholders (If's branches must agree on types, not on shapes).
 */
function addCalibrationBranch(g: Graph, twins: { head: StatisticsHead; build: (branch: Graph) => StatisticsOutputs }[]): void {
  const flag = g.createValue('condense_calibrate', { kind: 'tensor', elemType: DataType.BOOL, shape: [] });
  g.inputs.push(flag);
  const thenBranch = new Graph('condense_calibration', g);
  const elseBranch = new Graph('condense_no_calibration', g);
  const built = twins.map((t) => t.build(thenBranch));
  for (const v of thenBranch.outputs) {
    const elemType = v.elemType ?? DataType.FLOAT;
    const empty = elemType === DataType.INT64 ? Tensor.fromInt64([0], []) : Tensor.fromFloat32([0], new Float32Array(0));
    const placeholder = elseBranch.addNode({ opType: 'Constant', inputs: [], outputs: [`${v.name}_skipped`], attributes: [{ name: 'value', type: 'tensor', value: empty }] }).outputs[0]!;
    placeholder.type = { kind: 'tensor', elemType };
    elseBranch.outputs.push(placeholder);
  }
  const branchOutputs = thenBranch.outputs.map((v) => `${v.name}_calibration`);
  const ifNode = g.addNode({
    opType: 'If',
    name: 'condense_calibration',
    inputs: [flag],
    outputs: branchOutputs,
    attributes: [
      { name: 'then_branch', type: 'graph', value: thenBranch },
      { name: 'else_branch', type: 'graph', value: elseBranch },
    ],
  });
  // The branch's output names, as the If hands them to the main graph.
  const outer = new Map<string, string>();
  thenBranch.outputs.forEach((v, k) => {
    const o = ifNode.outputs[k]!;
    o.type = { kind: 'tensor', elemType: v.elemType ?? DataType.FLOAT };
    g.outputs.push(o);
    outer.set(v.name, o.name);
  });
  twins.forEach(({ head }, k) => {
    const inner = built[k]!;
    head.unsampled = {
      meanOutput: outer.get(inner.meanOutput)!,
      scatterBlocks: inner.scatterBlocks.map((b) => ({ ...b, output: outer.get(b.output)! })),
      rowCountOutput: outer.get(inner.rowCountOutput)!,
      calibrationInput: flag.name,
    };
  });
}

/** Observations as a matrix: [rows, m], or, for channels-first values, [m, rows]. */
interface Observations {
  value: Value;
  neuronAxis: 0 | 1;
}

/**
 * The value's observations, keeping every stride-th position of each sample. Channels-first
 * feature maps [N, m, ...] become [m, N x positions] by swapping the two outer axes, which moves
 * whole contiguous runs of positions (a block copy, not the element-wise transpose [N, P, m]
 * would need); neuron-last values are already rows.
 */
function observations(g: Graph, x: Value, w: WatchedValue, rank: number | undefined, stride: number, base: string): Observations {
  const constant = (name: string, values: number[]): Value => g.addInitializer(`${base}_${name}`, Tensor.fromInt64([values.length], values));
  const node = (opType: string, inputs: Value[], suffix: string, attributes: { name: string; value: number[] }[] = []): Value =>
    g.addNode({ opType, inputs, outputs: [`${base}_${suffix}`], attributes: attributes.map((a) => ({ name: a.name, type: 'ints', value: a.value.map(BigInt) })) }).outputs[0]!;
  const m = w.width;
  const keepPositions = (samples: Value, axis: number): Value =>
    stride === 1 ? samples : node('Slice', [samples, constant('slice_start', [stride >> 1]), constant('slice_end', [SLICE_END]), constant('slice_axis', [axis]), constant('slice_step', [stride])], 'kept');
  if (w.neuronAxisFromEnd !== 1 && rank !== undefined && rank - w.neuronAxisFromEnd === 1) {
    const samples = keepPositions(node('Reshape', [x, constant('channels_first', [0, m, -1])], 'channels_first'), 2);
    const neuronsFirst = node('Transpose', [samples], 'neurons_first', [{ name: 'perm', value: [1, 0, 2] }]);
    return { value: node('Reshape', [neuronsFirst, constant('columns_shape', [m, -1])], 'columns'), neuronAxis: 0 };
  }
  if (w.neuronAxisFromEnd !== 1) {
    const axis = rank! - w.neuronAxisFromEnd;
    const perm = [...Array(rank).keys()].filter((i) => i !== axis).concat(axis);
    x = node('Transpose', [x], 'last', [{ name: 'perm', value: perm }]);
  }
  if (stride > 1) x = keepPositions(node('Reshape', [x, constant('per_sample', [0, -1, m])], 'per_sample'), 1);
  return { value: node('Reshape', [x, constant('rows_shape', [-1, m])], 'rows'), neuronAxis: 1 };
}

/**
 * Mean, centred scatter and row count. The scatter is one GEMM that reads its operand transposed
 * in place, or, for a wide layer, the GEMMs of the upper triangle of blocks of neurons.
 */
function reduceObservations(g: Graph, opset: number, { value, neuronAxis }: Observations, width: number, blockNeurons: number, base: string): StatisticsOutputs {
  const constant = (name: string, dims: number[], values: number[]): Value => g.addInitializer(`${base}_${name}`, Tensor.fromInt64(dims, values));
  const rowAxis = 1 - neuronAxis;
  const meanNode = opset >= 18
    ? g.addNode({ opType: 'ReduceMean', inputs: [value, constant('axes', [1], [rowAxis])], outputs: [`${base}_mean`], attributes: [{ name: 'keepdims', type: 'int', value: 1n }] })
    : g.addNode({ opType: 'ReduceMean', inputs: [value], outputs: [`${base}_mean`], attributes: [{ name: 'axes', type: 'ints', value: [BigInt(rowAxis)] }, { name: 'keepdims', type: 'int', value: 1n }] });
  const mean = meanNode.outputs[0]!;
  const centred = g.addNode({ opType: 'Sub', inputs: [value, mean], outputs: [`${base}_centred`] }).outputs[0]!;
  const transposeAttribute = neuronAxis === 1 ? 'transA' : 'transB';
  // Slicing a block of neurons out needs Slice's input form (opset 10).
  const blockCount = opset >= 10 ? Math.max(1, Math.ceil(width / blockNeurons)) : 1;
  const bounds = Array.from({ length: blockCount + 1 }, (_, k) => Math.round((k * width) / blockCount));
  const parts = bounds.slice(0, -1).map((start, k) => (blockCount === 1
    ? centred
    : g.addNode({ opType: 'Slice', inputs: [centred, constant(`block${k}_start`, [1], [start]), constant(`block${k}_end`, [1], [bounds[k + 1]!]), constant(`block${k}_axis`, [1], [neuronAxis])], outputs: [`${base}_block${k}`] }).outputs[0]!));
  const scatterBlocks: ScatterBlock[] = [];
  let zero: Value | undefined;
  for (let i = 0; i < blockCount; i++) {
    for (let j = i; j < blockCount; j++) {
      // Gemm's C is optional only from opset 11; before, a zero scalar (broadcast from opset 7).
      const c = opset >= 11 ? [] : [zero ??= g.addInitializer(`${base}_zero`, Tensor.fromFloat32([], Float32Array.of(0)))];
      const scatter = g.addNode({ opType: 'Gemm', inputs: [parts[i]!, parts[j]!, ...c], outputs: [`${base}_scatter${blockCount === 1 ? '' : `_${i}_${j}`}`], attributes: [{ name: transposeAttribute, type: 'int', value: 1n }] }).outputs[0]!;
      scatter.type = { kind: 'tensor', elemType: DataType.FLOAT, shape: [{ value: bounds[i + 1]! - bounds[i]! }, { value: bounds[j + 1]! - bounds[j]! }] };
      g.outputs.push(scatter);
      scatterBlocks.push({ output: scatter.name, rowStart: bounds[i]!, rowEnd: bounds[i + 1]!, columnStart: bounds[j]!, columnEnd: bounds[j + 1]! });
    }
  }
  const shape = g.addNode({ opType: 'Shape', inputs: [value], outputs: [`${base}_shape`] }).outputs[0]!;
  const rowCount = g.addNode({ opType: 'Gather', inputs: [shape, constant('row_axis', [], [rowAxis])], outputs: [`${base}_row_count`] }).outputs[0]!;
  mean.type = { kind: 'tensor', elemType: DataType.FLOAT };
  rowCount.type = { kind: 'tensor', elemType: DataType.INT64, shape: [] };
  g.outputs.push(mean, rowCount);
  return { meanOutput: mean.name, scatterBlocks, rowCountOutput: rowCount.name };
}

/** What a position stride is chosen from: the layer's shape and cost. */
export interface PositionStrideInput {
  /** Neurons (output channels) m. */
  width: number;
  /** Multiply-adds per output value: the length of a neuron's input weights (Cin / group x kernel). */
  fanIn: number;
  /** Positions per sample (H x W for a feature map); undefined when not static. */
  positionsPerSample: number | undefined;
  /** Length of the innermost spatial axis, so the stride can be made coprime with it. */
  rowLength?: number;
  /** Largest share of the layer's own cost the statistics may add (default 1/4). */
  costShare?: number;
}

/** Each sample keeps at least this many positions, whatever the cost. */
export const MIN_POSITIONS_KEPT = 16;
// The memory passes a head makes over each observed value (copy, mean, centre, the GEMM's read),
// priced in multiply-adds: measured on 2 CPU cores, a pass over an activation costs about what
// this many multiply-adds per element do inside a convolution.
const PASS_COST_MACS = 64;

/**
 * The smallest stride that keeps a head's cost per kept position (m^2 multiply-adds for the
 * scatter, plus its memory passes) within `costShare` of the layer's own (m x fanIn):
 * ceil((m + PASS_COST_MACS) / (costShare x fanIn)); never fewer than MIN_POSITIONS_KEPT positions
 * per sample; and coprime with the row length, so a feature map's kept positions walk through
 * every column instead of a few fixed ones.
 */
export function positionStrideFor(input: PositionStrideInput): number {
  const { width, fanIn, positionsPerSample, rowLength } = input;
  const costShare = input.costShare ?? 1 / 4;
  if (!positionsPerSample || positionsPerSample <= 1 || !(fanIn > 0) || !(costShare > 0)) return 1;
  const wanted = Math.ceil((width + PASS_COST_MACS) / (costShare * fanIn));
  const most = Math.floor(positionsPerSample / MIN_POSITIONS_KEPT);
  let stride = Math.min(wanted, most);
  if (stride <= 1) return 1;
  if (rowLength && rowLength > 1) {
    let up = stride;
    while (gcd(up, rowLength) !== 1 && up < most) up++;
    if (gcd(up, rowLength) === 1) return up;
    while (stride > 1 && gcd(stride, rowLength) !== 1) stride--;
  }
  return stride;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
