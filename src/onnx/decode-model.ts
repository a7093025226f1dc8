// Decoding: ModelProto bytes -> IR. Together with encode-model.ts the only code that knows the
// protobuf schema (onnx-proto); everything else reads the IR. Must not import runtime/analysis.

import * as path from 'node:path';
import onnxProto from 'onnx-proto';
import { ExternalDataError, ModelFormatError } from '../errors.js';
import { DataType, dataTypeByteSize } from '../ir/data-type.js';
import { Graph } from '../ir/graph.js';
import { Model } from '../ir/model.js';
import { Node, type Attribute } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import type { Dim, Value, ValueType } from '../ir/value.js';
import { externalRangeReader, resolveExternalLocation } from './external-data.js';
import { toBigInt, toNumber } from './long.js';
import { MAX_SUBGRAPH_DEPTH, subgraphDepth } from './nesting-depth.js';

const { onnx } = onnxProto;
type Proto<T> = T;

export interface DecodeOptions {
  /** The model file's path: names the subject of errors and anchors external data. */
  path?: string;
  /** Folder that external data locations are relative to (default: the model file's folder). */
  baseDir?: string;
}

const has = (o: object, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key);

/** Decodes ONNX ModelProto bytes into a Model; throws ModelFormatError naming the file on bad input. */
export function decodeModel(bytes: Uint8Array, options: DecodeOptions = {}): Model {
  const subject = options.path ?? 'model';
  let proto: onnxProto.onnx.ModelProto;
  if (subgraphDepth(bytes) > MAX_SUBGRAPH_DEPTH) {
    throw new ModelFormatError(subject, `has subgraphs nested more than ${MAX_SUBGRAPH_DEPTH} deep; expected a model whose If/Loop/Scan bodies nest at most ${MAX_SUBGRAPH_DEPTH} levels`);
  }
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (cause) {
    throw new ModelFormatError(subject, `not a valid ONNX model (${(cause as Error).message}); expected a serialized ModelProto`, { cause });
  }
  if (!proto.graph || !has(proto, 'graph')) {
    throw new ModelFormatError(subject, 'has no graph; expected an ONNX ModelProto with a graph');
  }
  if (!has(proto, 'irVersion') || toNumber(proto.irVersion) <= 0 || toNumber(proto.irVersion) > 100) {
    throw new ModelFormatError(subject, `has no valid ir_version (got ${toNumber(proto.irVersion)}); expected an ONNX ModelProto`);
  }
  const ctx: DecodeContext = { subject, baseDir: options.baseDir ?? (options.path ? path.dirname(options.path) : undefined) };
  const graph = decodeGraph(proto.graph, undefined, ctx);
  const model = new Model(graph);
  model.irVersion = toNumber(proto.irVersion);
  model.opsetImports = (proto.opsetImport ?? []).map((o) => ({ domain: o.domain ?? '', version: toNumber(o.version) }));
  model.producerName = proto.producerName ?? '';
  model.producerVersion = proto.producerVersion ?? '';
  model.domain = proto.domain ?? '';
  model.modelVersion = toNumber(proto.modelVersion);
  model.docString = proto.docString ?? '';
  model.metadataProps = (proto.metadataProps ?? []).map((p) => ({ key: p.key ?? '', value: p.value ?? '' }));
  model.opaque.functions = (proto.functions ?? []).map((f) => onnx.FunctionProto.encode(f).finish());
  model.opaque.trainingInfo = (proto.trainingInfo ?? []).map((t) => onnx.TrainingInfoProto.encode(t).finish());
  return model;
}

interface DecodeContext {
  subject: string;
  baseDir: string | undefined;
}

/** Name -> value tables per graph while decoding; a subgraph looks names up through its parents. */
const scopes = new WeakMap<Graph, Map<string, Value>>();

function lookup(graph: Graph, name: string): Value | undefined {
  for (let g: Graph | undefined = graph; g; g = g.parent) {
    const v = scopes.get(g)?.get(name);
    if (v) return v;
  }
  return undefined;
}

