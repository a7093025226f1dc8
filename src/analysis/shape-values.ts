// What exporters compute about shapes, read from the graph without running it: the rank of a
// value, a dimension when the graph fixes it, and the integers a shape subgraph computes
// (Shape -> Gather -> Unsqueeze -> Concat, with Mul/Div/Add on the way). Unknown entries are NaN,
// so `[NaN, NaN, 4, 8]` reads "batch and sequence are dynamic, 4 heads of 8". Attention discovery
// uses it to find head counts, head sizes and packed-QKV offsets; nothing here changes the graph.

import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';

/** How many steps back through the graph the readers follow before giving up. */
const MAX_DEPTH = 48;

function isStandard(node: Node): boolean {
  return node.domain === '' || node.domain === 'ai.onnx';
}

/** The integer values of an int tensor: constants, or what a shape subgraph computes (NaN where unknown). */
export function integerValues(v: Value | null | undefined, depth = 0): number[] | undefined {
  if (!v || depth > MAX_DEPTH) return undefined;
  const t = v.constantTensor();
  if (t) {
    try {
      return [...t.toFloat64()];
    } catch {
      return undefined;
    }
  }
  const n = v.producer;
  if (!n || !isStandard(n)) return undefined;
  const arg = (i: number): number[] | undefined => integerValues(n.inputs[i], depth + 1);
  switch (n.opType) {
    case 'Shape': {
      const x = n.inputs[0];
      if (!x) return undefined;
      const rank = rankOf(x);
      if (rank === undefined) return undefined;
      const dims = Array.from({ length: rank }, (_, i) => dimOf(x, i, depth + 1) ?? NaN);
      const start = normaliseAxis(n.getInt('start', 0), rank);
      const end = n.attributes.has('end') ? normaliseAxis(n.getInt('end', rank), rank) : rank;
      return dims.slice(start, end);
    }
    case 'Gather': {
      const index = arg(1);
      if (!index || n.getInt('axis', 0) !== 0) return undefined;
      const data = arg(0);
      if (!data) return pickedShapeDims(n.inputs[0], index, depth);
      return index.map((i) => data[i < 0 ? i + data.length : i] ?? NaN);
    }
    case 'Unsqueeze':
    case 'Squeeze':
    case 'Cast':
    case 'Identity':
    case 'Reshape':
      return arg(0);
    case 'Concat': {
      const parts = n.inputs.map((x) => integerValues(x, depth + 1));
      return parts.every((p) => p) ? parts.flat() as number[] : undefined;
    }
    case 'Mul':
    case 'Div':
    case 'Add':
    case 'Sub': {
      const a = arg(0);
      const b = arg(1);
      if (!a || !b) return undefined;
      const len = Math.max(a.length, b.length);
      const at = (x: number[], i: number): number => (x.length === 1 ? x[0]! : x[i] ?? NaN);
      return Array.from({ length: len }, (_, i) => {
        const x = at(a, i);
        const y = at(b, i);
        if (n.opType === 'Mul') return x * y;
        if (n.opType === 'Add') return x + y;
        if (n.opType === 'Sub') return x - y;
        return Math.trunc(x / y);
      });
    }
    case 'Slice': {
      const range = sliceRange(n, depth);
      if (!range) return undefined;
      const data = arg(0);
      if (!data) return range.from >= 0 && range.to > range.from && range.to - range.from <= 8 ? pickedShapeDims(n.inputs[0], Array.from({ length: range.to - range.from }, (_, i) => range.from + i), depth) : undefined;
      const clamp = (i: number): number => Math.max(0, Math.min(data.length, i < 0 ? i + data.length : i));
      return data.slice(clamp(range.from), clamp(range.to));
    }
    default:
      return undefined;
  }
}

/** The Shape node that computes `v`, through Casts and Identities (Paddle2ONNX casts shapes to int32 and back). */
function shapeBehindCasts(v: Value | null | undefined): Node | undefined {
  let p = v?.producer;
  while (p && (p.is('Cast') || p.is('Identity')) && isStandard(p)) p = p.inputs[0]?.producer;
  return p?.is('Shape') && isStandard(p) && p.getInt('start', 0) === 0 ? p : undefined;
}

/**
 * Dims `indices` of the tensor whose whole Shape `v` is (through Casts), when the rank is unknown
 * so integerValues cannot list the Shape itself: non-negative indices need no rank (NaN where a
 * dim is not known).
 */
function pickedShapeDims(v: Value | null | undefined, indices: readonly number[], depth: number): number[] | undefined {
  const shape = shapeBehindCasts(v);
  if (!shape || !indices.every((i) => i >= 0)) return undefined;
  return indices.map((i) => dimOf(shape.inputs[0]!, i, depth + 1) ?? NaN);
}

/**
 * The constant range [from, to) a Slice takes of a 1-D tensor (a shape): starts/ends are inputs
 * from opset 10 on and attributes before it; undefined for other axes or several ranges.
 */
