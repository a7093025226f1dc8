import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { CondenseError, ExternalDataError, FileNotFoundError, ModelFormatError } from '../../src/errors.js';
import { DataType } from '../../src/ir/data-type.js';
import type { Graph } from '../../src/ir/graph.js';
import type { Model } from '../../src/ir/model.js';
import type { Attribute } from '../../src/ir/node.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { Value } from '../../src/ir/value.js';
import { decodeModel, decodeTensorFile } from '../../src/onnx/decode-model.js';
import { encodeModel, encodeTensorFile } from '../../src/onnx/encode-model.js';
import { loadModel, saveModel } from '../../src/onnx/model-file.js';
import type { HostTensor } from '../../src/runtime/host-tensor.js';
import { ModelSession } from '../../src/runtime/model-session.js';
import {
  float, floats, graph, GraphBuilder, int, ints, str, strs, tensor, tensors, type AttributeSpec, type ShapeSpec,
} from '../helpers/graph-builder.js';
import { hostToTensor } from './tensor-to-host.js';
import { scratchFolder } from '../helpers/scratch-folder.js';

const { onnx } = onnxProto;
const { FLOAT, DOUBLE, FLOAT16, BFLOAT16, INT8, UINT8, INT16, UINT16, INT32, UINT32, INT64, UINT64, BOOL, STRING } = DataType;
const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);
const utf8 = new TextEncoder();

const { root: scratch, freshFolder } = scratchFolder('codec');

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

// ---- A structural description of a model: what decode(encode(model)) must give back. ----

function describeTensor(t: Tensor): object {
  const data = t.dataType === STRING ? t.strings().map(hex) : hex(t.bytes());
  return { name: t.name, docString: t.docString, dataType: t.dataType, dims: [...t.dims], data };
}

function describeValue(v: Value): object {
  const type = v.type?.kind === 'other' ? { kind: 'other', encoded: hex(v.type.encoded) } : v.type;
  return { name: v.name, docString: v.docString, type };
}

function describeAttribute(a: Attribute): object {
  const head = { name: a.name, type: a.type, docString: a.docString, refAttrName: a.refAttrName };
  switch (a.type) {
    case 'string': return { ...head, value: hex(a.value) };
    case 'strings': return { ...head, value: a.value.map(hex) };
    case 'tensor': return { ...head, value: describeTensor(a.value) };
    case 'tensors': return { ...head, value: a.value.map(describeTensor) };
    case 'graph': return { ...head, value: describeGraph(a.value) };
    case 'graphs': return { ...head, value: a.value.map(describeGraph) };
    case 'opaque': return { ...head, value: hex(a.encoded) };
    default: return { ...head, value: a.value };
  }
}

function describeGraph(g: Graph): object {
  return {
    name: g.name,
    docString: g.docString,
    inputs: g.inputs.map(describeValue),
    outputs: g.outputs.map(describeValue),
    valueInfos: g.valueInfos.map(describeValue),
    initializers: g.initializers.map((v) => ({ ...describeValue(v), tensor: describeTensor(v.initializer!) })),
    nodes: g.nodes.map((n) => ({
      opType: n.opType,
      domain: n.domain,
      name: n.name,
      docString: n.docString,
      // "^" marks a read of an outer graph's value, so scoping is part of the structure.
      inputs: n.inputs.map((v) => (v === null ? null : v.graph === g ? v.name : `^${v.name}`)),
      outputs: n.outputs.map((v) => v.name),
      attributes: [...n.attributes.values()].map(describeAttribute),
    })),
  };
}

function describeModel(m: Model): object {
  return {
    irVersion: m.irVersion,
    opsetImports: m.opsetImports,
    producerName: m.producerName,
    producerVersion: m.producerVersion,
    domain: m.domain,
    modelVersion: m.modelVersion,
    docString: m.docString,
    metadataProps: m.metadataProps,
    graph: describeGraph(m.graph),
  };
}

// ---- Arbitrary tensors and graphs. ----

