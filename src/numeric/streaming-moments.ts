// Running mean and covariance of m variables, fed batch by batch in float64.
// numeric/ owns typed-array math with no IR; it imports nothing of ours.

// Rows are centred and transposed in blocks of this many, so the scatter update reads two short
// contiguous columns per entry instead of sweeping the whole m x m matrix once per row.
const ROW_BLOCK = 64;

/**
 * Mean and scatter (centred sum of outer products, M2) of m variables over every row seen so far.
 * Batches merge by the pairwise update of Chan, Golub and LeVeque (1979), which stays accurate
 * when the mean is large against the spread, unlike accumulating raw sums of h and h h^T.
 */
export class StreamingMoments {
  readonly variableCount: number;
  count = 0;
  readonly mean: Float64Array;
  /** Row-major m x m, sum over rows of (h - mean)(h - mean)^T. */
  readonly scatter: Float64Array;
  private readonly delta: Float64Array;

  constructor(variableCount: number) {
    if (!Number.isInteger(variableCount) || variableCount < 0) {
      throw new RangeError(`variableCount must be a non-negative integer, got ${variableCount}`);
    }
    this.variableCount = variableCount;
    this.mean = new Float64Array(variableCount);
    this.scatter = new Float64Array(variableCount * variableCount);
    this.delta = new Float64Array(variableCount);
  }

  /** Merges a batch given by its mean, its scatter (row-major m x m) and its row count. */
  addBatch(batchMean: ArrayLike<number>, batchScatter: ArrayLike<number>, batchCount: number): void {
    const m = this.variableCount;
    if (batchMean.length !== m || batchScatter.length !== m * m) {
      throw new RangeError(
        `batch has mean of length ${batchMean.length} and scatter of length ${batchScatter.length}, expected ${m} and ${m * m}`,
      );
    }
    if (batchCount <= 0) return;
    const countA = this.count;
    const total = countA + batchCount;
    const delta = this.delta;
    for (let i = 0; i < m; i++) delta[i] = batchMean[i]! - this.mean[i]!;
    const weight = (countA * batchCount) / total;
    const scatter = this.scatter;
    for (let i = 0; i < m; i++) {
      const rowOffset = i * m;
      const di = delta[i]! * weight;
      for (let j = 0; j < m; j++) {
        scatter[rowOffset + j] = scatter[rowOffset + j]! + batchScatter[rowOffset + j]! + di * delta[j]!;
      }
    }
    const meanStep = batchCount / total;
    for (let i = 0; i < m; i++) this.mean[i] = this.mean[i]! + delta[i]! * meanStep;
    this.count = total;
  }

  /** Adds `rowCount` rows of m values each (row-major) by computing their two-pass moments here. */
  addRows(rows: Float32Array | Float64Array, rowCount: number): void {
    const m = this.variableCount;
    if (rows.length < rowCount * m) {
      throw new RangeError(`rows holds ${rows.length} values, expected at least ${rowCount} x ${m}`);
    }
    if (rowCount <= 0) return;
    const batchMean = new Float64Array(m);
    for (let r = 0; r < rowCount; r++) {
      const offset = r * m;
      for (let i = 0; i < m; i++) batchMean[i] = batchMean[i]! + rows[offset + i]!;
    }
    for (let i = 0; i < m; i++) batchMean[i] = batchMean[i]! / rowCount;

    const batchScatter = new Float64Array(m * m);
    const block = new Float64Array(m * ROW_BLOCK);
    for (let start = 0; start < rowCount; start += ROW_BLOCK) {
      const size = Math.min(ROW_BLOCK, rowCount - start);
      // Column-major block: variable i's centred values for these rows are contiguous.
      for (let r = 0; r < size; r++) {
        const offset = (start + r) * m;
        for (let i = 0; i < m; i++) block[i * ROW_BLOCK + r] = rows[offset + i]! - batchMean[i]!;
      }
      accumulateUpperScatter(block, size, m, batchScatter);
    }
    for (let i = 0; i < m; i++) {
      for (let j = i + 1; j < m; j++) batchScatter[j * m + i] = batchScatter[i * m + j]!;
    }
    this.addBatch(batchMean, batchScatter, rowCount);
  }

  /** Population covariance scatter / count (row-major m x m); every entry is NaN when count is 0. */
  covariance(): Float64Array {
    const out = new Float64Array(this.scatter.length);
    for (let k = 0; k < out.length; k++) out[k] = this.scatter[k]! / this.count;
    return out;
  }

  /** Uncentred second moment E[h h^T] = covariance + mean mean^T (row-major m x m). */
  secondMoment(): Float64Array {
    const m = this.variableCount;
    const out = this.covariance();
    for (let i = 0; i < m; i++) {
      const mi = this.mean[i]!;
      for (let j = 0; j < m; j++) out[i * m + j] = out[i * m + j]! + mi * this.mean[j]!;
    }
    return out;
  }