export function sliceRange(n: Node, depth = 0): { from: number; to: number } | undefined {
  const at = (input: number, attribute: string): number[] | undefined => (n.inputs.length > input ? integerValues(n.inputs[input], depth + 1) : n.getInts(attribute));
  const starts = at(1, 'starts');
  const ends = at(2, 'ends');
  const axes = n.inputs[3] ? integerValues(n.inputs[3], depth + 1) : n.getInts('axes');
  if (!starts || !ends || starts.length !== 1 || ends.length !== 1 || (axes && (axes.length !== 1 || (axes[0] !== 0 && axes[0] !== -1)))) return undefined;
  return { from: starts[0]!, to: ends[0]! };
}

function normaliseAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** The rank of a value: its declared shape, or what its producer makes of its inputs' ranks. */
export function rankOf(v: Value | null | undefined, depth = 0): number | undefined {
  if (!v || depth > MAX_DEPTH) return undefined;
  const declared = v.shape;
  if (declared) return declared.length;
  const t = v.constantTensor();
  if (t) return t.dims.length;
  const n = v.producer;
  if (!n) return undefined;
  const r = (i: number): number | undefined => rankOf(n.inputs[i], depth + 1);
  switch (n.opType) {
    case 'Transpose':
      return n.getInts('perm')?.length ?? r(0);
    case 'Reshape': {
      const shape = n.inputs[1]?.constantTensor()?.dims[0] ?? integerValues(n.inputs[1])?.length;
      return shape;
    }
    case 'Unsqueeze': {
      const axes = n.getInts('axes') ?? integerValues(n.inputs[1]);
      const base = r(0);
      return base === undefined || !axes ? undefined : base + axes.length;
    }
    case 'MatMul': {
      const a = r(0);
      const b = r(1);
      return a === undefined || b === undefined ? undefined : Math.max(a, b);
    }
    case 'Gemm':
      return 2;
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div':
    case 'Where': {
      const ranks = n.inputs.map((x) => rankOf(x, depth + 1));
      return ranks.some((x) => x === undefined) ? undefined : Math.max(...(ranks as number[]));
    }
    case 'Expand': {
      const shape = integerValues(n.inputs[1]);
      const base = r(0);
      return base === undefined || !shape ? undefined : Math.max(base, shape.length);
    }
    case 'Shape':
      return 1;
    case 'Gather': {
      // An embedding lookup: indices' axes replace the gathered axis.
      const data = r(0);
      const indices = r(1);
      return data === undefined || indices === undefined ? undefined : data - 1 + indices;
    }
    default:
      // Element-wise and shape-keeping ops: Relu, Softmax, Cast, Slice, Split, LayerNormalization...
      return r(0);
  }
}

/** Dimension `axis` of `v` when the graph fixes it (a declared dim, a weight's width); undefined when dynamic. */
export function dimOf(v: Value | null | undefined, axis: number, depth = 0): number | undefined {
  if (!v || depth > MAX_DEPTH) return undefined;
  const rank = rankOf(v, depth);
  if (rank === undefined) return undefined;
  const a = normaliseAxis(axis, rank);
  const declared = v.shape?.[a]?.value;
  if (declared !== undefined && declared > 0) return declared;
  const t = v.constantTensor();
  if (t) return t.dims[a];
  const n = v.producer;
  if (!n) return undefined;
  switch (n.opType) {
    case 'Transpose': {
      const perm = n.getInts('perm');
      return perm ? dimOf(n.inputs[0], perm[a]!, depth + 1) : dimOf(n.inputs[0], rank - 1 - a, depth + 1);
    }
    case 'MatMul': {
      if (a === rank - 1) return dimOf(n.inputs[1], -1, depth + 1);
      if (a === rank - 2) return dimOf(n.inputs[0], -2, depth + 1);
      return dimOf(n.inputs[0], a - rank, depth + 1) ?? dimOf(n.inputs[1], a - rank, depth + 1);
    }
    case 'Gemm': {
      if (a !== 1) return undefined;
      const w = n.inputs[1]?.constantTensor();
      return w ? w.dims[n.getInt('transB', 0) ? 0 : 1] : undefined;
    }
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div': {
      for (const x of n.inputs) {
        const d = dimOf(x, a - rank, depth + 1);
        if (d !== undefined && d !== 1) return d;
      }
      return undefined;
    }
    case 'Reshape': {
      const shape = integerValues(n.inputs[1]);
      const d = shape?.[a];
      return d !== undefined && d > 0 ? d : undefined;
    }
    case 'Relu':
    case 'Gelu':
    case 'Tanh':
    case 'Sigmoid':
    case 'Softmax':
    case 'Cast':
    case 'Identity':
    case 'LayerNormalization':
    case 'Dropout':
      return dimOf(n.inputs[0], a - rank, depth + 1);
    default:
      return undefined;
  }
}