const TENSOR_TYPES = [FLOAT, DOUBLE, FLOAT16, BFLOAT16, INT8, UINT8, INT32, INT64, BOOL, STRING] as const;
const bytesOf = (view: ArrayBufferView): Uint8Array => new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
const exactly = (count: number) => ({ minLength: count, maxLength: count });
const int64Arb = fc.oneof(fc.constantFrom(INT64_MAX, INT64_MIN, 0n, -1n, 2n ** 53n + 1n), fc.bigInt(INT64_MIN, INT64_MAX));
const float32Arb = fc.float();
const nameArb = fc.string({ unit: 'grapheme', maxLength: 6 });

/** Element bytes (or strings) of `count` elements of `dataType`, covering extremes and NaNs. */
function elementsArb(dataType: number, count: number): fc.Arbitrary<Uint8Array | Uint8Array[]> {
  switch (dataType) {
    case FLOAT: return fc.array(float32Arb, exactly(count)).map((v) => bytesOf(Float32Array.from(v)));
    case DOUBLE: return fc.array(fc.double(), exactly(count)).map((v) => bytesOf(Float64Array.from(v)));
    // Any 16-bit pattern, NaN payloads included: the codec must move bits, not numbers.
    case FLOAT16: case BFLOAT16: return fc.array(fc.integer({ min: 0, max: 0xffff }), exactly(count)).map((v) => bytesOf(Uint16Array.from(v)));
    case INT8: return fc.array(fc.integer({ min: -128, max: 127 }), exactly(count)).map((v) => bytesOf(Int8Array.from(v)));
    case UINT8: return fc.uint8Array(exactly(count));
    case INT32: return fc.array(fc.integer(), exactly(count)).map((v) => bytesOf(Int32Array.from(v)));
    case INT64: return fc.array(int64Arb, exactly(count)).map((v) => bytesOf(BigInt64Array.from(v)));
    case BOOL: return fc.array(fc.boolean(), exactly(count)).map((v) => Uint8Array.from(v, Number));
    case STRING: return fc.array(fc.oneof(nameArb.map((s) => utf8.encode(s)), fc.uint8Array({ maxLength: 5 })), exactly(count));
    default: throw new Error(`no arbitrary for type ${dataType}`);
  }
}

const tensorArb: fc.Arbitrary<Tensor> = fc
  .record({
    dataType: fc.constantFrom(...TENSOR_TYPES),
    dims: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }),
    name: nameArb,
    docString: fc.oneof(fc.constant(''), nameArb),
  })
  .chain(({ dataType, dims, name, docString }) =>
    elementsArb(dataType, dims.reduce((a, b) => a * b, 1)).map((data) => {
      const source = Array.isArray(data) ? { kind: 'strings' as const, strings: data } : { kind: 'bytes' as const, bytes: data };
      return new Tensor(dataType, dims, source, name, docString);
    }),
  );

/** Attributes as data; a subgraph is a plan that is built once its parent graph exists. */
type AttributePlan = AttributeSpec | { type: 'subgraph'; nodes: NodePlan[] };

interface NodePlan {
  opType: string;
  domain: string;
  name: string;
  /** Which earlier value each input reads (modulo how many exist); null is an omitted input. */
  picks: (number | null)[];
  outputCount: number;
  attributes: [string, AttributePlan][];
  /** Whether the first output gets a value_info entry. */
  hasValueInfo: boolean;
}

interface GraphPlan {
  inputs: { elemType: number; shape: ShapeSpec }[];
  initializers: Tensor[];
  nodes: NodePlan[];
}

const leafAttributeArb: fc.Arbitrary<AttributeSpec> = fc.oneof(
  int64Arb.map(int),
  float32Arb.map(float),
  nameArb.map(str),
  tensorArb.map(tensor),
  fc.array(float32Arb, { maxLength: 4 }).map(floats),
  fc.array(int64Arb, { maxLength: 4 }).map(ints),
  fc.array(nameArb, { maxLength: 3 }).map(strs),
  fc.array(tensorArb, { maxLength: 2 }).map(tensors),
);

