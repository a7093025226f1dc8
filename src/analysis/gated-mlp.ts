// Gated MLPs (SwiGLU, GeGLU, GLU): h = act(x W_gate + b_gate) * (x W_up + b_up) -> W_down. A
// neuron is the pair (gate row k, up row k), and the layer's output is the product h. findLayers
// sees the gate and the up projection as two layers blocked by the same gating Mul; this module
// joins them into one NeuronLayer whose activation ends at the Mul, so statistics, measures,
// plans and rewrites work on the product. Reads the IR only; runs nothing.
//
// Exactness: with g_j = g_r (gate rows and biases equal) and c_j = t c_r (up rows and biases
// proportional, any sign), h_j = act(g_r x) * t (c_r x) = t h_r on every input, so neuron j folds
// into r with down row r += t * down row j. The input-weight vector
//   u_k = [c_k ; s_k |c_k| g_k / |g_k|],  s_k = sign of c_k's largest-magnitude entry,
// makes that relation u_j = t u_r with the same t (s_j = sign(t) s_r), so the generic planners
// (planExact, planGroupMerges) and clusterers need nothing gated-specific: h is linear in c, so the
// layer is positively homogeneous and odd in u, and |u_k| = sqrt(2) |c_k| (static when c_k = 0).

import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import { axisToRows } from '../numeric/axis-slices.js';
import { blocker, uniqueBlockers, type Blocker } from './blocker.js';
import { constantNumbers, traceConsumers, type NeuronLayer } from './find-layers.js';

/** The two projections of a gated MLP and the Mul that joins them. */
export interface GatedMlp {
  /** The projection whose activation gates (its activation chain ends before the Mul). */
  gate: NeuronLayer;
  /** The linear projection the gate multiplies (identity activation). */
  up: NeuronLayer;
  /** The elementwise Mul act(gate) * up. */
  mul: Node;
  /** 'SwiGLU', 'GeGLU' or 'GLU' (from the gate's activation). */
  variant: string;
}

const GATE_BLOCKER = 'gate';

/** The gate's own problems other than the gating Mul itself. */
function otherBlockers(layer: NeuronLayer, mul: Node): Blocker[] {
  return layer.blockers.filter((b) => !(b.code === GATE_BLOCKER && b.node === mul));
}

function variantOf(activationName: string): string {
  if (/^(Silu|Swish|SiLU)/i.test(activationName) || activationName.startsWith('custom(Sigmoid,Mul')) return 'SwiGLU';
  if (/^Gelu/i.test(activationName)) return 'GeGLU';
  return 'GLU';
}

/** A short layer name: the shared scope, then the parts that differ (`/layers.0/mlp/gate_proj*up_proj`). */
function gatedName(gate: NeuronLayer, up: NeuronLayer): string {
  const [a, b] = [gate.name, up.name];
  let start = 0;
  while (start < a.length && a[start] === b[start]) start++;
  start = a.lastIndexOf('/', start - 1) + 1;
  let end = 0;
  while (end < a.length - start && end < b.length - start && a[a.length - 1 - end] === b[b.length - 1 - end]) end++;
  const suffix = a.slice(a.length - end);
  const cut = suffix.indexOf('/');
  end = cut < 0 ? 0 : end - cut;
  return `${a.slice(0, a.length - end)}*${b.slice(start, b.length - end)}`;
}

/** The layer whose activation output is `v` (at most one). */
function layerEndingAt(layers: readonly NeuronLayer[], v: Value | null | undefined): NeuronLayer | undefined {
  return v ? layers.find((l) => l.activation.output === v) : undefined;
}

/**
 * Joins each gate/up pair that feeds one elementwise Mul into a gated layer; other layers pass
 * through unchanged and in order (the gated layer takes the gate's place).
 */