function decodeGraph(proto: Proto<onnxProto.onnx.IGraphProto>, parent: Graph | undefined, ctx: DecodeContext): Graph {
  const graph = new Graph(proto.name ?? '', parent);
  graph.docString = proto.docString ?? '';
  const scope = new Map<string, Value>();
  scopes.set(graph, scope);
  const declare = (name: string, type?: ValueType): Value => {
    let v = scope.get(name);
    if (!v) {
      v = graph.createValueExact(name, type);
      scope.set(name, v);
    } else if (type && !v.type) {
      v.type = type;
    }
    return v;
  };

  for (const info of proto.input ?? []) {
    const v = declare(info.name ?? '', decodeType(info.type));
    v.docString = info.docString ?? '';
    graph.inputs.push(v);
  }
  for (const t of proto.initializer ?? []) {
    const tensor = decodeTensor(t, ctx);
    const v = declare(tensor.name);
    if (!v.type) v.type = { kind: 'tensor', elemType: tensor.dataType, shape: tensor.dims.map((d) => ({ value: d })) };
    v.initializer = tensor;
    graph.initializers.push(v);
  }
  graph.opaque.sparseInitializers = (proto.sparseInitializer ?? []).map((s) => onnx.SparseTensorProto.encode(s).finish());
  graph.opaque.quantizationAnnotations = (proto.quantizationAnnotation ?? []).map((q) => onnx.TensorAnnotation.encode(q).finish());

  // Forward references (files whose nodes are not in topological order) get a placeholder value
  // that the producing node adopts when it is reached.
  const pending = new Map<string, Value>();
  for (const np of proto.node ?? []) {
    const node = new Node(graph, np.opType ?? '', np.domain ?? '', np.name ?? '');
    node.docString = np.docString ?? '';
    (np.input ?? []).forEach((name, i) => {
      if (name === '') {
        node.setInput(i, null);
        return;
      }
      let v = lookup(graph, name);
      if (!v) {
        v = pending.get(name) ?? graph.createValueExact(name);
        pending.set(name, v);
      }
      node.setInput(i, v);
    });
    for (const a of np.attribute ?? []) node.setAttribute(decodeAttribute(a, graph, ctx, np.name || `${np.opType ?? ''}(${np.output?.[0] ?? ''})`));
    for (const name of np.output ?? []) {
      const earlier = name === '' ? undefined : scope.get(name);
      if (earlier) {
        const writer = earlier.producer ? `node "${earlier.producer.label}"` : earlier.initializer ? 'an initializer' : 'a graph input';
        throw new ModelFormatError(ctx.subject, `value "${name}" is written by ${writer} and again by node "${node.label}"; expected each value to have one producer`);
      }
      let v = pending.get(name);
      if (v) {
        pending.delete(name);
        scope.set(name, v);
      } else {
        v = graph.createValueExact(name);
        // An empty output name marks an omitted optional output; it must not be looked up.
        if (name !== '') scope.set(name, v);
      }
      node.attachOutput(v);
    }
    graph.insertNode(node);
  }
  if (pending.size > 0) {
    const [name] = pending.keys();
    const reader = pending.get(name!)!.uses()[0]?.node.label ?? '?';
    throw new ModelFormatError(ctx.subject, `node "${reader}" reads "${name}", which no node, input or initializer defines`);
  }
  checkAcyclic(graph, ctx.subject);
  for (const info of proto.valueInfo ?? []) {
    const name = info.name ?? '';
    const v = lookup(graph, name) ?? graph.createValueExact(name);
    const type = decodeType(info.type);
    if (type) v.type = type;
    v.docString = info.docString ?? '';
    graph.valueInfos.push(v);
  }
  for (const info of proto.output ?? []) {
    const name = info.name ?? '';
    const v = lookup(graph, name);
    if (!v) throw new ModelFormatError(ctx.subject, `graph output "${name}" is not produced by any node, input or initializer`);
    const type = decodeType(info.type);
    if (type) v.type = type;
    graph.outputs.push(v);
  }
  return graph;
}

function decodeType(proto: onnxProto.onnx.ITypeProto | null | undefined): ValueType | undefined {
  if (!proto) return undefined;
  const tt = proto.tensorType;
  if (tt && has(proto, 'tensorType')) {
    const type: ValueType = { kind: 'tensor', elemType: tt.elemType ?? 0 };
    if (tt.shape && has(tt, 'shape')) {
      type.shape = (tt.shape.dim ?? []).map((d) => {
        const dim: Dim = {};
        if (has(d, 'dimValue')) dim.value = toNumber(d.dimValue);
        if (has(d, 'dimParam')) dim.param = d.dimParam ?? '';
        if (has(d, 'denotation')) dim.denotation = d.denotation ?? '';
        return dim;
      });
    }
    if (has(proto, 'denotation')) type.denotation = proto.denotation ?? '';
    return type;
  }
  return { kind: 'other', encoded: onnx.TypeProto.encode(proto).finish() };
}