function nodePlanArb(attributeArb: fc.Arbitrary<AttributePlan>): fc.Arbitrary<NodePlan> {
  return fc.record({
    opType: fc.constantFrom('Relu', 'Add', 'Conv', 'If', 'MyOp'),
    domain: fc.constantFrom('', 'com.example'),
    name: fc.oneof(fc.constant(''), nameArb),
    picks: fc.array(fc.option(fc.nat(), { freq: 5 }), { maxLength: 3 }),
    outputCount: fc.integer({ min: 1, max: 2 }),
    attributes: fc.uniqueArray(fc.tuple(fc.constantFrom('alpha', 'axes', 'body', 'mode', 'value', 'x'), attributeArb), { maxLength: 3, selector: ([name]) => name }),
    hasValueInfo: fc.boolean(),
  });
}

const subgraphArb: fc.Arbitrary<AttributePlan> = fc
  .array(nodePlanArb(leafAttributeArb), { minLength: 1, maxLength: 2 })
  .map((nodes) => ({ type: 'subgraph' as const, nodes }));

const graphPlanArb: fc.Arbitrary<GraphPlan> = fc.record({
  inputs: fc.array(
    fc.record({
      elemType: fc.constantFrom(...TENSOR_TYPES),
      shape: fc.array(fc.oneof(fc.nat({ max: 4 }), fc.constantFrom('N', 'batch')), { maxLength: 3 }),
    }),
    { minLength: 1, maxLength: 3 },
  ),
  initializers: fc.array(tensorArb, { maxLength: 2 }),
  nodes: fc.array(nodePlanArb(fc.oneof({ weight: 4, arbitrary: leafAttributeArb }, { weight: 1, arbitrary: subgraphArb })), { maxLength: 4 }),
});

function addNodes(b: GraphBuilder, nodes: NodePlan[], visible: Value[]): void {
  for (const plan of nodes) {
    const inputs = plan.picks.map((p) => (p === null || visible.length === 0 ? null : visible[p % visible.length]!));
    const attributes: Record<string, AttributeSpec> = {};
    for (const [name, a] of plan.attributes) {
      if (a.type !== 'subgraph') {
        attributes[name] = a;
        continue;
      }
      // The body reads its own input and whatever the outer graph has made so far.
      const body = new GraphBuilder(`${name}_body`, b);
      const bodyInput = body.input('body_in', FLOAT, [1]);
      addNodes(body, a.nodes, [bodyInput, ...visible]);
      body.output(body.graph.nodes.at(-1)!.outputs[0]!, FLOAT, [1]);
      attributes[name] = graph(body);
    }
    const outputs = b.node(plan.opType, inputs, attributes, { outputs: plan.outputCount, domain: plan.domain, name: plan.name });
    if (plan.hasValueInfo) {
      outputs[0]!.type = { kind: 'tensor', elemType: FLOAT, shape: [{ param: 'N' }, { value: 2 }] };
      b.graph.valueInfos.push(outputs[0]!);
    }
    visible.push(...outputs);
  }
}

function buildPlan(plan: GraphPlan): Model {
  const b = new GraphBuilder('random');
  const visible = plan.inputs.map((input, i) => b.input(`in${i}`, input.elemType, input.shape));
  for (const t of plan.initializers) visible.push(b.initializer(t.name || 'init', t));
  addNodes(b, plan.nodes, visible);
  const last = b.graph.nodes.at(-1)?.outputs[0] ?? b.graph.inputs[0]!;
  b.output(last, FLOAT, ['N']);
  const model = b.build(17, { otherOpsets: { 'com.example': 1 } });
  model.docString = 'random graph';
  model.metadataProps = [{ key: 'seed', value: 'fast-check' }];
  return model;
}

/** A Gemm + Relu + Mul model with weights in initializers and in a Constant node. */
function smallMlp(): Model {
  const b = new GraphBuilder('mlp');
  const x = b.input('x', FLOAT, ['N', 4]);
  const w = b.initializer('w', Tensor.fromNumbers(FLOAT, [3, 4], Array.from({ length: 12 }, (_, i) => (i % 5) - 2.5)));
  const bias = b.initializer('bias', Tensor.fromNumbers(FLOAT, [3], [0.5, -1, 2]));
  const [h] = b.node('Gemm', [x, w, bias], { transB: int(1), alpha: float(0.75) });
  const [r] = b.node('Relu', [h!]);
  const scale = b.constant('scale', Tensor.fromNumbers(FLOAT, [3], [1, 2, 3]));
  const [y] = b.node('Mul', [r!, scale]);
  b.output(y!, FLOAT, ['N', 3]);
  return b.build(13);
}

