// A Value is an edge of the graph: produced by one node (or a graph input or initializer) and
// read by any number of node inputs. It knows both ends, so edits never need index renumbering.

import type { Graph } from './graph.js';
import type { Node } from './node.js';
import type { Tensor } from './tensor.js';

/** One dimension of a tensor shape: a number, a symbolic name, or unknown. */
export interface Dim {
  value?: number;
  param?: string;
  denotation?: string;
}

/** A value's type as declared in the file: a tensor type, or any other kind kept as its encoding. */
export type ValueType =
  | { kind: 'tensor'; elemType: number; shape?: Dim[]; denotation?: string }
  | { kind: 'other'; encoded: Uint8Array };

/** A reader of a value: a node and which of its inputs. */
export interface Use {
  node: Node;
  inputIndex: number;
}

export class Value {
  name: string;
  type: ValueType | undefined;
  docString = '';
  /** The node that writes this value; null for graph inputs and initializers. */
  producer: Node | null = null;
  /** The graph that owns the value (its scope). */
  readonly graph: Graph;
  /** Set when the value is an initializer of its graph. */
  initializer: Tensor | undefined;
  private readonly usesList: Use[] = [];

  constructor(graph: Graph, name: string, type?: ValueType) {
    this.graph = graph;
    this.name = name;
    this.type = type;
  }

  /** The node inputs that read this value; a copy, so a caller may edit the graph while looping. */
  uses(): Use[] {
    return [...this.usesList];
  }

  get useCount(): number {
    return this.usesList.length;
  }

  /** @internal edges are edited through Node and Graph methods, which keep both ends in step. */
  addUse(use: Use): void {
    this.usesList.push(use);
  }

  /** @internal */
  removeUse(node: Node, inputIndex: number): void {
    const at = this.usesList.findIndex((u) => u.node === node && u.inputIndex === inputIndex);
    if (at >= 0) this.usesList.splice(at, 1);
  }

  /** True when the value is listed among its graph's outputs. */
  get isGraphOutput(): boolean {
    return this.graph.outputs.includes(this);
  }

  /** True when the value is listed among its graph's inputs. */
  get isGraphInput(): boolean {
    return this.graph.inputs.includes(this);
  }

  /**
   * The constant this value always holds: an initializer, or the output of a Constant node. Both
   * forms read the same way here. An initializer that is also a graph input counts too: before IR
   * version 4 every initializer had to be listed as an input (old PyTorch exports do), and later
   * it is a default that inference callers practically never override.
   */
  constantTensor(): Tensor | undefined {
    if (this.initializer) return this.initializer;
    const node = this.producer;
    if (node && node.opType === 'Constant' && (node.domain === '' || node.domain === 'ai.onnx')) {
      return constantNodeTensor(node);
    }
    return undefined;
  }

  /** The declared element type, if known. */
  get elemType(): number | undefined {
    if (this.type?.kind === 'tensor') return this.type.elemType;
    return this.constantTensor()?.dataType;
  }

  /** The declared shape, if known. */
  get shape(): Dim[] | undefined {
    if (this.type?.kind === 'tensor') return this.type.shape;
    const t = this.constantTensor();
    return t ? t.dims.map((value) => ({ value })) : undefined;
  }
}

// Registered by node.ts; kept as a hook so value.ts needs no runtime import of Node.
let constantNodeTensor: (node: Node) => Tensor | undefined = () => undefined;
/** @internal */
export function registerConstantReader(reader: (node: Node) => Tensor | undefined): void {
  constantNodeTensor = reader;
}
