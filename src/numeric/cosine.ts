// Cosine similarity between row vectors, directly or from a Gram matrix.
// numeric/ owns typed-array math with no IR; it imports nothing of ours.
// Zero rows get cosine 0 with every other row and 1 with themselves, so a dead neuron never looks
// parallel to a live one and the matrix stays a valid similarity (unit diagonal).

/** Euclidean norm of each of the `rowCount` rows of length `dim` (row-major), safe from overflow and underflow. */
export function norms(rows: Float64Array, rowCount: number, dim: number): Float64Array {
  checkShape(rows.length, rowCount, dim);
  const out = new Float64Array(rowCount);
  for (let r = 0; r < rowCount; r++) {
    const offset = r * dim;
    let largest = 0;
    for (let k = 0; k < dim; k++) largest = Math.max(largest, Math.abs(rows[offset + k]!));
    if (largest === 0 || !Number.isFinite(largest)) {
      out[r] = largest;
      continue;
    }
    // Scaling by the largest entry keeps squares of very large or very small weights representable.
    let sum = 0;
    for (let k = 0; k < dim; k++) {
      const scaled = rows[offset + k]! / largest;
      sum += scaled * scaled;
    }
    out[r] = Math.sqrt(sum) * largest;
  }
  return out;
}

/** Row-major `rowCount` x `rowCount` matrix of cosines between the rows (clamped to [-1, 1]). */
export function cosineMatrix(rows: Float64Array, rowCount: number, dim: number): Float64Array {
  const rowNorms = norms(rows, rowCount, dim);
  // Normalising first turns every entry into a plain dot product of unit vectors.
  const unit = new Float64Array(rowCount * dim);
  for (let r = 0; r < rowCount; r++) {
    const norm = rowNorms[r]!;
    if (norm === 0) continue;
    const offset = r * dim;
    for (let k = 0; k < dim; k++) unit[offset + k] = rows[offset + k]! / norm;
  }
  // A zero row stays all zeros in `unit`, so its dot products come out 0 with no special case.
  const out = new Float64Array(rowCount * rowCount);
  let i = 0;
  for (; i + 1 < rowCount; i += 2) {
    const offsetI0 = i * dim;
    const offsetI1 = offsetI0 + dim;
    let dotPair = 0;
    for (let k = 0; k < dim; k++) dotPair += unit[offsetI0 + k]! * unit[offsetI1 + k]!;
    setPair(out, rowCount, i, i + 1, dotPair);
    let j = i + 2;
    // 2 x 2 tiles of rows share their loads, roughly halving memory traffic in the hot loop.
    for (; j + 1 < rowCount; j += 2) {
      const offsetJ0 = j * dim;
      const offsetJ1 = offsetJ0 + dim;
      let d00 = 0;
      let d01 = 0;
      let d10 = 0;
      let d11 = 0;
      for (let k = 0; k < dim; k++) {
        const a0 = unit[offsetI0 + k]!;
        const a1 = unit[offsetI1 + k]!;
        const b0 = unit[offsetJ0 + k]!;
        const b1 = unit[offsetJ1 + k]!;
        d00 += a0 * b0;
        d01 += a0 * b1;
        d10 += a1 * b0;
        d11 += a1 * b1;
      }
      setPair(out, rowCount, i, j, d00);
      setPair(out, rowCount, i, j + 1, d01);
      setPair(out, rowCount, i + 1, j, d10);
      setPair(out, rowCount, i + 1, j + 1, d11);
    }
    if (j < rowCount) {
      const offsetJ = j * dim;
      let d0 = 0;
      let d1 = 0;
      for (let k = 0; k < dim; k++) {
        const b = unit[offsetJ + k]!;
        d0 += unit[offsetI0 + k]! * b;
        d1 += unit[offsetI1 + k]! * b;
      }
      setPair(out, rowCount, i, j, d0);
      setPair(out, rowCount, i + 1, j, d1);
    }
  }
  for (let d = 0; d < rowCount; d++) out[d * rowCount + d] = 1;
  return out;
}

function setPair(out: Float64Array, rowCount: number, i: number, j: number, dot: number): void {
  const cosine = clampUnit(dot);
  out[i * rowCount + j] = cosine;
  out[j * rowCount + i] = cosine;
}

/**
 * The cosines of the uncentred second moment E[h h^T] = scatter / count + mean mean^T (row-major
 * m x m), in one pass and one m x m allocation: what cosineFromGram(secondMoment()) gives, without
 * the covariance and second-moment matrices in between.
 */
export function cosineFromMoments(scatter: Float64Array, mean: Float64Array, count: number, m: number): Float64Array {
  checkShape(scatter.length, m, m);
  const invNorms = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const g = scatter[i * m + i]! / count + mean[i]! * mean[i]!;
    invNorms[i] = g > 0 ? 1 / Math.sqrt(g) : 0;
  }
  const out = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    const scaleI = invNorms[i]!;
    const meanI = mean[i]!;
    const row = i * m;
    for (let j = 0; j < m; j++) out[row + j] = clampUnit((scatter[row + j]! / count + meanI * mean[j]!) * scaleI * invNorms[j]!);
    out[row + i] = 1;
  }
  return out;
}

/** Turns a Gram matrix G_ij = u_i . u_j (row-major n x n) into the cosines of the u_i. */
export function cosineFromGram(gram: Float64Array, n: number): Float64Array {
  checkShape(gram.length, n, n);
  const invNorms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = gram[i * n + i]!;
    invNorms[i] = g > 0 ? 1 / Math.sqrt(g) : 0;
  }
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const scaleI = invNorms[i]!;
    for (let j = 0; j < n; j++) {
      out[i * n + j] = i === j ? 1 : clampUnit(gram[i * n + j]! * scaleI * invNorms[j]!);
    }
  }
  return out;
}

// Rounding can push |cos| a few ulps past 1, which would make 1 - cos a negative distance.
function clampUnit(x: number): number {
  return x > 1 ? 1 : x < -1 ? -1 : x;
}

function checkShape(length: number, rowCount: number, dim: number): void {
  if (length !== rowCount * dim) {
    throw new RangeError(`matrix holds ${length} values, expected ${rowCount} x ${dim}`);
  }
}