const probe: HostTensor = { dataType: FLOAT, dims: [2, 4], data: Float32Array.from([1, -2, 3, 0.5, -1, 0, 2, 4]) };

async function runBytes(bytes: Uint8Array, subject: string): Promise<Record<string, HostTensor>> {
  const session = await ModelSession.create(bytes, subject);
  try {
    return await session.run({ x: probe });
  } finally {
    await session.release();
  }
}

/** The error `run` throws; fails the test when it throws none. */
function thrownBy(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}

function expectOneLine(error: Error, subjectStart: string): void {
  expect(error).toBeInstanceOf(CondenseError);
  expect(error.message.startsWith(subjectStart)).toBe(true);
  expect(error.message).not.toContain('\n');
}

describe('codec round trip', () => {
  it('gives back the same structure, attributes and tensor bytes for random graphs', () => {
    fc.assert(
      fc.property(graphPlanArb, (plan) => {
        const model = buildPlan(plan);
        const decoded = decodeModel(encodeModel(model).modelBytes);
        expect(describeModel(decoded)).toEqual(describeModel(model));
      }),
      { numRuns: 200 },
    );
  });

  it('re-encodes a decoded model to the same bytes', () => {
    fc.assert(
      fc.property(graphPlanArb, (plan) => {
        const first = encodeModel(buildPlan(plan)).modelBytes;
        const second = encodeModel(decodeModel(first)).modelBytes;
        expect(hex(second)).toBe(hex(first));
      }),
      { numRuns: 100 },
    );
  });

  it('keeps int64 attribute extremes exact', () => {
    const b = new GraphBuilder('g');
    const x = b.input('x', INT64, [3]);
    const extremes = [INT64_MAX, INT64_MIN, 2n ** 53n + 1n, -(2n ** 53n) - 1n, -1n];
    const [y] = b.node('MyOp', [x], { big: int(INT64_MAX), small: int(INT64_MIN), all: ints(extremes) }, { domain: 'com.example' });
    b.output(y!);
    const node = decodeModel(encodeModel(b.build(13)).modelBytes).graph.nodes[0]!;
    expect(node.attributes.get('big')).toMatchObject({ type: 'int', value: 9223372036854775807n });
    expect(node.attributes.get('small')).toMatchObject({ type: 'int', value: -9223372036854775808n });
    expect(node.attributes.get('all')).toMatchObject({ type: 'ints', value: extremes });
  });

  it('round-trips random tensors through the .pb tensor file format', () => {
    fc.assert(
      fc.property(tensorArb, (t) => {
        const decoded = decodeTensorFile(encodeTensorFile(t), 'tensor.pb');
        expect(describeTensor(decoded)).toEqual(describeTensor(t));
      }),
      { numRuns: 300 },
    );
  });

  it('produces a model that onnxruntime runs to the same outputs after a decode and re-encode', async () => {
    const model = smallMlp();
    const original = encodeModel(model).modelBytes;
    const again = encodeModel(decodeModel(original)).modelBytes;
    const [before, after] = [await runBytes(original, 'original'), await runBytes(again, 'again')];
    expect(after.mul_out!.dims).toEqual([2, 3]);
    expect(Array.from(after.mul_out!.data as Float32Array)).toEqual(Array.from(before.mul_out!.data as Float32Array));
  });
});

