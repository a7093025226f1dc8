// A Graph owns its nodes (in order), its inputs, outputs and initializers, and its subgraphs'
// parent link for outer-scope names. Edits go through its methods, which keep uses in step.

import { Node, type Attribute } from './node.js';
import { Tensor } from './tensor.js';
import { Value, type ValueType } from './value.js';

export interface NodeSpec {
  opType: string;
  domain?: string;
  name?: string;
  inputs: (Value | null)[];
  /** Names for the outputs (made unique); or a count of outputs to name automatically. */
  outputs: string[] | number;
  attributes?: Attribute[];
  /** Place the new node right after this one (default: at the end; topologicalSort fixes order). */
  after?: Node;
}

export class Graph {
  name: string;
  docString = '';
  /** The graph this one is a subgraph of (If/Loop/Scan bodies), for outer-scope values. */
  readonly parent: Graph | undefined;
  inputs: Value[] = [];
  outputs: Value[] = [];
  /** Initializer values in file order. */
  initializers: Value[] = [];
  /** Values that carry a value_info entry in the file, in file order. */
  valueInfos: Value[] = [];
  /** Parts of GraphProto the IR does not model, kept encoded so they round-trip. */
  opaque: { sparseInitializers: Uint8Array[]; quantizationAnnotations: Uint8Array[] } = {
    sparseInitializers: [],
    quantizationAnnotations: [],
  };
  private nodeList: Node[] = [];
  private usedNames: Set<string> | undefined;

  constructor(name = '', parent?: Graph) {
    this.name = name;
    this.parent = parent;
  }

  get nodes(): readonly Node[] {
    return this.nodeList;
  }

  get root(): Graph {
    let g: Graph = this;
    while (g.parent) g = g.parent;
    return g;
  }

  /** A name not yet used by any value or node in the whole model, built from `base`. */
  uniqueName(base: string): string {
    const names = this.root.nameSet();
    let name = base;
    for (let i = 1; names.has(name); i++) name = `${base}_${i}`;
    names.add(name);
    return name;
  }

  private nameSet(): Set<string> {
    if (!this.usedNames) {
      const names = new Set<string>();
      const visit = (g: Graph): void => {
        for (const v of [...g.inputs, ...g.initializers]) names.add(v.name);
        for (const n of g.nodes) {
          if (n.name) names.add(n.name);
          for (const o of n.outputs) names.add(o.name);
          n.subgraphs().forEach(visit);
        }
      };
      visit(this);
      this.usedNames = names;
    }
    return this.usedNames;
  }

  /** A new value owned by this graph, with no producer yet. */
  createValue(name: string, type?: ValueType): Value {
    return new Value(this, this.uniqueName(name), type);
  }

  /** @internal the codec builds values under the names the file gives, unchanged. */
  createValueExact(name: string, type?: ValueType): Value {
    // The name table lives on the root (uniqueName reads only that one).
    this.root.usedNames?.add(name);
    return new Value(this, name, type);
  }

  /** Adds a named initializer holding `tensor`. */
  addInitializer(name: string, tensor: Tensor): Value {
    const value = this.createValue(name, { kind: 'tensor', elemType: tensor.dataType, shape: tensor.dims.map((d) => ({ value: d })) });
    value.initializer = tensor.withName(value.name);
    this.initializers.push(value);
    return value;
  }

  /** Adds a node; its outputs are new values. */
  addNode(spec: NodeSpec): Node {
    const node = new Node(this, spec.opType, spec.domain ?? '', spec.name ? this.uniqueName(spec.name) : '');
    spec.inputs.forEach((v, i) => node.setInput(i, v));
    const names = typeof spec.outputs === 'number' ? Array.from({ length: spec.outputs }, (_, i) => `${node.name || spec.opType}_out${i}`) : spec.outputs;
    for (const n of names) node.attachOutput(this.createValue(n));
    for (const a of spec.attributes ?? []) node.setAttribute(a);
    this.insertNode(node, spec.after);
    return node;
  }

  /** @internal the codec appends decoded nodes in file order. */
  insertNode(node: Node, after?: Node): void {
    if (after) {
      const at = this.nodeList.indexOf(after);
      this.nodeList.splice(at + 1, 0, node);
    } else {
      this.nodeList.push(node);
    }
  }