  /** Population variance of each variable, the covariance diagonal. */
  variance(): Float64Array {
    const m = this.variableCount;
    const out = new Float64Array(m);
    for (let i = 0; i < m; i++) out[i] = this.scatter[i * m + i]! / this.count;
    return out;
  }
}

// Tiles of this many rows and columns when a matrix block is mirrored across the diagonal: both
// the reads and the transposed writes then stay within a few pages.
const MIRROR_TILE = 32;

/**
 * Copies the rectangle rows [r0, r1) x columns [c0, c1) of the row-major m x m `matrix` (above
 * the diagonal) to its mirror image (rows [c0, c1) x columns [r0, r1)), tile by tile: the naive
 * column-strided writes miss the cache on every store, which at m = 4096 costs more than the
 * arithmetic that produced the block.
 */
export function mirrorBlock(matrix: Float64Array, m: number, r0: number, r1: number, c0: number, c1: number): void {
  for (let ti = r0; ti < r1; ti += MIRROR_TILE) {
    const iEnd = Math.min(r1, ti + MIRROR_TILE);
    for (let tj = c0; tj < c1; tj += MIRROR_TILE) {
      const jEnd = Math.min(c1, tj + MIRROR_TILE);
      for (let j = tj; j < jEnd; j++) {
        const row = j * m;
        for (let i = ti; i < iEnd; i++) matrix[row + i] = matrix[i * m + j]!;
      }
    }
  }
}

// Adds block^T block to the upper triangle of `scatter` (m x m), where `block` holds m columns of
// ROW_BLOCK centred values. Pairs of i and pairs of j share their loads (a 2 x 2 register tile),
// which roughly halves memory traffic in this, the hot loop of the fallback path.
function accumulateUpperScatter(block: Float64Array, size: number, m: number, scatter: Float64Array): void {
  let i = 0;
  for (; i + 1 < m; i += 2) {
    const columnI0 = i * ROW_BLOCK;
    const columnI1 = columnI0 + ROW_BLOCK;
    const row0 = i * m;
    const row1 = row0 + m;
    // The 2 x 2 diagonal tile: (i, i), (i, i+1), (i+1, i+1).
    let s00 = 0;
    let s01 = 0;
    let s11 = 0;
    for (let r = 0; r < size; r++) {
      const a0 = block[columnI0 + r]!;
      const a1 = block[columnI1 + r]!;
      s00 += a0 * a0;
      s01 += a0 * a1;
      s11 += a1 * a1;
    }
    scatter[row0 + i] = scatter[row0 + i]! + s00;
    scatter[row0 + i + 1] = scatter[row0 + i + 1]! + s01;
    scatter[row1 + i + 1] = scatter[row1 + i + 1]! + s11;
    let j = i + 2;
    for (; j + 1 < m; j += 2) {
      const columnJ0 = j * ROW_BLOCK;
      const columnJ1 = columnJ0 + ROW_BLOCK;
      let t00 = 0;
      let t01 = 0;
      let t10 = 0;
      let t11 = 0;
      for (let r = 0; r < size; r++) {
        const a0 = block[columnI0 + r]!;
        const a1 = block[columnI1 + r]!;
        const b0 = block[columnJ0 + r]!;
        const b1 = block[columnJ1 + r]!;
        t00 += a0 * b0;
        t01 += a0 * b1;
        t10 += a1 * b0;
        t11 += a1 * b1;
      }
      scatter[row0 + j] = scatter[row0 + j]! + t00;
      scatter[row0 + j + 1] = scatter[row0 + j + 1]! + t01;
      scatter[row1 + j] = scatter[row1 + j]! + t10;
      scatter[row1 + j + 1] = scatter[row1 + j + 1]! + t11;
    }
    if (j < m) {
      const columnJ = j * ROW_BLOCK;
      let t0 = 0;
      let t1 = 0;
      for (let r = 0; r < size; r++) {
        const b = block[columnJ + r]!;
        t0 += block[columnI0 + r]! * b;
        t1 += block[columnI1 + r]! * b;
      }
      scatter[row0 + j] = scatter[row0 + j]! + t0;
      scatter[row1 + j] = scatter[row1 + j]! + t1;
    }
  }
  if (i < m) {
    // Odd m: the last variable only pairs with itself.
    const column = i * ROW_BLOCK;
    let sum = 0;
    for (let r = 0; r < size; r++) sum += block[column + r]! * block[column + r]!;
    scatter[i * m + i] = scatter[i * m + i]! + sum;
  }
}