describe('TensorProto typed fields', () => {
  /** Encodes a TensorProto given in protobufjs object form (int64 as decimal strings) and decodes it. */
  function decodeProto(fields: Record<string, unknown>): Tensor {
    const proto = onnx.TensorProto.fromObject({ name: 't', ...fields });
    return decodeTensorFile(onnx.TensorProto.encode(proto).finish(), 't.pb');
  }
  const view = <T>(t: Tensor, make: (buffer: ArrayBuffer) => T): T => make(t.bytes().slice().buffer);

  it('reads float_data as float32', () => {
    const t = decodeProto({ dataType: FLOAT, dims: [2, 2], floatData: [1.5, -2, Infinity, NaN] });
    expect(Array.from(t.toFloat64())).toEqual([1.5, -2, Infinity, NaN]);
    expect(t.dims).toEqual([2, 2]);
  });

  it('reads int32_data holding float16 and bfloat16 bit patterns', () => {
    const half = decodeProto({ dataType: FLOAT16, dims: [4], int32Data: [0x3c00, 0xc000, 0x7bff, 0x0001] });
    expect(Array.from(half.toFloat64())).toEqual([1, -2, 65504, 2 ** -24]);
    expect(Array.from(view(half, (b) => new Uint16Array(b)))).toEqual([0x3c00, 0xc000, 0x7bff, 0x0001]);
    const brain = decodeProto({ dataType: BFLOAT16, dims: [3], int32Data: [0x3f80, 0xc000, 0x4049] });
    expect(Array.from(brain.toFloat64())).toEqual([1, -2, 3.140625]);
  });

  it('reads int64_data exactly, extremes included', () => {
    const t = decodeProto({ dataType: INT64, dims: [3], int64Data: ['9223372036854775807', '-9223372036854775808', '-1'] });
    expect(Array.from(t.toBigInt64())).toEqual([INT64_MAX, INT64_MIN, -1n]);
  });

  it('reads double_data as float64', () => {
    const t = decodeProto({ dataType: DOUBLE, dims: [3], doubleData: [Math.PI, -1e300, 5e-324] });
    expect(Array.from(t.toFloat64())).toEqual([Math.PI, -1e300, 5e-324]);
  });

  it('reads uint64_data for uint64 and uint32 tensors', () => {
    const wide = decodeProto({ dataType: UINT64, dims: [2], uint64Data: ['18446744073709551615', '7'] });
    expect(Array.from(view(wide, (b) => new BigUint64Array(b)))).toEqual([2n ** 64n - 1n, 7n]);
    const narrow = decodeProto({ dataType: UINT32, dims: [2], uint64Data: [4294967295, 7] });
    expect(Array.from(view(narrow, (b) => new Uint32Array(b)))).toEqual([4294967295, 7]);
  });

  it.each<{ type: string; dataType: number; values: number[]; make: (buffer: ArrayBuffer) => ArrayLike<number> }>([
    { type: 'int8', dataType: INT8, values: [-128, 127, -1], make: (b) => new Int8Array(b) },
    { type: 'uint8', dataType: UINT8, values: [0, 255, 7], make: (b) => new Uint8Array(b) },
    { type: 'int16', dataType: INT16, values: [-32768, 32767, -1], make: (b) => new Int16Array(b) },
    { type: 'uint16', dataType: UINT16, values: [0, 65535, 7], make: (b) => new Uint16Array(b) },
    { type: 'int32', dataType: INT32, values: [-2147483648, 2147483647, -1], make: (b) => new Int32Array(b) },
    { type: 'bool', dataType: BOOL, values: [1, 0, 1], make: (b) => new Uint8Array(b) },
  ])('reads int32_data for $type tensors', ({ dataType, values, make }) => {
    const t = decodeProto({ dataType, dims: [3], int32Data: values });
    expect(Array.from(view(t, make))).toEqual(values);
  });

  it('reads string_data as bytes', () => {
    const t = decodeProto({ dataType: STRING, dims: [2], stringData: [utf8.encode('héllo'), new Uint8Array([0xff, 0])] });
    expect(t.strings().map(hex)).toEqual([hex(utf8.encode('héllo')), 'ff00']);
  });

  it('refuses a typed field with fewer values than the dims need, naming the tensor and field', () => {
    const error = thrownBy(() => decodeProto({ dataType: FLOAT, dims: [3], floatData: [1, 2] }));
    expect(error).toBeInstanceOf(ModelFormatError);
    expect(error.message).toMatch(/^t\.pb: tensor "t": float_data holds 2 values; expected 3/);
  });
});

