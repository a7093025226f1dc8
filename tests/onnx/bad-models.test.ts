// Hostile models are bad input: each is refused with one ModelFormatError / ExternalDataError line
// naming what is wrong, never a crash (a TypeError, RangeError or stack overflow is exit 70).

import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, describe, expect, it } from 'vitest';
import { CondenseError } from '../../src/errors.js';
import { decodeModel } from '../../src/onnx/decode-model.js';
import { loadModel } from '../../src/onnx/model-file.js';

const { onnx } = onnxProto;
const FLOAT = 1;

type GraphSpec = Parameters<typeof onnx.GraphProto.create>[0];

function modelBytes(graph: GraphSpec, opset = 13): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: opset }], graph })).finish();
}

const io = (name: string, dims: number[] = [2]) => ({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });

/** The error decodeModel throws on these bytes (fails the test when it throws none). */
function refusal(bytes: Uint8Array, file = 'bad.onnx'): CondenseError {
  try {
    decodeModel(bytes, { path: file });
  } catch (error) {
    if (error instanceof CondenseError) {
      expect(error.message).not.toContain('\n');
      return error;
    }
    throw error;
  }
  throw new Error('decodeModel accepted the model');
}

const folders: string[] = [];
afterAll(() => folders.forEach((f) => fs.rmSync(f, { recursive: true, force: true })));

describe('decodeModel refuses broken tensors as bad input', () => {
  const withInitializer = (t: object) => modelBytes({ name: 'g', input: [io('x')], output: [io('y')], initializer: [{ name: 'w', dataType: FLOAT, ...t }], node: [{ opType: 'Add', input: ['x', 'w'], output: ['y'] }] });

  it('refuses raw_data shorter than its dims need, naming the tensor', () => {
    const e = refusal(withInitializer({ dims: [4], rawData: new Uint8Array(8) }));
    expect(e.code).toBe('BAD_MODEL');
    expect(e.message).toMatch(/tensor "w".*raw_data holds 8 bytes; expected 16/);
  });

  it('refuses dims of 2^40 elements and negative dims', () => {
    expect(refusal(withInitializer({ dims: [2 ** 20, 2 ** 20], rawData: new Uint8Array(8) })).message).toMatch(/tensor "w".*dims \[1048576, 1048576\]/);
    expect(refusal(withInitializer({ dims: [-2], rawData: new Uint8Array(8) })).message).toMatch(/tensor "w".*dim -2 is negative/);
    expect(refusal(withInitializer({ dims: [2 ** 40], floatData: [1, 2] })).message).toMatch(/tensor "w"/);
  });

  it('refuses a TENSOR or GRAPH attribute without its value', () => {
    const node = (type: number) => modelBytes({ name: 'g', output: [io('y')], node: [{ opType: 'Constant', output: ['y'], attribute: [{ name: 'value', type }] }] });
    expect(refusal(node(onnx.AttributeProto.AttributeType.TENSOR)).message).toMatch(/attribute "value" of node "Constant\(y\)" is a TENSOR without its value/);
    expect(refusal(node(onnx.AttributeProto.AttributeType.GRAPH)).message).toMatch(/attribute "value" .* GRAPH without its value/);
  });

  it('refuses an external-data location that is a folder', () => {
    const dir = fs.mkdtempSync(path.join(tmpdir(), 'condense-bad-'));
    folders.push(dir);
    fs.mkdirSync(path.join(dir, 'weights'));
    const bytes = withInitializer({ dims: [2], dataLocation: 1, externalData: [{ key: 'location', value: 'weights' }] });
    fs.writeFileSync(path.join(dir, 'm.onnx'), bytes);
    let error: unknown;
    try {
      loadModel(path.join(dir, 'm.onnx'));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CondenseError);
    expect((error as CondenseError).code).toBe('BAD_EXTERNAL_DATA');
    expect((error as Error).message).toMatch(/"weights" is a folder; expected a file/);
  });
});

describe('decodeModel refuses broken graphs as bad input', () => {
  it('refuses subgraphs nested 3000 deep with a clear limit instead of a stack overflow', () => {
    // Written by hand, level by level: protobufjs's own encoder recurses and would overflow first.
    const cond = onnx.ValueInfoProto.encode({ name: 'cond', type: { tensorType: { elemType: 9, shape: { dim: [] } } } }).finish();
    const out = onnx.ValueInfoProto.encode(io('o')).finish();
    const leaf = onnx.GraphProto.encode({ name: 'leaf', output: [io('o')], node: [{ opType: 'Constant', output: ['o'], attribute: [{ name: 'value', type: 4, t: { dims: [2], dataType: FLOAT, floatData: [1, 2] } }] }] }).finish();
    let graph = leaf;
    for (let i = 0; i < 3000; i++) {
      const attribute = (name: string, g: Uint8Array) => concat(text(1, name), field(6, g), Uint8Array.of(20 << 3, 5));
      const node = concat(text(1, 'cond'), text(2, 'o'), text(4, 'If'), field(5, attribute('then_branch', graph)), field(5, attribute('else_branch', leaf)));
      graph = concat(field(1, node), text(2, `g${i}`), field(11, cond), field(12, out));
    }
    const head = onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: '', version: 13 }] }).finish();
    const e = refusal(concat(head, field(7, graph)));
    expect(e.code).toBe('BAD_MODEL');
    expect(e.message).toMatch(/subgraphs nested more than \d+ deep/);
  });

  it('refuses a node that consumes its own output (a cycle), naming the node', () => {
    const e = refusal(modelBytes({ name: 'g', input: [io('x')], output: [io('y')], node: [{ opType: 'Add', name: 'loop', input: ['x', 'y'], output: ['y'] }] }));
    expect(e.message).toMatch(/cycle through node "loop"/);
  });

  it('refuses a cycle through two nodes', () => {
    const e = refusal(modelBytes({ name: 'g', input: [io('x')], output: [io('b')], node: [{ opType: 'Add', name: 'n1', input: ['x', 'b'], output: ['a'] }, { opType: 'Relu', name: 'n2', input: ['a'], output: ['b'] }] }));
    expect(e.message).toMatch(/cycle through node "n[12]"/);
  });

  it('reports a value written by two nodes, naming both', () => {
    const e = refusal(modelBytes({ name: 'g', input: [io('x')], output: [io('y')], node: [{ opType: 'Relu', name: 'first', input: ['x'], output: ['y'] }, { opType: 'Neg', name: 'second', input: ['x'], output: ['y'] }] }));
    expect(e.message).toMatch(/value "y" is written by node "first" and again by node "second"/);
  });
});

function varint(n: number): number[] {
  const bytes: number[] = [];
  while (n >= 0x80) {
    bytes.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  bytes.push(n);
  return bytes;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A length-delimited protobuf field. */
function field(number: number, bytes: Uint8Array): Uint8Array {
  return concat(Uint8Array.from([...varint((number << 3) | 2), ...varint(bytes.length)]), bytes);
}

const text = (number: number, s: string): Uint8Array => field(number, new TextEncoder().encode(s));
