// When is merging group channel j into r exact? When, on every member tensor that holds them,
// h_j = t h_r with a scale t that the group's ops agree on (condensation.md, "Why merging is exact"):
// - a producer writes them: u_j = t u_r, and t = 1 unless its activation is positively homogeneous;
// - a depthwise conv reads channel j already scaled by a: its composite neuron needs
//   (a d_j, e_j) = t (d_r, e_r) (filter and bias), and t = a b carries on;
// - Add, Concat, pooling, Relu, Transpose keep t; a gate multiplies its factors' scales;
// - a non-homogeneous op (Clip as ReLU6, HardSwish, Sigmoid) needs t = 1 where it reads.
// This module solves those relations for one channel pair and returns t on every member.

import type { Value } from '../ir/value.js';
import { groupChannels, type DependencyGroup } from './channel-groups.js';
import type { NeuronLayer } from './find-layers.js';
import { inputWeightVectors } from './input-weights.js';

export interface GroupRatios {
  /** Channels whose relations may be exact: for each, the producer (not diagonal) that writes it, and its channel there. */
  anchors: { producer: NeuronLayer; channel: number }[];
  /** Norm of each group channel's input weights in its anchor producer. */
  anchorNorms: Float64Array;
  /** Cosine of the anchor rows of j and r (a cheap screen before `solve`). */
  anchorCosine(j: number, r: number): number;
  /** The scale t of h_j = t h_r on every member that holds j and r, or undefined when the merge is not exact. */
  solve(j: number, r: number, tolerance: number): Map<Value, number> | undefined;
  /** Local channel of group channel g in `value` (-1 when the member does not hold it, or holds padding zeros). */
  localOf(value: Value, g: number): number;
}

interface ProducerRows {
  rows: Float64Array;
  dim: number;
  fanIn: number;
  norms: Float64Array;
}

