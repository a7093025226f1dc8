// Tensors as plain typed arrays on the host: what probe data, feeds and fetched outputs are made
// of. Independent of onnxruntime so analysis and tests can build them without a session.

import { DataType, dataTypeName } from '../ir/data-type.js';
import { float16BitsToFloat32 } from '../numeric/float16.js';

export type HostData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | BigUint64Array | string[];

export interface HostTensor {
  /** ONNX element type (DataType). */
  dataType: number;
  dims: number[];
  data: HostData;
}

/** Elements of a numeric host tensor as float64 (float16 travels as its bits and is decoded). */
export function hostToFloat64(t: HostTensor): Float64Array {
  if (Array.isArray(t.data)) throw new Error(`cannot read a ${dataTypeName(t.dataType)} tensor as numbers`);
  if (t.data instanceof Float64Array) return t.data;
  if (t.dataType === DataType.FLOAT16 && t.data instanceof Uint16Array) return Float64Array.from(t.data, float16BitsToFloat32);
  const out = new Float64Array(t.data.length);
  const d = t.data as ArrayLike<number | bigint>;
  for (let i = 0; i < out.length; i++) out[i] = Number(d[i]);
  return out;
}

/** True when hostArrayFor can make an array of this element type. */
export function hasHostArray(dataType: number): boolean {
  try {
    hostArrayFor(dataType, 0);
    return true;
  } catch {
    return false;
  }
}

/** Rows [from, to) along the first axis: a view when possible. */
export function sliceRows(t: HostTensor, from: number, to: number): HostTensor {
  const rows = t.dims[0] ?? 1;
  const per = rows === 0 ? 0 : t.data.length / rows;
  const dims = [to - from, ...t.dims.slice(1)];
  const data = Array.isArray(t.data) ? t.data.slice(from * per, to * per) : t.data.subarray(from * per, to * per);
  return { dataType: t.dataType, dims, data: data as HostData };
}

/** The typed array class that holds elements of an ONNX type on the host. */
export function hostArrayFor(dataType: number, length: number): HostData {
  switch (dataType) {
    case DataType.FLOAT: return new Float32Array(length);
    case DataType.DOUBLE: return new Float64Array(length);
    case DataType.INT64: return new BigInt64Array(length);
    case DataType.INT32: return new Int32Array(length);
    case DataType.UINT8: case DataType.BOOL: return new Uint8Array(length);
    case DataType.INT8: return new Int8Array(length);
    case DataType.UINT16: case DataType.FLOAT16: case DataType.BFLOAT16: return new Uint16Array(length);
    case DataType.INT16: return new Int16Array(length);
    case DataType.UINT32: return new Uint32Array(length);
    case DataType.UINT64: return new BigUint64Array(length);
    case DataType.STRING: return new Array<string>(length).fill('');
    default: throw new Error(`no host array for ${dataTypeName(dataType)}`);
  }
}
