// The per-head audit of an attention block: query and key neurons (rows of W_Q, W_K per head)
// clustered within each head, value rows likewise (each pairs with a row block of W_O), and
// head-level similarity. Two heads compute the same thing when their QK circuits W_Q,h^T W_K,h
// agree (the same attention pattern, as the scores x W_Q^T W_K x^T show) and their value spaces
// agree (V_b = M V_a, so the OV contribution of b folds into a's output rows: O_a += M^T O_b).
// Circuits, not rows: a head turned by an orthogonal matrix has other rows and the same function.
// Reads weights only; runs nothing.

import { cosineMatrix } from '../numeric/cosine.js';
import { axisToRows } from '../numeric/axis-slices.js';
import { solveSymmetricPositive } from '../numeric/linear-solve.js';
import { clusterNeurons } from './cluster/cluster-neurons.js';
import type { AttentionBlock, ProjectionPart } from './attention.js';
import { constantNumbers } from './find-layers.js';

export interface HeadMeasures {
  head: number;
  /** The key/value head this query head reads. */
  kvHead: number;
  /** Clusters among the head's query rows (|cos| >= the similarity threshold). */
  queryClusters: number;
  keyClusters: number;
  valueClusters: number;
  /** Query (or key) rows that are exact multiples of another row of the head: q_j k_j folds into q_i k_i. */
  queryKeyMerges: number;
  /** Value rows that are exact multiples of another: its output-projection rows fold into the other's. */
  valueOutputMerges: number;
}

/** Head `head` computes what head `into` computes: Q K^T equal, V_head = valueMap V_into. */
export interface DuplicateHead {
  head: number;
  into: number;
  /** valueHeadSize x valueHeadSize, row-major. */
  valueMap: Float64Array;
}

export interface AttentionAudit {
  block: AttentionBlock;
  heads: HeadMeasures[];
  /** heads x heads: min(cos of the QK circuits, overlap of the value spaces in both directions). */
  headSimilarity: Float64Array;
  /** How heads were compared: their circuits, or (past CIRCUIT_BUDGET) their rows. */
  headSimilarityBasis: 'circuits' | 'rows';
  /** Cosines of the query rows, head by head (the first heads that fit MAX_QUERY_ROWS): what the papers draw for W_Q. */
  queryCosine: Float64Array;
  /** Rows in queryCosine (a whole number of heads). */
  queryRows: number;
  duplicates: DuplicateHead[];
  /** Pairs of heads at or above the similarity threshold (duplicates included). */
  similarPairs: [number, number][];
  queryClusters: number;
  keyClusters: number;
}

/** Query rows drawn in the W_Q heatmap at most (the cosine matrix is rows^2 numbers). */
export const MAX_QUERY_ROWS = 1024;

/**
 * Multiply-adds the circuit comparison may spend on one block (pairs x 3 d^2 c); past it, heads
 * are compared by their rows (equal Q, K rows and V_b = M V_a), which a basis change hides.
 */
export const CIRCUIT_BUDGET = 2e9;

export interface HeadAuditOptions {
  similarityThreshold: number;
  /** Largest relative residual still treated as an exact relation (MergeOptions.exactTolerance). */
  exactTolerance: number;
  /** Multiply-adds allowed for comparing circuits (default CIRCUIT_BUDGET); past it, rows. */
  circuitBudget?: number;
}

/** The part's rows u_k = [w_k; b_k] (width x cols). */
export function partRows(part: ProjectionPart): { rows: Float64Array; cols: number } {
  const t = part.weight.constantTensor()!;
  const all = axisToRows(constantNumbers(part.weight)!, t.dims, part.outAxis);
  const total = t.dims[part.outAxis]!;
  const fanIn = all.length / total;
  const bias = part.bias ? constantNumbers(part.bias) : undefined;
  const cols = fanIn + (bias ? 1 : 0);
  const rows = new Float64Array(part.width * cols);
  for (let k = 0; k < part.width; k++) {
    const src = (part.offset + k) * fanIn;
    for (let i = 0; i < fanIn; i++) rows[k * cols + i] = part.weightScale * all[src + i]!;
    if (bias) rows[k * cols + fanIn] = part.biasScale * bias[part.offset + k]!;
  }
  return { rows, cols };
}