const AT = onnx.AttributeProto.AttributeType;

function inferAttributeType(a: onnxProto.onnx.IAttributeProto): number {
  if (a.type) return a.type;
  // Files from very old exporters leave `type` unset; the filled field says what it is.
  if (has(a, 'f')) return AT.FLOAT;
  if (has(a, 'i')) return AT.INT;
  if (has(a, 's')) return AT.STRING;
  if (has(a, 't')) return AT.TENSOR;
  if (has(a, 'g')) return AT.GRAPH;
  if (a.floats?.length) return AT.FLOATS;
  if (a.ints?.length) return AT.INTS;
  if (a.strings?.length) return AT.STRINGS;
  if (a.tensors?.length) return AT.TENSORS;
  if (a.graphs?.length) return AT.GRAPHS;
  return AT.UNDEFINED;
}

function decodeAttribute(a: onnxProto.onnx.IAttributeProto, graph: Graph, ctx: DecodeContext, nodeLabel: string): Attribute {
  const present = <T>(value: T | null | undefined, kind: string): T => {
    if (value === null || value === undefined) throw new ModelFormatError(ctx.subject, `attribute "${a.name ?? ''}" of node "${nodeLabel}" is a ${kind} without its value`);
    return value;
  };
  const base = { name: a.name ?? '', ...(a.docString ? { docString: a.docString } : {}), ...(a.refAttrName ? { refAttrName: a.refAttrName } : {}) };
  switch (inferAttributeType(a)) {
    case AT.FLOAT: return { ...base, type: 'float', value: a.f ?? 0 };
    case AT.INT: return { ...base, type: 'int', value: toBigInt(a.i) };
    case AT.STRING: return { ...base, type: 'string', value: a.s ?? new Uint8Array() };
    case AT.TENSOR: return { ...base, type: 'tensor', value: decodeTensor(present(a.t, 'TENSOR'), ctx) };
    case AT.GRAPH: return { ...base, type: 'graph', value: decodeGraph(present(a.g, 'GRAPH'), graph, ctx) };
    case AT.FLOATS: return { ...base, type: 'floats', value: [...(a.floats ?? [])] };
    case AT.INTS: return { ...base, type: 'ints', value: (a.ints ?? []).map(toBigInt) };
    case AT.STRINGS: return { ...base, type: 'strings', value: [...(a.strings ?? [])] };
    case AT.TENSORS: return { ...base, type: 'tensors', value: (a.tensors ?? []).map((t) => decodeTensor(t, ctx)) };
    case AT.GRAPHS: return { ...base, type: 'graphs', value: (a.graphs ?? []).map((g) => decodeGraph(g, graph, ctx)) };
    default: return { ...base, type: 'opaque', encoded: onnx.AttributeProto.encode(a).finish() };
  }
}

/** Decodes one TensorProto (an initializer, an attribute, or a test-data .pb file) into a Tensor. */
export function decodeTensor(t: onnxProto.onnx.ITensorProto, ctx: { subject: string; baseDir?: string | undefined }): Tensor {
  const name = t.name ?? '';
  const dataType = t.dataType ?? 0;
  const dims = (t.dims ?? []).map(toNumber);
  const docString = t.docString ?? '';
  const subject = `${ctx.subject}: tensor "${name}"`;
  const count = elementCount(dims, subject);

  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    const entries = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = entries.get('location');
    if (!location) throw new ExternalDataError(subject, 'external data has no "location" entry; expected a file name');
    if (ctx.baseDir === undefined) throw new ExternalDataError(subject, `external data "${location}" cannot be read: the model was given as bytes without a folder`);
    const file = resolveExternalLocation(ctx.baseDir, location, subject);
    const offset = Number(entries.get('offset') ?? '0');
    const size = dataTypeByteSize(dataType);
    const byteLength = entries.has('length') ? Number(entries.get('length')) : size !== undefined ? size * count : NaN;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(byteLength) || offset < 0 || byteLength < 0) {
      throw new ExternalDataError(subject, `external data offset "${entries.get('offset')}" or length "${entries.get('length')}" is not a byte count`);
    }
    if (size !== undefined && byteLength < size * count) {
      throw new ExternalDataError(subject, `external data length ${byteLength} is too short for dims [${dims.join(', ')}]; expected ${size * count} bytes`);
    }
    return new Tensor(dataType, dims, { kind: 'external', location, offset, byteLength, read: externalRangeReader(file, offset, byteLength, subject) }, name, docString);
  }
  if (dataType === DataType.STRING) {
    if ((t.stringData?.length ?? 0) < count) throw new ModelFormatError(subject, `string_data holds ${t.stringData?.length ?? 0} values; expected ${count} for dims [${dims.join(', ')}]`);
    return new Tensor(dataType, dims, { kind: 'strings', strings: [...(t.stringData ?? [])] }, name, docString);
  }
  if (t.rawData && has(t, 'rawData')) {
    const size = dataTypeByteSize(dataType);
    if (size !== undefined && t.rawData.byteLength < size * count) {
      throw new ModelFormatError(subject, `raw_data holds ${t.rawData.byteLength} bytes; expected ${size * count} for dims [${dims.join(', ')}]`);
    }
    return new Tensor(dataType, dims, { kind: 'bytes', bytes: t.rawData }, name, docString);
  }
  return new Tensor(dataType, dims, { kind: 'bytes', bytes: typedFieldBytes(t, dataType, count, subject) }, name, docString);
}

