// A deep copy of a model's structure. Tensors are shared, not copied: they are never changed in
// place (Graph.setConstant swaps in a new Tensor), so a copy costs no weight memory and external
// data stays unread.

import { Graph } from './graph.js';
import { Model } from './model.js';
import { Node, type Attribute } from './node.js';
import type { Value } from './value.js';

/** A copy of `model` whose graph can be edited without touching the original. */
export function cloneModel(model: Model): Model {
  return cloneModelWithValues(model).model;
}

/**
 * A copy of `model`, and the copy of each value of the original (main graph and subgraphs), so a
 * stage holding values of the original finds their copies by identity, not by name.
 */
export function cloneModelWithValues(model: Model): { model: Model; valueOf: (v: Value) => Value } {
  const values = new Map<Value, Value>();
  const copy = new Model(cloneGraph(model.graph, undefined, new Map(), values));
  copy.irVersion = model.irVersion;
  copy.opsetImports = model.opsetImports.map((o) => ({ ...o }));
  copy.producerName = model.producerName;
  copy.producerVersion = model.producerVersion;
  copy.domain = model.domain;
  copy.modelVersion = model.modelVersion;
  copy.docString = model.docString;
  copy.metadataProps = model.metadataProps.map((p) => ({ ...p }));
  copy.opaque = { functions: [...model.opaque.functions], trainingInfo: [...model.opaque.trainingInfo] };
  const valueOf = (v: Value): Value => {
    const c = values.get(v);
    if (!c) throw new Error(`value "${v.name}" is not in the cloned model`);
    return c;
  };
  return { model: copy, valueOf };
}

function cloneGraph(source: Graph, parent: Graph | undefined, outer: Map<Value, Value>, all: Map<Value, Value>): Graph {
  const graph = new Graph(source.name, parent);
  graph.docString = source.docString;
  graph.opaque = { sparseInitializers: [...source.opaque.sparseInitializers], quantizationAnnotations: [...source.opaque.quantizationAnnotations] };
  // Values of this graph map to new ones; values of enclosing graphs to their copies (outer).
  const map = new Map<Value, Value>(outer);
  const valueFor = (v: Value): Value => {
    let c = map.get(v);
    if (!c) {
      c = graph.createValueExact(v.name, v.type);
      c.docString = v.docString;
      if (v.initializer) c.initializer = v.initializer;
      map.set(v, c);
      all.set(v, c);
    }
    return c;
  };
  graph.inputs = source.inputs.map(valueFor);
  graph.initializers = source.initializers.map(valueFor);
  for (const node of source.nodes) {
    const n = new Node(graph, node.opType, node.domain, node.name);
    n.docString = node.docString;
    node.inputs.forEach((v, i) => n.setInput(i, v ? valueFor(v) : null));
    for (const a of node.attributes.values()) n.setAttribute(cloneAttribute(a, graph, map, all));
    for (const o of node.outputs) n.attachOutput(valueFor(o));
    graph.insertNode(n);
  }
  graph.valueInfos = source.valueInfos.map(valueFor);
  graph.outputs = source.outputs.map(valueFor);
  return graph;
}

function cloneAttribute(a: Attribute, graph: Graph, map: Map<Value, Value>, all: Map<Value, Value>): Attribute {
  switch (a.type) {
    case 'graph': return { ...a, value: cloneGraph(a.value, graph, map, all) };
    case 'graphs': return { ...a, value: a.value.map((g) => cloneGraph(g, graph, map, all)) };
    case 'floats': return { ...a, value: [...a.value] };
    case 'ints': return { ...a, value: [...a.value] };
    case 'strings': return { ...a, value: [...a.value] };
    case 'tensors': return { ...a, value: [...a.value] };
    default: return { ...a };
  }
}
