// Evaluates a chain of elementwise ONNX nodes as a scalar function per neuron, so the analysis can
// test the activation's algebra (positive homogeneity, oddness) on numbers instead of guessing
// from op names: an exporter may spell GELU or HardSwish in a dozen ways.

import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';

/** An elementwise op applied to already evaluated inputs (each a column of per-point values). */
type ScalarOp = (node: Node, inputs: (Float64Array | undefined)[], n: number) => Float64Array;

const map1 = (x: Float64Array | undefined, f: (v: number) => number): Float64Array => Float64Array.from(x!, f);
const map2 = (a: Float64Array | undefined, b: Float64Array | undefined, f: (p: number, q: number) => number): Float64Array => {
  const out = new Float64Array(a!.length);
  for (let i = 0; i < out.length; i++) out[i] = f(a![i]!, b![i]!);
  return out;
};

/** Abramowitz–Stegun 7.1.26 is too coarse for exactness tests; this series/continued-fraction pair is ~1e-15. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series: converges fast for small |x|.
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let k = 1; k < 80; k++) {
      term *= -x2 / k;
      const add = term / (2 * k + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  if (ax > 6) return Math.sign(x);
  // Continued fraction for erfc (Lentz), accurate for larger |x|.
  const z = ax;
  let f = z;
  let c = z;
  let d = 0;
  for (let k = 1; k < 200; k++) {
    const a = k / 2;
    d = z + a * d;
    d = d === 0 ? 1e-300 : 1 / d;
    c = z + a / c;
    if (c === 0) c = 1e-300;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-z * z) / (f * Math.sqrt(Math.PI));
  return Math.sign(x) * (1 - erfc);
}

const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

const ops: Record<string, ScalarOp> = {
  Identity: (_n, [x]) => x!,
  Dropout: (_n, [x]) => x!,
  Relu: (_n, [x]) => map1(x, (v) => (v > 0 ? v : 0)),
  LeakyRelu: (n, [x]) => { const a = n.getFloat('alpha', 0.01); return map1(x, (v) => (v >= 0 ? v : a * v)); },
  PRelu: (_n, [x, s]) => map2(x, s, (v, a) => (v >= 0 ? v : a * v)),
  ThresholdedRelu: (n, [x]) => { const a = n.getFloat('alpha', 1); return map1(x, (v) => (v > a ? v : 0)); },
  Tanh: (_n, [x]) => map1(x, Math.tanh),
  Sigmoid: (_n, [x]) => map1(x, (v) => 1 / (1 + Math.exp(-v))),
  Elu: (n, [x]) => { const a = n.getFloat('alpha', 1); return map1(x, (v) => (v >= 0 ? v : a * (Math.exp(v) - 1))); },
  Celu: (n, [x]) => { const a = n.getFloat('alpha', 1); return map1(x, (v) => Math.max(0, v) + Math.min(0, a * (Math.exp(v / a) - 1))); },
  Selu: (n, [x]) => {
    const a = n.getFloat('alpha', 1.67326319217681884765625);
    const g = n.getFloat('gamma', 1.05070102214813232421875);
    return map1(x, (v) => (v > 0 ? g * v : g * a * (Math.exp(v) - 1)));
  },
  Softplus: (_n, [x]) => map1(x, (v) => (v > 30 ? v : Math.log1p(Math.exp(v)))),
  Softsign: (_n, [x]) => map1(x, (v) => v / (1 + Math.abs(v))),
  Mish: (_n, [x]) => map1(x, (v) => v * Math.tanh(v > 30 ? v : Math.log1p(Math.exp(v)))),
  Gelu: (n, [x]) => (n.getString('approximate', 'none') === 'tanh' ? map1(x, geluTanh) : map1(x, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)))),
  HardSigmoid: (n, [x]) => { const a = n.getFloat('alpha', 0.2); const b = n.getFloat('beta', 0.5); return map1(x, (v) => Math.max(0, Math.min(1, a * v + b))); },
  HardSwish: (_n, [x]) => map1(x, (v) => v * Math.max(0, Math.min(1, v / 6 + 0.5))),
  Clip: (n, [x, lo, hi]) => {
    // Opset < 11 gives the bounds as attributes, later opsets as optional inputs.
    const minA = n.getFloat('min', -Infinity);
    const maxA = n.getFloat('max', Infinity);
    const out = new Float64Array(x!.length);
    for (let i = 0; i < out.length; i++) out[i] = Math.min(hi ? hi[i]! : maxA, Math.max(lo ? lo[i]! : minA, x![i]!));
    return out;
  },
  Erf: (_n, [x]) => map1(x, erf),
  Exp: (_n, [x]) => map1(x, Math.exp),
  Log: (_n, [x]) => map1(x, Math.log),
  Sqrt: (_n, [x]) => map1(x, Math.sqrt),
  Abs: (_n, [x]) => map1(x, Math.abs),
  Neg: (_n, [x]) => map1(x, (v) => -v),
  Reciprocal: (_n, [x]) => map1(x, (v) => 1 / v),
  Sin: (_n, [x]) => map1(x, Math.sin),
  Cos: (_n, [x]) => map1(x, Math.cos),
  Add: (_n, [a, b]) => map2(a, b, (p, q) => p + q),
  Sub: (_n, [a, b]) => map2(a, b, (p, q) => p - q),
  Mul: (_n, [a, b]) => map2(a, b, (p, q) => p * q),
  Div: (_n, [a, b]) => map2(a, b, (p, q) => p / q),
  Pow: (_n, [a, b]) => map2(a, b, (p, q) => p ** q),
  Max: (_n, inputs) => inputs.reduce((acc, x) => map2(acc, x, Math.max))!,
  Min: (_n, inputs) => inputs.reduce((acc, x) => map2(acc, x, Math.min))!,
};

/** Ops the activation tracer may treat as elementwise functions of one neuron's pre-activation. */
export function isElementwiseOp(node: Node): boolean {
  if (node.domain !== '' && node.domain !== 'ai.onnx') return false;
  if (node.is('Dropout')) return node.outputs.slice(1).every((o) => o.useCount === 0 && !o.isGraphOutput);
  return node.opType in ops;
}