/** Packs the typed repeated fields (float_data, int32_data, ...) into little-endian element bytes. */
function typedFieldBytes(t: onnxProto.onnx.ITensorProto, dataType: number, count: number, subject: string): Uint8Array {
  const size = dataTypeByteSize(dataType);
  if (size === undefined) throw new ModelFormatError(subject, `element type ${dataType} is not supported`);
  // The typed field must hold the values before any buffer of the dims' size is allocated.
  const [available, fieldName] = dataType === DataType.FLOAT ? [t.floatData?.length, 'float_data'] : dataType === DataType.COMPLEX64 ? [(t.floatData?.length ?? 0) / 2, 'float_data']
    : dataType === DataType.DOUBLE ? [t.doubleData?.length, 'double_data'] : dataType === DataType.COMPLEX128 ? [(t.doubleData?.length ?? 0) / 2, 'double_data']
      : dataType === DataType.INT64 ? [t.int64Data?.length, 'int64_data'] : dataType === DataType.UINT32 || dataType === DataType.UINT64 ? [t.uint64Data?.length, 'uint64_data'] : [t.int32Data?.length, 'int32_data'];
  const per = dataType === DataType.COMPLEX64 || dataType === DataType.COMPLEX128 ? 2 : 1;
  if ((available ?? 0) < count) throw new ModelFormatError(subject, `${fieldName} holds ${Math.round((available ?? 0) * per)} values; expected ${count * per} for dims`);
  const bytes = new Uint8Array(size * count);
  const view = new DataView(bytes.buffer);
  const need = (field: ArrayLike<unknown> | null | undefined, n: number, fieldName: string): ArrayLike<unknown> => {
    const f = field ?? [];
    if (f.length < n) throw new ModelFormatError(subject, `${fieldName} holds ${f.length} values; expected ${n} for dims`);
    return f;
  };
  switch (dataType) {
    case DataType.FLOAT: {
      const f = need(t.floatData, count, 'float_data') as number[];
      for (let i = 0; i < count; i++) view.setFloat32(4 * i, f[i]!, true);
      break;
    }
    case DataType.COMPLEX64: {
      const f = need(t.floatData, 2 * count, 'float_data') as number[];
      for (let i = 0; i < 2 * count; i++) view.setFloat32(4 * i, f[i]!, true);
      break;
    }
    case DataType.DOUBLE: {
      const f = need(t.doubleData, count, 'double_data') as number[];
      for (let i = 0; i < count; i++) view.setFloat64(8 * i, f[i]!, true);
      break;
    }
    case DataType.COMPLEX128: {
      const f = need(t.doubleData, 2 * count, 'double_data') as number[];
      for (let i = 0; i < 2 * count; i++) view.setFloat64(8 * i, f[i]!, true);
      break;
    }
    case DataType.INT64: {
      const f = need(t.int64Data, count, 'int64_data') as Parameters<typeof toBigInt>[0][];
      for (let i = 0; i < count; i++) view.setBigInt64(8 * i, toBigInt(f[i]), true);
      break;
    }
    case DataType.UINT32: case DataType.UINT64: {
      const f = need(t.uint64Data, count, 'uint64_data') as Parameters<typeof toBigInt>[0][];
      for (let i = 0; i < count; i++) {
        const x = BigInt.asUintN(64, toBigInt(f[i]));
        if (dataType === DataType.UINT32) view.setUint32(4 * i, Number(x), true);
        else view.setBigUint64(8 * i, x, true);
      }
      break;
    }
    default: {
      // int32_data carries every type of 32 bits or fewer, floats of 16 and 8 bits as raw bits.
      const f = need(t.int32Data, count, 'int32_data') as number[];
      for (let i = 0; i < count; i++) {
        const x = f[i]!;
        if (size === 1) view.setUint8(i, x & 0xff);
        else if (size === 2) view.setUint16(2 * i, x & 0xffff, true);
        else view.setInt32(4 * i, x, true);
      }
    }
  }
  return bytes;
}