/** Prepares the ratio solver of a group (reads weights once). */
export function groupRatios(group: DependencyGroup): GroupRatios {
  const local = new Map<Value, Int32Array>();
  for (const m of group.members) {
    const map = new Int32Array(group.width).fill(-1);
    const zeros = group.zeroChannels.get(m.value);
    groupChannels(m, group.width).forEach((g, c) => {
      if (!zeros?.has(c)) map[g] = c;
    });
    local.set(m.value, map);
  }
  const localOf = (v: Value, g: number): number => local.get(v)?.[g] ?? -1;
  const rowsOf = new Map<NeuronLayer, ProducerRows>();
  for (const p of group.producers) {
    const { rows, dim } = inputWeightVectors(p);
    const fanIn = p.bias ? dim - 1 : dim;
    const norms = Float64Array.from({ length: p.width }, (_, k) => Math.hypot(...rows.subarray(k * dim, (k + 1) * dim)));
    rowsOf.set(p, { rows, dim, fanIn, norms });
  }
  const anchors: GroupRatios['anchors'] = [];
  const anchorNorms = new Float64Array(group.width);
  for (let g = 0; g < group.width; g++) {
    const p = group.producers.find((x) => !group.diagonalInputs.has(x) && localOf(x.activation.output, g) >= 0);
    if (!p) continue;
    const channel = localOf(p.activation.output, g);
    anchors[g] = { producer: p, channel };
    anchorNorms[g] = rowsOf.get(p)!.norms[channel]!;
  }
  const anchorCosine = (j: number, r: number): number => {
    const a = anchors[j];
    const b = anchors[r];
    if (!a || !b || a.producer !== b.producer) return 0;
    const { rows, dim, norms } = rowsOf.get(a.producer)!;
    const nj = norms[a.channel]!;
    const nr = norms[b.channel]!;
    if (nj === 0 || nr === 0) return 0;
    let dot = 0;
    for (let i = 0; i < dim; i++) dot += rows[a.channel * dim + i]! * rows[b.channel * dim + i]!;
    return dot / (nj * nr);
  };

  /** t with (inputScale * w_j, b_j) = t (w_r, b_r) within `tolerance`, or undefined. */
  const rowScale = (p: NeuronLayer, lj: number, lr: number, inputScale: number, tolerance: number): number | undefined => {
    const { rows, dim, fanIn, norms } = rowsOf.get(p)!;
    const nr = norms[lr]!;
    if (nr === 0) return undefined;
    const uj = (i: number): number => rows[lj * dim + i]! * (i < fanIn ? inputScale : 1);
    let dot = 0;
    let nj2 = 0;
    for (let i = 0; i < dim; i++) {
      dot += uj(i) * rows[lr * dim + i]!;
      nj2 += uj(i) ** 2;
    }
    const t = dot / (nr * nr);
    let residual = 0;
    for (let i = 0; i < dim; i++) residual += (uj(i) - t * rows[lr * dim + i]!) ** 2;
    if (!(Math.sqrt(residual) <= tolerance * Math.sqrt(nj2)) || !(t > 0)) return undefined;
    const act = p.activation;
    if (act.functionIds[lj] !== act.functionIds[lr]) return undefined;
    if (act.isPositivelyHomogeneous) return t;
    return Math.abs(t - 1) <= tolerance ? 1 : undefined;
  };

  const solve = (j: number, r: number, tolerance: number): Map<Value, number> | undefined => {
    const holders: Value[] = [];
    for (const m of group.members) {
      const hj = localOf(m.value, j) >= 0;
      const hr = localOf(m.value, r) >= 0;
      if (hj !== hr) return undefined;
      if (hj) holders.push(m.value);
    }
    const held = new Set(holders);
    const ratio = new Map<Value, number>();
    const agree = (a: number, b: number): boolean => Math.abs(a - b) <= 4 * tolerance * Math.max(1, Math.abs(a), Math.abs(b));
    let ok = true;
    const set = (v: Value, t: number): boolean => {
      const known = ratio.get(v);
      if (known === undefined) {
        ratio.set(v, t);
        return true;
      }
      if (!agree(known, t)) ok = false;
      return false;
    };
    for (const p of group.producers) {
      if (group.diagonalInputs.has(p) || !held.has(p.activation.output)) continue;
      const t = rowScale(p, localOf(p.activation.output, j), localOf(p.activation.output, r), 1, tolerance);
      if (t === undefined) return undefined;
      set(p.activation.output, t);
    }
    for (let round = 0, changed = true; changed && ok && round <= group.relations.length + group.producers.length; round++) {
      changed = false;
      for (const rel of group.relations) {
        if (rel.kind === 'same') {
          const values = rel.values.filter((v) => held.has(v));
          const known = values.find((v) => ratio.has(v));
          if (known === undefined) continue;
          const t = ratio.get(known)!;
          for (const v of values) changed = set(v, t) || changed;
        } else if (rel.kind === 'product') {
          if (!held.has(rel.output)) continue;
          const factors = rel.factors.filter((v) => held.has(v));
          const unknown = factors.filter((v) => !ratio.has(v));
          const product = factors.reduce((acc, v) => acc * (ratio.get(v) ?? 1), 1);
          if (unknown.length === 0) changed = set(rel.output, product) || changed;
          else if (unknown.length === 1 && ratio.has(rel.output)) changed = set(unknown[0]!, ratio.get(rel.output)! / product) || changed;
        } else if (rel.kind === 'affine') {
          if (!held.has(rel.output) || !ratio.has(rel.input)) continue;
          const lj = localOf(rel.input, j);
          const lr = localOf(rel.input, r);
          const aj = rel.scale[lj]!;
          const ar = rel.scale[lr]!;
          if (ar === 0) return undefined;
          const t = (ratio.get(rel.input)! * aj) / ar;
          const bj = rel.shift[lj]!;
          const br = rel.shift[lr]!;
          if (Math.abs(bj - t * br) > tolerance * Math.max(Math.abs(bj), Math.abs(t * br), 1e-30)) return undefined;
          changed = set(rel.output, t) || changed;
        } else if (held.has(rel.value)) {
          const known = ratio.get(rel.value);
          if (known === undefined) changed = set(rel.value, 1) || changed;
          else if (Math.abs(known - 1) > tolerance) return undefined;
        }
      }
      for (const [p, input] of group.diagonalInputs) {
        const out = p.activation.output;
        if (!held.has(out) || ratio.has(out) || !ratio.has(input)) continue;
        const t = rowScale(p, localOf(out, j), localOf(out, r), ratio.get(input)!, tolerance);
        if (t === undefined) return undefined;
        changed = set(out, t) || changed;
      }
    }
    if (!ok) return undefined;
    for (const v of holders) {
      const t = ratio.get(v);
      if (t === undefined || !(t > 0) || !Number.isFinite(t)) return undefined;
    }
    // A diagonal producer whose output scale came from elsewhere (an Add) must still agree with its rows.
    for (const [p, input] of group.diagonalInputs) {
      const out = p.activation.output;
      if (!held.has(out)) continue;
      const t = rowScale(p, localOf(out, j), localOf(out, r), ratio.get(input)!, tolerance);
      if (t === undefined || !agree(t, ratio.get(out)!)) return undefined;
    }
    return ratio;
  };
  return { anchors, anchorNorms, anchorCosine, solve, localOf };
}