/** Per-neuron constant inputs of the chain: value k of neuron k (or one value for all). */
export interface ConstantInput {
  value: Value;
  values: Float64Array;
}

/**
 * Evaluates the chain `nodes` (in topological order) from `input` to `output` for one neuron at
 * the points `xs`. Constants are picked per neuron: element `neuron` if the constant has one entry
 * per neuron, element 0 if it has one entry.
 */
export function evaluateChain(
  nodes: readonly Node[],
  input: Value,
  output: Value,
  constants: ReadonlyMap<Value, Float64Array>,
  neuron: number,
  xs: Float64Array,
): Float64Array {
  const n = xs.length;
  const env = new Map<Value, Float64Array>([[input, xs]]);
  const read = (v: Value | null): Float64Array | undefined => {
    if (!v) return undefined;
    const known = env.get(v);
    if (known) return known;
    const c = constants.get(v);
    if (!c) throw new Error(`value "${v.name}" is neither computed nor constant`);
    const scalar = c.length === 1 ? c[0]! : c[neuron]!;
    return new Float64Array(n).fill(scalar);
  };
  for (const node of nodes) {
    const op = ops[node.opType];
    if (!op) throw new Error(`op ${node.opType} is not elementwise`);
    env.set(node.outputs[0]!, op(node, node.inputs.map(read), n));
  }
  const out = env.get(output);
  if (!out) throw new Error(`chain does not compute "${output.name}"`);
  return out;
}

/** Reference activations, to name what a chain computes whatever ops spell it. */
export const namedActivations: { name: string; f: (x: number) => number }[] = [
  { name: 'Identity', f: (x) => x },
  { name: 'Relu', f: (x) => Math.max(0, x) },
  { name: 'Tanh', f: Math.tanh },
  { name: 'Sigmoid', f: (x) => 1 / (1 + Math.exp(-x)) },
  { name: 'Gelu', f: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)) },
  { name: 'Gelu(tanh)', f: geluTanh },
  { name: 'Silu', f: (x) => x / (1 + Math.exp(-x)) },
  { name: 'HardSwish', f: (x) => x * Math.max(0, Math.min(1, x / 6 + 0.5)) },
  { name: 'HardSigmoid', f: (x) => Math.max(0, Math.min(1, 0.2 * x + 0.5)) },
  { name: 'Relu6', f: (x) => Math.min(6, Math.max(0, x)) },
  { name: 'Softplus', f: (x) => (x > 30 ? x : Math.log1p(Math.exp(x))) },
  { name: 'Elu', f: (x) => (x >= 0 ? x : Math.exp(x) - 1) },
];
