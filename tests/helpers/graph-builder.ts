// Builds small in-memory models for tests in a few lines. Attributes are written with explicit
// helpers (int(1), float(0.5), ints([1, 2])) so a whole-number float never turns into an int.

import { Graph } from '../../src/ir/graph.js';
import { Model } from '../../src/ir/model.js';
import type { AttributeValue } from '../../src/ir/node.js';
import type { Tensor } from '../../src/ir/tensor.js';
import type { Dim, Value } from '../../src/ir/value.js';

/** An attribute value without its name: what the helpers below make. */
export type AttributeSpec = Exclude<AttributeValue, { type: 'opaque' }>;

const utf8 = new TextEncoder();

export const int = (value: number | bigint): AttributeSpec => ({ type: 'int', value: BigInt(value) });
export const float = (value: number): AttributeSpec => ({ type: 'float', value });
export const str = (value: string): AttributeSpec => ({ type: 'string', value: utf8.encode(value) });
export const ints = (values: readonly (number | bigint)[]): AttributeSpec => ({ type: 'ints', value: values.map((v) => BigInt(v)) });
export const floats = (values: readonly number[]): AttributeSpec => ({ type: 'floats', value: [...values] });
export const strs = (values: readonly string[]): AttributeSpec => ({ type: 'strings', value: values.map((s) => utf8.encode(s)) });
export const tensor = (value: Tensor): AttributeSpec => ({ type: 'tensor', value });
export const tensors = (values: readonly Tensor[]): AttributeSpec => ({ type: 'tensors', value: [...values] });
export const graph = (value: Graph | GraphBuilder): AttributeSpec => ({ type: 'graph', value: value instanceof GraphBuilder ? value.graph : value });

/** A shape as the builder takes it: numbers are fixed dims, strings symbolic ones. */
export type ShapeSpec = readonly (number | string)[];

function toDims(shape: ShapeSpec): Dim[] {
  return shape.map((d) => (typeof d === 'number' ? { value: d } : { param: d }));
}

export interface NodeOptions {
  /** Output names, or how many outputs to name automatically (default: one). */
  outputs?: string[] | number;
  domain?: string;
  name?: string;
}

export interface BuildOptions {
  irVersion?: number;
  /** Opsets of other domains, e.g. { 'com.microsoft': 1 }. */
  otherOpsets?: Record<string, number>;
}

export class GraphBuilder {
  readonly graph: Graph;

  /** A builder for a top-level graph, or for a subgraph (If/Loop body) of `parent`. */
  constructor(name = 'g', parent?: Graph | GraphBuilder) {
    this.graph = new Graph(name, parent instanceof GraphBuilder ? parent.graph : parent);
  }

  /** Declares a graph input of the given element type and shape. */
  input(name: string, elemType: number, shape: ShapeSpec): Value {
    const value = this.graph.createValue(name, { kind: 'tensor', elemType, shape: toDims(shape) });
    this.graph.inputs.push(value);
    return value;
  }

  initializer(name: string, value: Tensor): Value {
    return this.graph.addInitializer(name, value);
  }

  /** A Constant node emitting `value` (the `value` attribute form); returns its output. */
  constant(name: string, value: Tensor): Value {
    const [out] = this.node('Constant', [], { value: tensor(value) }, { outputs: [name] });
    return out!;
  }

  /** Appends a node and returns its outputs. */
  node(opType: string, inputs: (Value | null)[], attributes: Record<string, AttributeSpec> = {}, options: NodeOptions = {}): Value[] {
    const node = this.graph.addNode({
      opType,
      inputs,
      outputs: options.outputs ?? [`${options.name ?? opType.toLowerCase()}_out`],
      attributes: Object.entries(attributes).map(([name, a]) => ({ ...a, name })),
      ...(options.domain !== undefined ? { domain: options.domain } : {}),
      ...(options.name !== undefined ? { name: options.name } : {}),
    });
    return [...node.outputs];
  }

  /** Lists `value` among the graph outputs, declaring its type when given. */
  output(value: Value, elemType?: number, shape?: ShapeSpec): Value {
    if (elemType !== undefined) value.type = { kind: 'tensor', elemType, ...(shape ? { shape: toDims(shape) } : {}) };
    this.graph.outputs.push(value);
    return value;
  }

  /** The model around this graph, importing the default ONNX domain at `opset`. */
  build(opset = 13, options: BuildOptions = {}): Model {
    const model = new Model(this.graph);
    if (options.irVersion !== undefined) model.irVersion = options.irVersion;
    model.opsetImports = [{ domain: '', version: opset }, ...Object.entries(options.otherOpsets ?? {}).map(([domain, version]) => ({ domain, version }))];
    model.producerName = 'graph-builder';
    return model;
  }
}
