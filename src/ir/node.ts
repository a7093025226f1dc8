// A Node is one operator application. Its inputs and outputs are Values; attributes may hold
// tensors and subgraphs (If/Loop/Scan bodies), which stay attached so analysis can see them.

import { DataType } from './data-type.js';
import type { Graph } from './graph.js';
import { Tensor } from './tensor.js';
import { registerConstantReader, type Value } from './value.js';

/** An attribute value, tagged with its ONNX attribute type; kinds the IR does not model stay encoded. */
export type AttributeValue =
  | { type: 'float'; value: number }
  | { type: 'int'; value: bigint }
  | { type: 'string'; value: Uint8Array }
  | { type: 'tensor'; value: Tensor }
  | { type: 'graph'; value: Graph }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: bigint[] }
  | { type: 'strings'; value: Uint8Array[] }
  | { type: 'tensors'; value: Tensor[] }
  | { type: 'graphs'; value: Graph[] }
  | { type: 'opaque'; encoded: Uint8Array };

export type Attribute = AttributeValue & { name: string; docString?: string; refAttrName?: string };

export class Node {
  opType: string;
  domain: string;
  name: string;
  docString = '';
  readonly graph: Graph;
  readonly attributes = new Map<string, Attribute>();
  private readonly inputList: (Value | null)[] = [];
  private readonly outputList: Value[] = [];

  /** @internal nodes are made by Graph.addNode or the codec. */
  constructor(graph: Graph, opType: string, domain = '', name = '') {
    this.graph = graph;
    this.opType = opType;
    this.domain = domain;
    this.name = name;
  }

  /** Inputs in order; null marks an omitted optional input (an empty name in the file). */
  get inputs(): readonly (Value | null)[] {
    return this.inputList;
  }

  get outputs(): readonly Value[] {
    return this.outputList;
  }

  /** Point input `index` at `value`, updating the uses of the old and new values. */
  setInput(index: number, value: Value | null): void {
    while (this.inputList.length <= index) this.inputList.push(null);
    const old = this.inputList[index];
    if (old === value) return;
    if (old) old.removeUse(this, index);
    this.inputList[index] = value;
    if (value) value.addUse({ node: this, inputIndex: index });
  }

  appendInput(value: Value | null): void {
    this.setInput(this.inputList.length, value);
  }

  /** @internal the graph attaches outputs when it creates their values. */
  attachOutput(value: Value): void {
    this.outputList.push(value);
    value.producer = this;
  }

  /** @internal detaches every input edge; used when the graph removes the node. */
  detachInputs(): void {
    this.inputList.forEach((value, index) => value?.removeUse(this, index));
    this.inputList.length = 0;
  }

  /** A label for messages: the node name, or opType and first output when it has none. */
  get label(): string {
    return this.name || `${this.opType}(${this.outputList[0]?.name ?? ''})`;
  }

  /** True for an operator of the default ONNX domain with this opType. */
  is(opType: string): boolean {
    return this.opType === opType && (this.domain === '' || this.domain === 'ai.onnx');
  }

  getInt(name: string, fallback: number): number {
    const a = this.attributes.get(name);
    return a?.type === 'int' ? Number(a.value) : fallback;
  }

  getFloat(name: string, fallback: number): number {
    const a = this.attributes.get(name);
    return a?.type === 'float' ? a.value : a?.type === 'int' ? Number(a.value) : fallback;
  }

  getInts(name: string): number[] | undefined {
    const a = this.attributes.get(name);
    return a?.type === 'ints' ? a.value.map(Number) : undefined;
  }

  getString(name: string, fallback: string): string {
    const a = this.attributes.get(name);
    return a?.type === 'string' ? new TextDecoder().decode(a.value) : fallback;
  }

  setAttribute(attribute: Attribute): void {
    this.attributes.set(attribute.name, attribute);
  }

  /** Subgraphs held in attributes (If branches, Loop and Scan bodies). */
  subgraphs(): Graph[] {
    const graphs: Graph[] = [];
    for (const a of this.attributes.values()) {
      if (a.type === 'graph') graphs.push(a.value);
      else if (a.type === 'graphs') graphs.push(...a.value);
    }
    return graphs;
  }
}

/** The tensor a Constant node emits, from whichever of its attribute forms the file used. */
export function readConstantNode(node: Node): Tensor | undefined {
  for (const a of node.attributes.values()) {
    switch (a.name) {
      case 'value':
        return a.type === 'tensor' ? a.value : undefined;
      case 'value_float':
        return a.type === 'float' ? Tensor.fromNumbers(DataType.FLOAT, [], [a.value]) : undefined;
      case 'value_floats':
        return a.type === 'floats' ? Tensor.fromNumbers(DataType.FLOAT, [a.value.length], a.value) : undefined;
      case 'value_int':
        return a.type === 'int' ? Tensor.fromInt64([], [a.value]) : undefined;
      case 'value_ints':
        return a.type === 'ints' ? Tensor.fromInt64([a.value.length], a.value) : undefined;
      default:
        break;
    }
  }
  return undefined;
}

registerConstantReader(readConstantNode);
