// Moving one axis of a dense row-major array to the front and back, so that "the slice of a
// weight tensor that belongs to neuron k" is one contiguous row whatever axis the op uses.

/** Rows of `data` (shape `dims`) taken along `axis`: result is dims[axis] x (product of the rest). */
export function axisToRows(data: ArrayLike<number>, dims: readonly number[], axis: number): Float64Array {
  const count = dims[axis]!;
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const rowLength = outer * inner;
  const out = new Float64Array(count * rowLength);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < count; k++) {
      const src = (o * count + k) * inner;
      const dst = k * rowLength + o * inner;
      for (let i = 0; i < inner; i++) out[dst + i] = data[src + i]!;
    }
  }
  return out;
}

/** Inverse of axisToRows: rows (count x rest) back into a row-major array with `axis` of size count. */
export function rowsToAxis(rows: Float64Array, count: number, dims: readonly number[], axis: number): Float64Array {
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const rowLength = outer * inner;
  const out = new Float64Array(outer * count * inner);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < count; k++) {
      const dst = (o * count + k) * inner;
      const src = k * rowLength + o * inner;
      for (let i = 0; i < inner; i++) out[dst + i] = rows[src + i]!;
    }
  }
  return out;
}