export function combineGatedMlps(layers: NeuronLayer[]): NeuronLayer[] {
  const replaced = new Map<NeuronLayer, NeuronLayer | null>();
  for (const layer of layers) {
    if (replaced.has(layer) || layer.subgraphOf) continue;
    const gated = matchGated(layers, layer);
    if (!gated) continue;
    replaced.set(gated.gated!.gate, gated);
    replaced.set(gated.gated!.up, null);
  }
  if (replaced.size === 0) return layers;
  return layers.flatMap((l) => {
    const r = replaced.get(l);
    return r === undefined ? [l] : r === null ? [] : [r];
  });
}

function matchGated(layers: readonly NeuronLayer[], candidate: NeuronLayer): NeuronLayer | undefined {
  const h = candidate.activation.output;
  const uses = h.uses();
  if (uses.length !== 1 || h.isGraphOutput) return undefined;
  const mul = uses[0]!.node;
  if (!mul.is('Mul') || mul.inputs.length !== 2 || mul.inputs[0] === mul.inputs[1]) return undefined;
  const a = layerEndingAt(layers, mul.inputs[0]);
  const b = layerEndingAt(layers, mul.inputs[1]);
  if (!a || !b || a === b || a.width !== b.width || a.neuronAxisFromEnd !== 1 || b.neuronAxisFromEnd !== 1) return undefined;
  if (b.activation.nodes.length > 0 && a.activation.nodes.length > 0) return undefined;
  // The up projection is the linear one; when both are linear (a bilinear GLU) the first input gates.
  const [gate, up] = b.activation.nodes.length > 0 ? [b, a] : [a, b];
  // The Mul must be the only reader of both factors: otherwise the pair is not one neuron.
  if ([gate, up].some((l) => l.activation.output.uses().length !== 1 || l.activation.output.isGraphOutput)) return undefined;
  // Both factors must have the same shape (no broadcasting): the same data input does it.
  if (gate.producer.inputs[0] !== up.producer.inputs[0]) return undefined;
  if (up.activation.perNeuron.length > 0) return undefined;
  const product = mul.outputs[0]!;
  const activationNodes = new Set<Node>([...gate.activation.nodes, mul]);
  const traced = traceConsumers(product, activationNodes, gate.width, false);
  const blockers = uniqueBlockers([...otherBlockers(gate, mul), ...otherBlockers(up, mul), ...traced.problems]);
  if (traced.consumers.length === 0 && blockers.length === 0) blockers.push(blocker('no-consumer', 'its output has no linear consumer'));
  const variant = variantOf(gate.activation.name);
  const gated: GatedMlp = { gate, up, mul, variant };
  return {
    name: gatedName(gate, up),
    op: variant,
    producer: gate.producer,
    width: gate.width,
    weight: gate.weight,
    outAxis: gate.outAxis,
    neuronAxisFromEnd: 1,
    preActivation: up.activation.output,
    activation: {
      ...gate.activation,
      name: `${gate.activation.name} * up`,
      nodes: [...gate.activation.nodes, mul],
      output: product,
      // h = act(g x) * (c x) is linear in the up factor, which u_k scales with (see above).
      isPositivelyHomogeneous: true,
      isOdd: true,
      blockers: [],
      evaluate: (_neuron, xs) => Float64Array.from(xs),
    },
    consumers: traced.consumers,
    mergeable: blockers.length === 0,
    blockers,
    allowsNegativeScale: traced.allowsNegativeScale,
    keepsConstants: traced.keepsConstants,
    gated,
  };
}

/** Rows of one projection (with its bias) as a width x dim matrix, scaled as the op applies them. */
function projectionRows(layer: NeuronLayer): { rows: Float64Array; dim: number } {
  const w = constantNumbers(layer.weight.value)!;
  const wRows = axisToRows(w, layer.weight.dims, layer.outAxis);
  const fanIn = wRows.length / layer.width;
  const b = layer.bias ? constantNumbers(layer.bias.value)! : undefined;
  const dim = fanIn + 1;
  const rows = new Float64Array(layer.width * dim);
  for (let k = 0; k < layer.width; k++) {
    for (let i = 0; i < fanIn; i++) rows[k * dim + i] = layer.weight.scale * wRows[k * fanIn + i]!;
    rows[k * dim + fanIn] = b ? layer.bias!.scale * (layer.bias!.perNeuron ? b[k]! : b[0]!) : 0;
  }
  return { rows, dim };
}