/** Decodes a serialized TensorProto (the .pb files of the ONNX backend test suite). */
export function decodeTensorFile(bytes: Uint8Array, subject: string): Tensor {
  let proto: onnxProto.onnx.TensorProto;
  try {
    proto = onnx.TensorProto.decode(bytes);
  } catch (cause) {
    throw new ModelFormatError(subject, `not a serialized TensorProto (${(cause as Error).message})`, { cause });
  }
  return decodeTensor(proto, { subject });
}

/** Tensors beyond this many elements are refused: no buffer of the host can hold them. */
const MAX_ELEMENTS = 2 ** 40;

/** The product of dims, after checking each is a whole number >= 0 and the product is holdable. */
function elementCount(dims: number[], subject: string): number {
  let count = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d)) throw new ModelFormatError(subject, `dim ${d} is not a whole number; expected dims >= 0`);
    if (d < 0) throw new ModelFormatError(subject, `dim ${d} is negative; expected dims >= 0`);
    count *= d;
  }
  if (count >= MAX_ELEMENTS) throw new ModelFormatError(subject, `dims [${dims.join(', ')}] make ${count} elements; expected fewer than 2^40`);
  return count;
}

/**
 * Throws when the graph's nodes form a cycle (a node reading its own output, directly or through
 * others), naming a node on it. Kahn's algorithm, iterative so a long chain cannot overflow the
 * stack; reads from inside a node's subgraphs count as reads of the node.
 */
function checkAcyclic(graph: Graph, subject: string): void {
  const nodes = graph.nodes;
  const producers = new Map<Node, Set<Node>>();
  const consumers = new Map<Node, Node[]>();
  const readsOf = (node: Node): Value[] => {
    const reads = node.inputs.filter((v): v is Value => v !== null);
    const inner: Graph[] = [...node.subgraphs()];
    while (inner.length > 0) {
      const g = inner.pop()!;
      for (const n of g.nodes) {
        for (const v of n.inputs) if (v && v.graph === graph) reads.push(v);
        inner.push(...n.subgraphs());
      }
    }
    return reads;
  };
  for (const node of nodes) {
    const from = new Set<Node>();
    for (const v of readsOf(node)) if (v.producer && v.producer.graph === graph) from.add(v.producer);
    producers.set(node, from);
    for (const p of from) {
      const list = consumers.get(p);
      if (list) list.push(node);
      else consumers.set(p, [node]);
    }
  }
  const waiting = new Map<Node, number>();
  const ready: Node[] = [];
  for (const node of nodes) {
    waiting.set(node, producers.get(node)!.size);
    if (producers.get(node)!.size === 0) ready.push(node);
  }
  let placed = 0;
  while (ready.length > 0) {
    const node = ready.pop()!;
    placed++;
    for (const c of consumers.get(node) ?? []) {
      const left = waiting.get(c)! - 1;
      waiting.set(c, left);
      if (left === 0) ready.push(c);
    }
  }
  if (placed === nodes.length) return;
  // Walk back through unplaced producers from an unplaced node until a node repeats: it is on a cycle.
  let node = nodes.find((n) => waiting.get(n)! > 0)!;
  const seen = new Set<Node>();
  while (!seen.has(node)) {
    seen.add(node);
    node = [...producers.get(node)!].find((p) => waiting.get(p)! > 0)!;
  }
  throw new ModelFormatError(subject, `graph "${graph.name}" has a cycle through node "${node.label}"; expected every node to read only values computed before it`);
}