/** The output projection's rows along its input axis (one per head channel), each `outputs` long. */
export function outputRows(block: AttentionBlock): { rows: Float64Array; outputs: number } | undefined {
  const o = block.output;
  if (!o) return undefined;
  const t = o.weight.constantTensor()!;
  const rows = axisToRows(constantNumbers(o.weight)!, t.dims, o.inAxis);
  const scale = o.layer?.weight.scale ?? 1;
  if (scale !== 1) for (let i = 0; i < rows.length; i++) rows[i]! *= scale;
  return { rows, outputs: rows.length / t.dims[o.inAxis]! };
}

function rowBlock(rows: Float64Array, cols: number, start: number, count: number): Float64Array {
  return rows.subarray(start * cols, (start + count) * cols);
}

/** A B^T for A, B (n x cols): n x n. */
function gram(a: Float64Array, b: Float64Array, n: number, cols: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += a[i * cols + c]! * b[j * cols + c]!;
      out[i * n + j] = s;
    }
  }
  return out;
}

function cosine(a: Float64Array, b: Float64Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! ** 2;
    nb += b[i]! ** 2;
  }
  return na === 0 || nb === 0 ? (na === nb ? 1 : 0) : dot / Math.sqrt(na * nb);
}

function relativeDistance(a: Float64Array, b: Float64Array): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += a[i]! ** 2;
  }
  return n === 0 ? (d === 0 ? 0 : Infinity) : Math.sqrt(d / n);
}

/** Clusters of `count` rows by |cos| (a linear map: q and -q fold into each other). */
function clusterCount(rows: Float64Array, count: number, cols: number, threshold: number): number {
  if (count <= 1) return count;
  const cos = cosineMatrix(rows, count, cols);
  const distance = cos.map((c) => Math.max(0, 1 - Math.abs(c)));
  for (let i = 0; i < count; i++) distance[i * count + i] = 0;
  return clusterNeurons(distance, count, { maxDistance: 1 - threshold }).count;
}

/** Rows that are exact multiples t of an earlier row (the droppable ones). */
function proportionalRows(rows: Float64Array, count: number, cols: number, tolerance: number): number {
  return proportionalPairs(rows, count, cols, tolerance).length;
}

/** Row `neuron` = scale x row `into` (relative residual within tolerance), each neuron dropped once. */
export interface RowRelation {
  neuron: number;
  into: number;
  scale: number;
}

/** The exact relations among `count` rows: each later row that is a multiple of an earlier kept one. */
export function proportionalPairs(rows: Float64Array, count: number, cols: number, tolerance: number): RowRelation[] {
  const relations: RowRelation[] = [];
  const dropped = new Set<number>();
  for (let i = 0; i < count; i++) {
    if (dropped.has(i)) continue;
    const ri = rows.subarray(i * cols, (i + 1) * cols);
    const ni = ri.reduce((s, x) => s + x * x, 0);
    if (ni === 0) continue;
    for (let j = i + 1; j < count; j++) {
      if (dropped.has(j)) continue;
      const rj = rows.subarray(j * cols, (j + 1) * cols);
      let dot = 0;
      for (let c = 0; c < cols; c++) dot += ri[c]! * rj[c]!;
      const t = dot / ni;
      let res = 0;
      let nj = 0;
      for (let c = 0; c < cols; c++) {
        res += (rj[c]! - t * ri[c]!) ** 2;
        nj += rj[c]! ** 2;
      }
      if (Math.sqrt(res) <= tolerance * Math.sqrt(nj)) {
        dropped.add(j);
        relations.push({ neuron: j, into: i, scale: t });
      }
    }
  }
  return relations;
}

/** M with V_b ~ M V_a (least squares: M = V_b V_a^T (V_a V_a^T)^-1), or undefined unless exact within tolerance. */
export function valueMap(vb: Float64Array, va: Float64Array, d: number, cols: number, tolerance: number): Float64Array | undefined {
  const fit = fitValues(vb, va, d, cols);
  return fit && fit.residual <= tolerance ? fit.map : undefined;
}

