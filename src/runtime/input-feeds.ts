// How each model input is fed beside the probe samples: pinned to a value the user gives
// (`--input sr=16000`), zeros for recurrent state, or drawn/read per sample with its batch on a
// named axis (`--batch-axis state=1`). Token-like integer inputs get values a model accepts:
// ids below the size of the embedding table they index, masks of ones, type ids of zeros.

import { OptionError } from '../errors.js';
import { DataType, dataTypeName } from '../ir/data-type.js';
import type { Model } from '../ir/model.js';
import type { Value } from '../ir/value.js';
import { hostArrayFor, type HostData, type HostTensor } from './host-tensor.js';

/** A value given on the command line: its shape ([] for a scalar) and its elements, row-major. */
export interface PinnedValue {
  dims: number[];
  values: number[];
}

/** Options shared by every probe source. */
export interface InputFeedOptions {
  /** Inputs fed the same value in every run, e.g. { sr: { dims: [], values: [16000] } }. */
  pinned?: Record<string, PinnedValue>;
  /** The axis that holds the samples, per input (default 0), e.g. { state: 1 }. */
  batchAxes?: Record<string, number>;
}

/** Parses "16000", "[1, 2, 3]" or "[[1,2],[3,4]]" into a pinned value; undefined when it is neither. */
export function parsePinnedValue(text: string): PinnedValue | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text.trim());
  } catch {
    return undefined;
  }
  const dims: number[] = [];
  const values: number[] = [];
  const walk = (x: unknown, depth: number): boolean => {
    if (typeof x === 'number') {
      if (depth !== dims.length) return false;
      values.push(x);
      return Number.isFinite(x);
    }
    if (!Array.isArray(x) || x.length === 0) return false;
    if (depth === dims.length) dims.push(x.length);
    else if (dims[depth] !== x.length) return false;
    return x.every((e) => walk(e, depth + 1));
  };
  return walk(parsed, 0) ? { dims, values } : undefined;
}

/** Host tensor of the input's element type holding a pinned value; an error message when it cannot. */
export function pinnedTensor(name: string, elemType: number, declared: { value?: number }[] | undefined, pin: PinnedValue): HostTensor {
  if (declared && declared.length !== pin.dims.length) {
    throw new OptionError('--input', `"${name}" has rank ${declared.length}, got a value of rank ${pin.dims.length} ([${pin.dims.join(', ')}]); a pinned input is fed as given, in every run`);
  }
  const clash = declared?.findIndex((d, i) => d.value !== undefined && d.value !== pin.dims[i]) ?? -1;
  if (clash >= 0) throw new OptionError('--input', `"${name}" has dimension ${clash} fixed at ${declared![clash]!.value}, got ${pin.dims[clash]}`);
  let data: HostData;
  try {
    data = hostArrayFor(elemType, pin.values.length);
  } catch {
    throw new OptionError('--input', `"${name}" has element type ${dataTypeName(elemType)}, which cannot be pinned`);
  }
  if (Array.isArray(data)) throw new OptionError('--input', `"${name}" has element type ${dataTypeName(elemType)}, which cannot be pinned`);
  const integer = !(data instanceof Float32Array || data instanceof Float64Array || elemType === DataType.FLOAT16 || elemType === DataType.BFLOAT16);
  if (elemType === DataType.FLOAT16 || elemType === DataType.BFLOAT16) throw new OptionError('--input', `"${name}" is ${dataTypeName(elemType)}; pinning half-precision inputs is not supported, give --probe files`);
  pin.values.forEach((v, i) => {
    if (integer && !Number.isInteger(v)) throw new OptionError('--input', `"${name}" is ${dataTypeName(elemType)}, got the non-integer ${v}`);
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) data[i] = BigInt(v);
    else (data as Float32Array)[i] = v;
  });
  return { dataType: elemType, dims: [...pin.dims], data };
}

const STATE_NAME = /(^|[^a-z])(state|states|hidden|h0|c0|hx|cx|past|cache)([^a-z]|$)|^(h|c)$/i;

/** True for a float input that reads like a recurrent state (state, h0, c0, past...): fed zeros unless data is given. */
export function looksLikeRecurrentState(name: string, elemType: number): boolean {
  return (elemType === DataType.FLOAT || elemType === DataType.DOUBLE) && STATE_NAME.test(name);
}

/** What random probes put into an integer input. */
export type IntegerFill = { kind: 'ids'; below: number; why: string } | { kind: 'ones'; why: string } | { kind: 'zeros'; why: string } | { kind: 'positions'; why: string };

const MASK_NAME = /mask/i;
const TYPE_IDS_NAME = /type_?ids|token_?type|segment/i;
const POSITION_NAME = /position_?ids|positions/i;

/**
 * How to fill an integer input with random probes: token ids below the row count of the
 * embedding table the input indexes (a Gather on a constant table, through Cast/Unsqueeze/Reshape),
 * attention masks with ones, token type ids with zeros, position ids with 0..L-1. Other integer
 * inputs (and booleans) get small values [0, 8).
 */
export function integerFill(model: Model, name: string, elemType: number): IntegerFill {
  if (MASK_NAME.test(name)) return { kind: 'ones', why: 'an attention mask: all ones' };
  if (TYPE_IDS_NAME.test(name)) return { kind: 'zeros', why: 'token type ids: all zeros' };
  if (POSITION_NAME.test(name)) return { kind: 'positions', why: 'position ids: 0, 1, 2, ... along the last axis' };
  const input = model.graph.inputs.find((v) => v.name === name);
  const table = input ? embeddingRows(input, 0) : undefined;
  if (table !== undefined) return { kind: 'ids', below: table, why: `token ids drawn uniformly from [0, ${table}), the rows of the embedding table it indexes` };
  return { kind: 'ids', below: elemType === DataType.BOOL ? 2 : 8, why: `small integers drawn from [0, ${elemType === DataType.BOOL ? 2 : 8})` };
}

const PASS_THROUGH = new Set(['Cast', 'Unsqueeze', 'Reshape', 'Squeeze', 'Flatten', 'Identity']);

function embeddingRows(v: Value, depth: number): number | undefined {
  if (depth > 4) return undefined;
  let rows: number | undefined;
  for (const { node, inputIndex } of v.uses()) {
    let found: number | undefined;
    if (node.opType === 'Gather' && inputIndex === 1 && node.getInt('axis', 0) === 0) found = node.inputs[0]?.constantTensor()?.dims[0];
    else if (PASS_THROUGH.has(node.opType) && inputIndex === 0 && node.outputs[0]) found = embeddingRows(node.outputs[0], depth + 1);
    if (found !== undefined) rows = rows === undefined ? found : Math.min(rows, found);
  }
  return rows;
}

/**
 * Moves the sample axis of `data` (laid out [n, ...sample]) to position `axis`: returns the data
 * laid out [...sample[0..axis), n, ...sample[axis..)].
 */
export function moveSampleAxis<T extends Exclude<HostData, string[]>>(data: T, n: number, sample: number[], axis: number): T {
  if (axis === 0) return data;
  const outer = sample.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = sample.slice(axis).reduce((a, b) => a * b, 1);
  const out = new (data.constructor as new (length: number) => T)(data.length);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < outer; o++) {
      const src = (i * outer + o) * inner;
      out.set(data.subarray(src, src + inner) as never, (o * n + i) * inner);
    }
  }
  return out;
}

/** Dims with the sample count `n` inserted at `axis` among the per-sample dims. */
export function dimsWithBatch(sample: number[], n: number, axis: number): number[] {
  return [...sample.slice(0, axis), n, ...sample.slice(axis)];
}
