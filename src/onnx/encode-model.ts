// Encoding: IR -> ModelProto bytes, optionally moving large tensors into an external data file.
// The inverse of decode-model.ts; the two together are the only users of the protobuf schema.

import onnxProto from 'onnx-proto';
import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';
import type { Attribute } from '../ir/node.js';
import type { Tensor } from '../ir/tensor.js';
import type { Value, ValueType } from '../ir/value.js';
import { fromBigInt } from './long.js';

const { onnx } = onnxProto;
type ITensorProto = onnxProto.onnx.ITensorProto;

export interface EncodeOptions {
  /**
   * Where tensors go that must live outside the protobuf: those at least `thresholdBytes` long and
   * those that were external in the source. Without it every tensor is written inline.
   */
  externalData?: { location: string; thresholdBytes: number };
}

export interface EncodedModel {
  modelBytes: Uint8Array;
  /** Chunks of the external data file in order (absent when nothing went external). */
  externalChunks: Uint8Array[];
}

/** Encodes a Model to ModelProto bytes (and external data chunks when asked for). */
export function encodeModel(model: Model, options: EncodeOptions = {}): EncodedModel {
  const external = { chunks: [] as Uint8Array[], offset: 0 };
  const ctx: EncodeContext = { options, external };
  const proto: onnxProto.onnx.IModelProto = {
    irVersion: model.irVersion,
    opsetImport: model.opsetImports.map((o) => ({ domain: o.domain, version: o.version })),
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    domain: model.domain,
    modelVersion: model.modelVersion,
    docString: model.docString,
    graph: encodeGraph(model.graph, ctx),
    metadataProps: model.metadataProps.map((p) => ({ key: p.key, value: p.value })),
    functions: model.opaque.functions.map((b) => onnx.FunctionProto.decode(b)),
    trainingInfo: model.opaque.trainingInfo.map((b) => onnx.TrainingInfoProto.decode(b)),
  };
  if (!model.docString) delete proto.docString;
  if (!model.domain) delete proto.domain;
  if (!model.modelVersion) delete proto.modelVersion;
  return { modelBytes: onnx.ModelProto.encode(proto).finish(), externalChunks: external.chunks };
}

interface EncodeContext {
  options: EncodeOptions;
  external: { chunks: Uint8Array[]; offset: number };
}

function encodeGraph(graph: Graph, ctx: EncodeContext): onnxProto.onnx.IGraphProto {
  return {
    name: graph.name,
    docString: graph.docString || undefined,
    input: graph.inputs.map(encodeValueInfo),
    output: graph.outputs.map(encodeValueInfo),
    valueInfo: graph.valueInfos.map(encodeValueInfo),
    initializer: graph.initializers.map((v) => encodeTensor(v.initializer!, ctx, v.name)),
    sparseInitializer: graph.opaque.sparseInitializers.map((b) => onnx.SparseTensorProto.decode(b)),
    quantizationAnnotation: graph.opaque.quantizationAnnotations.map((b) => onnx.TensorAnnotation.decode(b)),
    node: graph.nodes.map((n) => ({
      name: n.name || undefined,
      opType: n.opType,
      domain: n.domain || undefined,
      docString: n.docString || undefined,
      input: n.inputs.map((v) => v?.name ?? ''),
      output: n.outputs.map((v) => v.name),
      attribute: [...n.attributes.values()].map((a) => encodeAttribute(a, ctx)),
    })),
  };
}

function encodeValueInfo(v: Value): onnxProto.onnx.IValueInfoProto {
  const info: onnxProto.onnx.IValueInfoProto = { name: v.name };
  const type = encodeType(v.type);
  if (type) info.type = type;
  if (v.docString) info.docString = v.docString;
  return info;
}

function encodeType(type: ValueType | undefined): onnxProto.onnx.ITypeProto | undefined {
  if (!type) return undefined;
  if (type.kind === 'other') return onnx.TypeProto.decode(type.encoded);
  const tensorType: onnxProto.onnx.TypeProto.ITensor = { elemType: type.elemType };
  if (type.shape) {
    tensorType.shape = {
      dim: type.shape.map((d) => {
        const dim: onnxProto.onnx.TensorShapeProto.IDimension = {};
        if (d.value !== undefined) dim.dimValue = d.value;
        else if (d.param !== undefined) dim.dimParam = d.param;
        if (d.denotation !== undefined) dim.denotation = d.denotation;
        return dim;
      }),
    };
  }
  const proto: onnxProto.onnx.ITypeProto = { tensorType };
  if (type.denotation !== undefined) proto.denotation = type.denotation;
  return proto;
}

const AT = onnx.AttributeProto.AttributeType;

function encodeAttribute(a: Attribute, ctx: EncodeContext): onnxProto.onnx.IAttributeProto {
  if (a.type === 'opaque') return onnx.AttributeProto.decode(a.encoded);
  const base: onnxProto.onnx.IAttributeProto = { name: a.name };
  if (a.docString) base.docString = a.docString;
  if (a.refAttrName) base.refAttrName = a.refAttrName;
  switch (a.type) {
    case 'float': return { ...base, type: AT.FLOAT, f: a.value };
    case 'int': return { ...base, type: AT.INT, i: fromBigInt(a.value) as number };
    case 'string': return { ...base, type: AT.STRING, s: a.value };
    case 'tensor': return { ...base, type: AT.TENSOR, t: encodeTensor(a.value, ctx, a.value.name) };
    case 'graph': return { ...base, type: AT.GRAPH, g: encodeGraph(a.value, ctx) };
    case 'floats': return { ...base, type: AT.FLOATS, floats: a.value };
    case 'ints': return { ...base, type: AT.INTS, ints: a.value.map((x) => fromBigInt(x) as number) };
    case 'strings': return { ...base, type: AT.STRINGS, strings: a.value };
    case 'tensors': return { ...base, type: AT.TENSORS, tensors: a.value.map((t) => encodeTensor(t, ctx, t.name)) };
    case 'graphs': return { ...base, type: AT.GRAPHS, graphs: a.value.map((g) => encodeGraph(g, ctx)) };
  }
}

/** Encodes a Tensor as a TensorProto, inline as raw_data or into the external data file. */
export function encodeTensor(tensor: Tensor, ctx: EncodeContext | undefined, name: string): ITensorProto {
  const proto: ITensorProto = { name, dims: [...tensor.dims], dataType: tensor.dataType };
  if (tensor.docString) proto.docString = tensor.docString;
  if (tensor.dataType === 8) {
    proto.stringData = tensor.strings();
    return proto;
  }
  const ext = ctx?.options.externalData;
  if (ext && (tensor.isExternal || tensor.byteLength >= ext.thresholdBytes)) {
    // Aligned offsets let readers map the file and view tensors in place.
    const pad = (64 - (ctx!.external.offset % 64)) % 64;
    if (pad) {
      ctx!.external.chunks.push(new Uint8Array(pad));
      ctx!.external.offset += pad;
    }
    const bytes = tensor.bytes();
    proto.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    proto.externalData = [
      { key: 'location', value: ext.location },
      { key: 'offset', value: String(ctx!.external.offset) },
      { key: 'length', value: String(bytes.byteLength) },
    ];
    ctx!.external.chunks.push(bytes);
    ctx!.external.offset += bytes.byteLength;
    return proto;
  }
  proto.rawData = tensor.bytes();
  return proto;
}

/** Encodes a single tensor as a serialized TensorProto (the .pb test-data format). */
export function encodeTensorFile(tensor: Tensor): Uint8Array {
  return onnx.TensorProto.encode(encodeTensor(tensor, undefined, tensor.name)).finish();
}