describe('external data', () => {
  it('saves large tensors beside the model, reloads them equal, and onnxruntime runs the files alike', async () => {
    const dir = freshFolder();
    const file = path.join(dir, 'mlp.onnx');
    const model = smallMlp();
    saveModel(model, file, { externalDataThresholdBytes: 12 });
    expect(fs.readdirSync(dir).sort()).toEqual(['mlp.onnx', 'mlp.onnx.data']);

    const reloaded = loadModel(file);
    const w = reloaded.graph.initializers.find((v) => v.name === 'w')!;
    expect(w.initializer!.isExternal).toBe(true);
    expect(w.initializer!.externalLocation).toBe('mlp.onnx.data');
    expect(describeModel(reloaded)).toEqual(describeModel(model));

    // onnxruntime reads the files itself: the independent check on the external data layout.
    const session = await ort.InferenceSession.create(file, { logSeverityLevel: 3 });
    try {
      const result = await session.run({ x: new ort.Tensor('float32', probe.data as Float32Array, probe.dims) });
      const fromFiles = hostToTensor({ dataType: FLOAT, dims: [...result.mul_out!.dims], data: result.mul_out!.data as Float32Array });
      const inMemory = await runBytes(encodeModel(model).modelBytes, 'in memory');
      expect(fromFiles.dims).toEqual([2, 3]);
      expect(hex(fromFiles.bytes())).toBe(hex(hostToTensor(inMemory.mul_out!).bytes()));
    } finally {
      await session.release();
    }
  });

  it('re-saves a model with external data elsewhere and over itself, keeping every tensor', () => {
    const dir = freshFolder();
    const file = path.join(dir, 'mlp.onnx');
    const model = smallMlp();
    saveModel(model, file, { externalDataThresholdBytes: 12 });

    // Tensors that were external stay external, now in a data file beside the new path.
    const elsewhere = path.join(freshFolder(), 'copy.onnx');
    saveModel(loadModel(file), elsewhere);
    expect(fs.readdirSync(path.dirname(elsewhere)).sort()).toEqual(['copy.onnx', 'copy.onnx.data']);
    expect(describeModel(loadModel(elsewhere))).toEqual(describeModel(model));

    // Saving over the source reads its external data before replacing the file holding it.
    saveModel(loadModel(file), file, { externalDataThresholdBytes: 12 });
    expect(fs.readdirSync(dir).sort()).toEqual(['mlp.onnx', 'mlp.onnx.data']);
    expect(describeModel(loadModel(file))).toEqual(describeModel(model));
  });

  it('writes every tensor inline when no threshold asks for external data', () => {
    const dir = freshFolder();
    saveModel(smallMlp(), path.join(dir, 'inline.onnx'));
    expect(fs.readdirSync(dir)).toEqual(['inline.onnx']);
    expect(loadModel(path.join(dir, 'inline.onnx')).graph.initializers.some((v) => v.initializer!.isExternal)).toBe(false);
  });

  /** Writes mlp.onnx into a fresh folder with its external data at `location`; returns the model path. */
  function modelWithLocation(location: string): string {
    const dir = freshFolder();
    const { modelBytes } = encodeModel(smallMlp(), { externalData: { location, thresholdBytes: 40 } });
    const file = path.join(dir, 'mlp.onnx');
    fs.writeFileSync(file, modelBytes);
    return file;
  }

  function expectExternalDataError(file: string, pattern: RegExp): void {
    const error = thrownBy(() => loadModel(file));
    expect(error).toBeInstanceOf(ExternalDataError);
    expectOneLine(error, `${file}: tensor "w": `);
    expect(error.message).toMatch(pattern);
  }

  it('refuses an absolute external data location, naming the tensor', () => {
    const outside = path.join(scratch, 'absolute.bin');
    fs.writeFileSync(outside, new Uint8Array(256));
    expectExternalDataError(modelWithLocation(outside), /is absolute/);
  });

  it('refuses a location that climbs out of the model folder with ".."', () => {
    fs.writeFileSync(path.join(scratch, 'x'), new Uint8Array(256));
    expectExternalDataError(modelWithLocation('../x'), /outside the model's folder/);
  });

  it('refuses a symlink inside the folder that points outside it', () => {
    const target = path.join(scratch, 'linked.bin');
    fs.writeFileSync(target, new Uint8Array(256));
    const file = modelWithLocation('weights.bin');
    fs.symlinkSync(target, path.join(path.dirname(file), 'weights.bin'));
    expectExternalDataError(file, /links outside the model's folder/);
  });

  it('reports a missing external data file in one line', () => {
    expectExternalDataError(modelWithLocation('missing.bin'), /"missing\.bin" does not exist/);
  });

  it('reports an external data file too short for the tensor', () => {
    const file = modelWithLocation('short.bin');
    fs.writeFileSync(path.join(path.dirname(file), 'short.bin'), new Uint8Array(10));
    expectExternalDataError(file, /needs bytes 0\.\.48 of "short\.bin", which has 10/);
  });
});

describe('bad model files', () => {
  it('names the file in a one-line ModelFormatError for a text file', () => {
    const file = path.join(freshFolder(), 'notes.onnx');
    fs.writeFileSync(file, 'this is not a model\nbut a note\n');
    const error = thrownBy(() => loadModel(file));
    expect(error).toBeInstanceOf(ModelFormatError);
    expectOneLine(error, `${file}: `);
  });

  it('names the file in a one-line ModelFormatError for a model cut in half', () => {
    const bytes = encodeModel(smallMlp()).modelBytes;
    const file = path.join(freshFolder(), 'half.onnx');
    fs.writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const error = thrownBy(() => loadModel(file));
    expect(error).toBeInstanceOf(ModelFormatError);
    expectOneLine(error, `${file}: `);
  });

  it('names the file in a one-line ModelFormatError for an empty file', () => {
    const file = path.join(freshFolder(), 'empty.onnx');
    fs.writeFileSync(file, '');
    const error = thrownBy(() => loadModel(file));
    expect(error).toBeInstanceOf(ModelFormatError);
    expectOneLine(error, `${file}: `);
    expect(error.message).toMatch(/is empty/);
  });

  it('gives a FileNotFoundError with code FILE_NOT_FOUND for a missing path', () => {
    const file = path.join(scratch, 'nowhere', 'model.onnx');
    const error = thrownBy(() => loadModel(file));
    expect(error).toBeInstanceOf(FileNotFoundError);
    expect((error as CondenseError).code).toBe('FILE_NOT_FOUND');
    expect((error as CondenseError).subject).toBe(file);
    expectOneLine(error, `${file}: `);
  });

  it('gives a ModelFormatError for a folder given as the model', () => {
    const dir = freshFolder();
    const error = thrownBy(() => loadModel(dir));
    expect(error).toBeInstanceOf(ModelFormatError);
    expectOneLine(error, `${dir}: `);
  });
});

describe('saveModel', () => {
  const leftovers = (dir: string): string[] => fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'));

  it('leaves only the finished model in the folder, holding the whole model', () => {
    const dir = freshFolder();
    const file = path.join(dir, 'model.onnx');
    const model = smallMlp();
    saveModel(model, file);
    expect(fs.readdirSync(dir)).toEqual(['model.onnx']);
    expect(hex(fs.readFileSync(file))).toBe(hex(encodeModel(model).modelBytes));
  });

  it('replaces an existing, larger file completely', () => {
    const dir = freshFolder();
    const file = path.join(dir, 'model.onnx');
    fs.writeFileSync(file, new Uint8Array(100_000).fill(7));
    const model = smallMlp();
    saveModel(model, file);
    expect(hex(fs.readFileSync(file))).toBe(hex(encodeModel(model).modelBytes));
    expect(describeModel(loadModel(file))).toEqual(describeModel(model));
    expect(leftovers(dir)).toEqual([]);
  });

  it('leaves no temporary file behind when the final rename fails', () => {
    const dir = freshFolder();
    // A non-empty folder where the model should go: the rename over it must fail.
    const target = path.join(dir, 'model.onnx');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep'), 'x');
    expect(() => saveModel(smallMlp(), target)).toThrow();
    expect(fs.readdirSync(dir)).toEqual(['model.onnx']);
    expect(fs.readdirSync(target)).toEqual(['keep']);
  });
});
