// The Gram and cosine matrices of a set of row vectors on onnxruntime's multi-threaded GEMM: what
// the input-weight cosines of a wide layer need (4096 neurons x 1025 weights is 4.3 G multiply-adds:
// seconds in a JavaScript loop, a fraction of one here). Wide inputs are split into blocks of rows
// and only the blocks on and above the diagonal are computed, which halves the work and what is
// copied out.

import { DataType } from '../ir/data-type.js';
import { Graph } from '../ir/graph.js';
import { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import type { Value } from '../ir/value.js';
import { norms } from '../numeric/cosine.js';
import { mirrorBlock } from '../numeric/streaming-moments.js';
import { ModelSession, type SessionOptions } from './model-session.js';

export interface GramOptions extends SessionOptions {
  /** Rows per block of the upper triangle (default 1024). */
  blockRows?: number;
  /** 'float32' halves the work and the memory traffic, at float32's 1e-7 relative precision (default 'float64'). */
  precision?: 'float32' | 'float64';
}

/** Rows per block when the Gram matrix is computed as an upper triangle of blocks. */
const BLOCK_ROWS = 1024;

/**
 * G = R R^T (row-major `rowCount` x `rowCount`, float64) for the row-major `rowCount` x `dim`
 * matrix R, computed in float64 by onnxruntime. `encode` turns the small model this builds into
 * bytes (the runtime does not import the codec).
 */
export async function gramMatrix(
  rows: Float64Array | Float32Array,
  rowCount: number,
  dim: number,
  encode: (model: Model) => Uint8Array,
  options: GramOptions = {},
): Promise<Float64Array> {
  return blockGram(rows, rowCount, dim, encode, options, false);
}

/** gramMatrix, with each entry clamped to [-1, 1] as it is copied out when `isCosine` (one pass over n^2, not two). */
async function blockGram(
  rows: Float64Array | Float32Array,
  rowCount: number,
  dim: number,
  encode: (model: Model) => Uint8Array,
  options: GramOptions,
  isCosine: boolean,
): Promise<Float64Array> {
  if (rows.length !== rowCount * dim) throw new RangeError(`rows holds ${rows.length} values, expected ${rowCount} x ${dim}`);
  const n = rowCount;
  const out = new Float64Array(n * n);
  if (n === 0) return out;
  const blockRows = Math.max(1, options.blockRows ?? BLOCK_ROWS);
  const isDouble = (options.precision ?? 'float64') === 'float64';
  const elemType = isDouble ? DataType.DOUBLE : DataType.FLOAT;
  const blockCount = Math.ceil(n / blockRows);
  const bounds = Array.from({ length: blockCount + 1 }, (_, k) => Math.round((k * n) / blockCount));
  const g = new Graph('gram');
  const x = g.createValue('rows', { kind: 'tensor', elemType, shape: [{ value: n }, { value: dim }] });
  g.inputs.push(x);
  const blocks: Value[] = bounds.slice(0, -1).map((start, k) =>
    blockCount === 1
      ? x
      : g.addNode({ opType: 'Slice', inputs: [x, g.addInitializer(`start${k}`, Tensor.fromInt64([1], [start])), g.addInitializer(`end${k}`, Tensor.fromInt64([1], [bounds[k + 1]!])), g.addInitializer(`axis${k}`, Tensor.fromInt64([1], [0]))], outputs: [`block${k}`] }).outputs[0]!);
  const products: { name: string; i: number; j: number }[] = [];
  for (let i = 0; i < blockCount; i++) {
    for (let j = i; j < blockCount; j++) {
      const product = g.addNode({ opType: 'Gemm', inputs: [blocks[i]!, blocks[j]!], outputs: [`gram_${i}_${j}`], attributes: [{ name: 'transB', type: 'int', value: 1n }] }).outputs[0]!;
      product.type = { kind: 'tensor', elemType };
      g.outputs.push(product);
      products.push({ name: product.name, i, j });
    }
  }
  const model = new Model(g);
  model.opsetImports = [{ domain: '', version: 13 }];
  const { blockRows: _blockRows, precision: _precision, ...sessionOptions } = options;
  const session = await ModelSession.create(encode(model), 'Gram matrix', sessionOptions);
  try {
    const result = await session.run({ rows: { dataType: elemType, dims: [n, dim], data: isDouble ? (rows instanceof Float64Array ? rows : Float64Array.from(rows)) : rows instanceof Float32Array ? rows : Float32Array.from(rows) } });
    for (const { name, i, j } of products) {
      const data = result[name]!.data as Float64Array | Float32Array;
      const r0 = bounds[i]!;
      const c0 = bounds[j]!;
      const width = bounds[j + 1]! - c0;
      for (let r = r0; r < bounds[i + 1]!; r++) {
        const from = (r - r0) * width;
        if (!isCosine) {
          out.set(data.subarray(from, from + width) as ArrayLike<number>, r * n + c0);
          continue;
        }
        const to = r * n + c0 - from;
        for (let k = from; k < from + width; k++) {
          const c = data[k]!;
          out[to + k] = c > 1 ? 1 : c < -1 ? -1 : c;
        }
      }
      // The off-diagonal blocks' mirror images in the lower triangle, tile by tile.
      if (i !== j) mirrorBlock(out, n, r0, bounds[i + 1]!, c0, bounds[j + 1]!);
    }
  } finally {
    await session.release();
  }
  return out;
}

/**
 * The cosine matrix of the rows (row-major `rowCount` x `rowCount`), as numeric/cosine.ts
 * cosineMatrix computes it (rows normalised first, zero rows at cosine 0 with every other row and
 * 1 with themselves, entries clamped to [-1, 1]), with the products on onnxruntime's GEMM.
 */
export async function cosineMatrixOnRuntime(rows: Float64Array, rowCount: number, dim: number, encode: (model: Model) => Uint8Array, options: GramOptions = {}): Promise<Float64Array> {
  const rowNorms = norms(rows, rowCount, dim);
  const unit = (options.precision ?? 'float64') === 'float64' ? new Float64Array(rows.length) : new Float32Array(rows.length);
  for (let r = 0; r < rowCount; r++) {
    const norm = rowNorms[r]!;
    if (norm === 0) continue;
    for (let k = r * dim; k < (r + 1) * dim; k++) unit[k] = rows[k]! / norm;
  }
  return cosineMatrixOfUnitRows(unit, rowCount, dim, encode, options);
}

/**
 * The cosine matrix from rows already normalised (zero rows left zero): their Gram matrix with
 * entries clamped to [-1, 1] and a unit diagonal.
 */
export async function cosineMatrixOfUnitRows(unit: Float64Array | Float32Array, rowCount: number, dim: number, encode: (model: Model) => Uint8Array, options: GramOptions = {}): Promise<Float64Array> {
  const cosine = await blockGram(unit, rowCount, dim, encode, options, true);
  for (let d = 0; d < rowCount; d++) cosine[d * rowCount + d] = 1;
  return cosine;
}