  /**
   * Removes nodes whose outputs nothing else reads. All or nothing: if any output is still read
   * by a node outside the set or is a graph output, throws and leaves the graph unchanged.
   */
  removeNodes(nodes: Iterable<Node>): void {
    const doomed = new Set(nodes);
    for (const node of doomed) {
      if (node.graph !== this) throw new Error(`node "${node.label}" does not belong to graph "${this.name}"`);
      for (const out of node.outputs) {
        if (out.isGraphOutput) throw new Error(`cannot remove node "${node.label}": its output "${out.name}" is a graph output`);
        const reader = out.uses().find((u) => !doomed.has(u.node));
        if (reader) throw new Error(`cannot remove node "${node.label}": its output "${out.name}" is read by "${reader.node.label}"`);
      }
    }
    for (const node of doomed) node.detachInputs();
    this.nodeList = this.nodeList.filter((n) => !doomed.has(n));
    this.valueInfos = this.valueInfos.filter((v) => !(v.producer && doomed.has(v.producer)));
  }

  /** Makes every reader of `old` (nodes, also in subgraphs, and graph outputs) read `replacement`. */
  replaceAllUses(old: Value, replacement: Value): void {
    for (const use of old.uses()) use.node.setInput(use.inputIndex, replacement);
    old.graph.outputs = old.graph.outputs.map((v) => (v === old ? replacement : v));
  }

  /**
   * `successor` takes over `predecessor`'s name, declared type and value-info entry, so whatever
   * refers to the name (readers, graph outputs, a user's tools) sees the successor;
   * `predecessor` is renamed `predecessorName` and loses its declared type.
   */
  handOverName(predecessor: Value, successor: Value, predecessorName: string): void {
    const name = predecessor.name;
    predecessor.name = predecessorName;
    successor.name = name;
    if (predecessor.type) successor.type = predecessor.type;
    predecessor.type = undefined;
    this.valueInfos = this.valueInfos.map((v) => (v === predecessor ? successor : v));
  }

  /** Removes initializers that no node reads and that are not graph inputs or outputs. */
  removeUnusedInitializers(): boolean {
    const before = this.initializers.length;
    this.initializers = this.initializers.filter((v) => v.useCount > 0 || v.isGraphInput || v.isGraphOutput);
    return this.initializers.length !== before;
  }

  /**
   * Gives a constant value new contents, in whichever form it has (initializer or Constant node).
   * The caller must make sure no other reader expects the old contents.
   */
  setConstant(value: Value, tensor: Tensor): void {
    if (value.initializer) {
      value.initializer = tensor.withName(value.name);
    } else if (value.producer?.is('Constant')) {
      const node = value.producer;
      for (const key of [...node.attributes.keys()]) if (key.startsWith('value')) node.attributes.delete(key);
      node.setAttribute({ name: 'value', type: 'tensor', value: tensor.withName(value.name) });
    } else {
      throw new Error(`value "${value.name}" is not a constant`);
    }
    if (value.type?.kind === 'tensor') value.type = { ...value.type, shape: tensor.dims.map((d) => ({ value: d })) };
  }

  /** Every node of this graph and, depth first, of its subgraphs. */
  *walk(): Generator<Node> {
    for (const node of this.nodeList) {
      yield node;
      for (const sub of node.subgraphs()) yield* sub.walk();
    }
  }

  /**
   * Orders nodes so each comes after the producers of its inputs (stable: keeps file order where
   * it already holds). Returns whether the order changed.
   */
  topologicalSort(): boolean {
    const placed = new Set<Node>();
    const order: Node[] = [];
    const visiting = new Set<Node>();
    const outerReads = (n: Node): Value[] => {
      const reads: Value[] = [];
      const collect = (g: Graph): void => {
        for (const inner of g.nodes) {
          for (const v of inner.inputs) if (v && v.graph !== g) reads.push(v);
          inner.subgraphs().forEach(collect);
        }
      };
      n.subgraphs().forEach(collect);
      return reads;
    };
    const visit = (node: Node): void => {
      if (placed.has(node)) return;
      if (visiting.has(node)) throw new Error(`graph "${this.name}" has a cycle through node "${node.label}"`);
      visiting.add(node);
      for (const v of [...node.inputs, ...outerReads(node)]) {
        const p = v?.producer;
        if (p && p.graph === this) visit(p);
      }
      visiting.delete(node);
      placed.add(node);
      order.push(node);
    };
    this.nodeList.forEach(visit);
    const changed = order.some((n, i) => n !== this.nodeList[i]);
    this.nodeList = order;
    return changed;
  }
}
