// Finds the elementwise activation that follows a layer's pre-activation and works out its algebra
// numerically: which merges are exact depends on it (condensation.md, "Why merging is exact").

import { blocker, type Blocker } from './blocker.js';
import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import { evaluateChain, isElementwiseOp, namedActivations } from './elementwise-function.js';

export interface Activation {
  /** What the chain computes: an op name, a recognised decomposition, or "custom(...)". */
  name: string;
  /** The chain's nodes in topological order (empty for no activation). */
  nodes: Node[];
  /** The pre-activation z the chain reads. */
  input: Value;
  /** The activation output h that the rest of the graph reads. */
  output: Value;
  /** Constants the chain reads, as numbers; those with one entry per neuron are in perNeuron. */
  constants: Map<Value, Float64Array>;
  perNeuron: Value[];
  /** s(t z) = t s(z) for t > 0 (ReLU, LeakyReLU, identity): positive multiples merge exactly. */
  isPositivelyHomogeneous: boolean;
  /** s(-z) = -s(z) (tanh, identity): negated neurons merge exactly. */
  isOdd: boolean;
  /** Per neuron, an id of its function: neurons with the same id compute the same s. */
  functionIds: Int32Array;
  /** Problems that keep the layer from being merged (another reader of an inner value, ...). */
  blockers: Blocker[];
  /** s evaluated for neuron k at the points xs. */
  evaluate(neuron: number, xs: Float64Array): Float64Array;
}

const grid = (() => {
  const xs: number[] = [];
  for (let i = -80; i <= 80; i++) xs.push(i / 10);
  xs.push(-50, -17.3, 13.1, 50);
  return Float64Array.from(xs);
})();

/**
 * Traces the elementwise chain from z. `width` neurons lie on the axis `neuronAxisFromEnd` counted
 * from the last (1 = last axis, as in dense layers; 3 = channels of NCHW).
 */
export function traceActivation(z: Value, width: number, neuronAxisFromEnd: number, readConstant: (v: Value) => Float64Array | undefined, constantDims: (v: Value) => readonly number[] | undefined): Activation {
  const graph = z.graph;
  const region = new Set<Value>([z]);
  const nodes: Node[] = [];
  const constants = new Map<Value, Float64Array>();
  const perNeuron: Value[] = [];
  const start = z.producer ? graph.nodes.indexOf(z.producer) + 1 : 0;

  const acceptConstant = (v: Value): boolean => {
    if (constants.has(v)) return true;
    const values = readConstant(v);
    const dims = constantDims(v);
    if (!values || !dims) return false;
    if (values.length === 1) {
      constants.set(v, values);
      return true;
    }
    if (values.length !== width) return false;
    const axis = dims.length - neuronAxisFromEnd;
    if (axis < 0 || dims[axis] !== width) return false;
    constants.set(v, values);
    perNeuron.push(v);
    return true;
  };

  for (let i = start; i < graph.nodes.length; i++) {
    const node = graph.nodes[i]!;
    if (!node.inputs.some((v) => v && region.has(v))) continue;
    if (!isElementwiseOp(node)) continue;
    if (!node.inputs.every((v) => !v || region.has(v) || acceptConstant(v))) continue;
    nodes.push(node);
    region.add(node.outputs[0]!);
  }

  // The exits are the region values read from outside it; a clean activation has exactly one.
  const inChain = new Set(nodes);
  const exits = [...region].filter((v) => v.isGraphOutput || v.uses().some((u) => !inChain.has(u.node)));
  const blockers: Blocker[] = [];
  let output = z;
  if (exits.length === 0) {
    blockers.push(blocker('activation-exit', 'its output is never read'));
    output = nodes.length ? nodes[nodes.length - 1]!.outputs[0]! : z;
  } else {
    output = exits[exits.length - 1]!;
    for (const extra of exits.slice(0, -1)) {
      const reader = extra.uses().find((u) => !inChain.has(u.node));
      const message = extra === z
        ? `its pre-activation "${z.name}" is also read by "${reader?.node.label ?? 'a graph output'}"`
        : `the activation's inner value "${extra.name}" is also read by "${reader?.node.label ?? 'a graph output'}"`;
      blockers.push(blocker('activation-exit', message, reader?.node));
    }
  }
  // Nodes after the chosen output do not belong to the activation.
  const used = new Set<Node>();
  const mark = (v: Value): void => {
    const p = v.producer;
    if (!p || !inChain.has(p) || used.has(p)) return;
    used.add(p);
    p.inputs.forEach((x) => x && mark(x));
  };
  mark(output);
  const chain = nodes.filter((n) => used.has(n));

  const evaluate = (neuron: number, xs: Float64Array): Float64Array => (chain.length === 0 ? xs : evaluateChain(chain, z, output, constants, neuron, xs));
  const chainPerNeuron = perNeuron.filter((v) => chain.some((n) => n.inputs.includes(v)));

  const functionIds = new Int32Array(width);
  const signatures: Float64Array[] = [];
  let homogeneous = true;
  let odd = true;
  const neuronsToCheck = chainPerNeuron.length > 0 ? width : 1;
  for (let k = 0; k < neuronsToCheck; k++) {
    const values = evaluate(k, grid);
    let id = signatures.findIndex((s) => s.every((x, i) => Object.is(x, values[i]) || Math.abs(x - values[i]!) <= 1e-12 * (1 + Math.abs(x))));
    if (id < 0) {
      id = signatures.length;
      signatures.push(values);
      homogeneous &&= checkHomogeneous((xs) => evaluate(k, xs));
      odd &&= checkOdd((xs) => evaluate(k, xs));
    }
    functionIds[k] = id;
  }
  return {
    name: nameActivation(chain, signatures.length === 1 ? signatures[0]! : undefined),
    nodes: chain,
    input: z,
    output,
    constants,
    perNeuron: chainPerNeuron,
    isPositivelyHomogeneous: homogeneous,
    isOdd: odd,
    functionIds,
    blockers,
    evaluate,
  };
}

function close(a: number, b: number): boolean {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
  return Math.abs(a - b) <= 1e-9 * (1 + Math.abs(a) + Math.abs(b));
}

function checkHomogeneous(f: (xs: Float64Array) => Float64Array): boolean {
  const fx = f(grid);
  for (const t of [0.37, 2.3]) {
    const ftx = f(grid.map((x) => t * x));
    if (!ftx.every((v, i) => close(v, t * fx[i]!))) return false;
  }
  return true;
}

function checkOdd(f: (xs: Float64Array) => Float64Array): boolean {
  const fx = f(grid);
  const fnx = f(grid.map((x) => -x));
  return fnx.every((v, i) => close(v, -fx[i]!));
}

function nameActivation(chain: Node[], values: Float64Array | undefined): string {
  if (chain.length === 0) return 'Identity';
  if (chain.length === 1) {
    const n = chain[0]!;
    if (n.is('LeakyRelu')) return `LeakyRelu(${+n.getFloat('alpha', 0.01).toPrecision(4)})`;
    return n.opType;
  }
  if (values) {
    for (const ref of namedActivations) {
      if (values.every((v, i) => Math.abs(v - ref.f(grid[i]!)) <= 1e-5 * (1 + Math.abs(v)))) return `${ref.name} (decomposed)`;
    }
  }
  const ops = chain.map((n) => n.opType).filter((op) => op !== 'Identity' && op !== 'Dropout');
  return ops.length === 1 ? ops[0]! : `custom(${ops.join(',')})`;
}