/**
 * How much of V_b lies in the row space of V_a: sqrt(1 - r^2) for the relative least-squares
 * residual r (1: the same value space, whatever basis each head uses). From Grams only: with
 * X = (V_a V_a^T)^-1 V_a V_b^T, |V_b - X^T V_a|^2 = |V_b|^2 - sum(X o V_a V_b^T).
 */
function valueSpaceSimilarity(gramA: Float64Array, cross: Float64Array, normB2: number, d: number): number {
  if (normB2 === 0) return 1;
  let x: Float64Array;
  try {
    x = solveSymmetricPositive(gramA, d, cross, d, 0);
  } catch {
    return 0;
  }
  let fit = 0;
  for (let i = 0; i < d * d; i++) fit += x[i]! * cross[i]!;
  return Math.sqrt(Math.max(0, Math.min(1, fit / normB2)));
}

function transpose(m: Float64Array, n: number): Float64Array {
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = m[i * n + j]!;
  return t;
}

function fitValues(vb: Float64Array, va: Float64Array, d: number, cols: number): { map: Float64Array; residual: number } | undefined {
  const gram = new Float64Array(d * d);
  const cross = new Float64Array(d * d); // rows: a-index; columns: b-index (V_a V_b^T)
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let g = 0;
      let c = 0;
      for (let k = 0; k < cols; k++) {
        g += va[i * cols + k]! * va[j * cols + k]!;
        c += va[i * cols + k]! * vb[j * cols + k]!;
      }
      gram[i * d + j] = g;
      cross[i * d + j] = c;
    }
  }
  let solved: Float64Array;
  try {
    solved = solveSymmetricPositive(gram, d, cross, d, 0); // X = (V_a V_a^T)^-1 V_a V_b^T = M^T
  } catch {
    return undefined;
  }
  const m = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) m[i * d + j] = solved[j * d + i]!;
  let res = 0;
  let norm = 0;
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < cols; k++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += m[i * d + j]! * va[j * cols + k]!;
      res += (vb[i * cols + k]! - s) ** 2;
      norm += vb[i * cols + k]! ** 2;
    }
  }
  return { map: m, residual: norm === 0 ? 0 : Math.sqrt(res / norm) };
}