/** u_k = [c_k ; s_k |c_k| g_k / |g_k|] for each neuron (module comment): a width x dim matrix. */
export function gatedInputWeightVectors(gated: GatedMlp): { rows: Float64Array; dim: number } {
  const g = projectionRows(gated.gate);
  const c = projectionRows(gated.up);
  const width = gated.gate.width;
  const dim = c.dim + g.dim;
  const rows = new Float64Array(width * dim);
  for (let k = 0; k < width; k++) {
    let cNorm = 0;
    let largest = 0;
    for (let i = 0; i < c.dim; i++) {
      const x = c.rows[k * c.dim + i]!;
      cNorm += x * x;
      if (Math.abs(x) > Math.abs(largest)) largest = x;
      rows[k * dim + i] = x;
    }
    let gNorm = 0;
    for (let i = 0; i < g.dim; i++) gNorm += g.rows[k * g.dim + i]! ** 2;
    if (cNorm === 0 || gNorm === 0) continue;
    const factor = (Math.sign(largest) * Math.sqrt(cNorm)) / Math.sqrt(gNorm);
    for (let i = 0; i < g.dim; i++) rows[k * dim + c.dim + i] = factor * g.rows[k * g.dim + i]!;
  }
  return { rows, dim };
}

/** One projection's rows read in place from its float32 weights: row k, entry i (the bias last). */
function projectionReader(layer: NeuronLayer): { dim: number; entry: (k: number, i: number) => number } {
  const w = layer.weight.value.constantTensor()!.toFloat32();
  const dims = layer.weight.dims;
  const axis = layer.outAxis;
  const count = layer.width;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const fanIn = w.length / count;
  const b = layer.bias ? constantNumbers(layer.bias.value)! : undefined;
  const scale = layer.weight.scale;
  const biasOf = (k: number): number => (b ? layer.bias!.scale * (layer.bias!.perNeuron ? b[k]! : b[0]!) : 0);
  return {
    dim: fanIn + 1,
    entry: (k, i) => (i === fanIn ? biasOf(k) : scale * w[(Math.floor(i / inner) * count + k) * inner + (i % inner)]!),
  };
}

/**
 * u_k / |u_k| in float32 and |u_k| in float64 (as unitInputWeights gives for other layers),
 * read from the float32 weights without the float64 width x dim matrix of gatedInputWeightVectors:
 * for a wide SwiGLU that matrix is the largest allocation of the measurement.
 */
export function gatedUnitInputWeights(gated: GatedMlp): { unit: Float32Array; norms: Float64Array; dim: number } {
  const g = projectionReader(gated.gate);
  const c = projectionReader(gated.up);
  const width = gated.gate.width;
  const dim = c.dim + g.dim;
  const unit = new Float32Array(width * dim);
  const norms = new Float64Array(width);
  for (let k = 0; k < width; k++) {
    let cNorm = 0;
    let largest = 0;
    for (let i = 0; i < c.dim; i++) {
      const x = c.entry(k, i);
      cNorm += x * x;
      if (Math.abs(x) > Math.abs(largest)) largest = x;
    }
    let gNorm = 0;
    for (let i = 0; i < g.dim; i++) gNorm += g.entry(k, i) ** 2;
    if (cNorm === 0) continue;
    const factor = gNorm === 0 ? 0 : (Math.sign(largest) * Math.sqrt(cNorm)) / Math.sqrt(gNorm);
    const norm = Math.sqrt(cNorm + factor * factor * gNorm);
    norms[k] = norm;
    for (let i = 0; i < c.dim; i++) unit[k * dim + i] = c.entry(k, i) / norm;
    for (let i = 0; i < g.dim; i++) unit[k * dim + c.dim + i] = (factor * g.entry(k, i)) / norm;
  }
  return { unit, norms, dim };
}