/** The per-head audit of one block (weights only). */
export function auditHeads(block: AttentionBlock, options: HeadAuditOptions): AttentionAudit {
  const { heads: H, kvHeads: KV, headSize: d, valueHeadSize: dv } = block;
  const group = Math.max(1, Math.round(H / KV));
  const q = partRows(block.q);
  const k = partRows(block.k);
  const v = partRows(block.v);
  const tol = options.exactTolerance;
  const measures: HeadMeasures[] = [];
  for (let h = 0; h < H; h++) {
    const g = Math.min(KV - 1, Math.floor(h / group));
    const qh = rowBlock(q.rows, q.cols, h * d, d);
    const kh = rowBlock(k.rows, k.cols, g * d, d);
    const vh = rowBlock(v.rows, v.cols, g * dv, dv);
    measures.push({
      head: h,
      kvHead: g,
      queryClusters: clusterCount(qh, d, q.cols, options.similarityThreshold),
      keyClusters: clusterCount(kh, d, k.cols, options.similarityThreshold),
      valueClusters: clusterCount(vh, dv, v.cols, options.similarityThreshold),
      queryKeyMerges: Math.max(proportionalRows(qh, d, q.cols, tol), proportionalRows(kh, d, k.cols, tol)),
      valueOutputMerges: proportionalRows(vh, dv, v.cols, tol),
    });
  }
  const pairs = (H * (H - 1)) / 2;
  const basis: 'circuits' | 'rows' = pairs * 3 * d * d * Math.max(q.cols, v.cols) <= (options.circuitBudget ?? CIRCUIT_BUDGET) ? 'circuits' : 'rows';
  const qBlock = (h: number): Float64Array => rowBlock(q.rows, q.cols, h * d, d);
  const kBlock = (h: number): Float64Array => rowBlock(k.rows, k.cols, measures[h]!.kvHead * d, d);
  const vBlock = (h: number): Float64Array => rowBlock(v.rows, v.cols, measures[h]!.kvHead * dv, dv);
  // <Q_a^T K_a, Q_b^T K_b>_F = sum_ij (Q_a Q_b^T)_ij (K_a K_b^T)_ij: d x d Grams, never c x c circuits.
  const circuitInner = (a: number, b: number): number => {
    const qa = gram(qBlock(a), qBlock(b), d, q.cols);
    const ka = gram(kBlock(a), kBlock(b), d, k.cols);
    let s = 0;
    for (let i = 0; i < d * d; i++) s += qa[i]! * ka[i]!;
    return s;
  };
  const circuitNorm = basis === 'circuits' ? Array.from({ length: H }, (_, h) => circuitInner(h, h)) : [];
  const vGram = basis === 'circuits' ? Array.from({ length: H }, (_, h) => gram(vBlock(h), vBlock(h), dv, v.cols)) : [];
  const similarity = new Float64Array(H * H);
  const similarPairs: [number, number][] = [];
  const duplicates: DuplicateHead[] = [];
  const merged = new Set<number>();
  for (let a = 0; a < H; a++) {
    similarity[a * H + a] = 1;
    for (let b = a + 1; b < H; b++) {
      const va = vBlock(a);
      const vb = vBlock(b);
      let s: number;
      let circuitDistance = Infinity;
      if (basis === 'circuits') {
        const na = circuitNorm[a]!;
        const nb = circuitNorm[b]!;
        const inner = circuitInner(a, b);
        const qkCos = na === 0 || nb === 0 ? (na === nb ? 1 : 0) : inner / Math.sqrt(na * nb);
        circuitDistance = na === 0 ? (nb === 0 ? 0 : Infinity) : Math.sqrt(Math.max(0, na + nb - 2 * inner) / na);
        const cross = gram(va, vb, dv, v.cols); // V_a V_b^T
        const trace = (m: Float64Array): number => Array.from({ length: dv }, (_, i) => m[i * dv + i]!).reduce((x, y) => x + y, 0);
        s = Math.min(qkCos, valueSpaceSimilarity(vGram[a]!, cross, trace(vGram[b]!), dv), valueSpaceSimilarity(vGram[b]!, transpose(cross, dv), trace(vGram[a]!), dv));
      } else {
        s = Math.min(Math.abs(cosine(qBlock(a), qBlock(b))), Math.abs(cosine(kBlock(a), kBlock(b))), Math.abs(cosine(va, vb)));
      }
      similarity[a * H + b] = similarity[b * H + a] = s;
      if (s >= options.similarityThreshold) similarPairs.push([a, b]);
      if (merged.has(b) || merged.has(a)) continue;
      const sameScores = block.q.rotary || block.k.rotary || basis === 'rows'
        ? relativeDistance(qBlock(a), qBlock(b)) <= tol && relativeDistance(kBlock(a), kBlock(b)) <= tol
        : circuitDistance <= tol;
      if (!sameScores) continue;
      const map = valueMap(vb, va, dv, v.cols, tol);
      if (!map) continue;
      duplicates.push({ head: b, into: a, valueMap: map });
      merged.add(b);
    }
  }
  const shownRows = Math.min(H, Math.max(1, Math.floor(MAX_QUERY_ROWS / d))) * d;
  return {
    block,
    heads: measures,
    headSimilarity: similarity,
    headSimilarityBasis: basis,
    queryCosine: cosineMatrix(q.rows.subarray(0, shownRows * q.cols), shownRows, q.cols),
    queryRows: shownRows,
    duplicates,
    similarPairs,
    queryClusters: measures.reduce((s, m) => s + m.queryClusters, 0),
    keyClusters: measures.filter((m, i) => measures.findIndex((x) => x.kvHead === m.kvHead) === i).reduce((s, m) => s + m.keyClusters, 0),
  };
}
