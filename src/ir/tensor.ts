// A constant tensor: element type, dims and its data. The data may live in memory or in an
// external file that is read only when asked for, so a model larger than memory can be walked.

import { bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits } from '../numeric/float16.js';
import { DataType, dataTypeByteSize, dataTypeName } from './data-type.js';

/** Where a tensor's bytes come from: memory, strings, or a range of an external file. */
export type TensorSource =
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'strings'; strings: Uint8Array[] }
  | { kind: 'external'; location: string; offset: number; byteLength: number; read: () => Uint8Array };

export class Tensor {
  readonly dataType: number;
  readonly dims: readonly number[];
  name: string;
  docString: string;
  private source: TensorSource;

  constructor(dataType: number, dims: readonly number[], source: TensorSource, name = '', docString = '') {
    this.dataType = dataType;
    this.dims = [...dims];
    // Node Buffers' slice() returns a view, not a copy; keep plain Uint8Arrays so it always copies.
    if (source.kind === 'bytes' && Buffer.isBuffer(source.bytes)) {
      source = { kind: 'bytes', bytes: new Uint8Array(source.bytes.buffer, source.bytes.byteOffset, source.bytes.byteLength) };
    }
    this.source = source;
    this.name = name;
    this.docString = docString;
  }

  /** Number of elements: the product of dims (1 for a scalar). */
  get elementCount(): number {
    let count = 1;
    for (const d of this.dims) count *= d;
    return count;
  }

  /** True when the bytes stay in an external file until read. */
  get isExternal(): boolean {
    return this.source.kind === 'external';
  }

  /** The external file location relative to the model, when the data lives there. */
  get externalLocation(): string | undefined {
    return this.source.kind === 'external' ? this.source.location : undefined;
  }

  get byteLength(): number {
    if (this.source.kind === 'bytes') return this.source.bytes.byteLength;
    if (this.source.kind === 'external') return this.source.byteLength;
    return this.source.strings.reduce((n, s) => n + s.byteLength, 0);
  }

  /** Little-endian element bytes (what raw_data holds); reads external data on each call. */
  bytes(): Uint8Array {
    if (this.source.kind === 'bytes') return this.source.bytes;
    if (this.source.kind === 'external') return this.source.read();
    throw new Error(`tensor "${this.name}" holds strings, not bytes`);
  }

  /** The elements of a string tensor. */
  strings(): Uint8Array[] {
    if (this.source.kind !== 'strings') throw new Error(`tensor "${this.name}" holds ${dataTypeName(this.dataType)}, not strings`);
    return this.source.strings;
  }

  /** Elements as float64, whatever the numeric element type (int64 beyond 2^53 loses precision). */
  toFloat64(): Float64Array {
    const bytes = this.bytes();
    const count = this.elementCount;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = new Float64Array(count);
    const size = dataTypeByteSize(this.dataType);
    if (size === undefined || bytes.byteLength < size * count) {
      throw new Error(`tensor "${this.name}": ${dataTypeName(this.dataType)} data of ${bytes.byteLength} bytes does not hold ${count} elements`);
    }
    switch (this.dataType) {
      case DataType.FLOAT: for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true); break;
      case DataType.DOUBLE: for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, true); break;
      case DataType.FLOAT16: for (let i = 0; i < count; i++) out[i] = float16BitsToFloat32(view.getUint16(2 * i, true)); break;
      case DataType.BFLOAT16: for (let i = 0; i < count; i++) out[i] = bfloat16BitsToFloat32(view.getUint16(2 * i, true)); break;
      case DataType.INT8: for (let i = 0; i < count; i++) out[i] = view.getInt8(i); break;
      case DataType.UINT8: case DataType.BOOL: for (let i = 0; i < count; i++) out[i] = view.getUint8(i); break;
      case DataType.INT16: for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i, true); break;
      case DataType.UINT16: for (let i = 0; i < count; i++) out[i] = view.getUint16(2 * i, true); break;
      case DataType.INT32: for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, true); break;
      case DataType.UINT32: for (let i = 0; i < count; i++) out[i] = view.getUint32(4 * i, true); break;
      case DataType.INT64: for (let i = 0; i < count; i++) out[i] = Number(view.getBigInt64(8 * i, true)); break;
      case DataType.UINT64: for (let i = 0; i < count; i++) out[i] = Number(view.getBigUint64(8 * i, true)); break;
      default: throw new Error(`tensor "${this.name}": cannot read ${dataTypeName(this.dataType)} as numbers`);
    }
    return out;
  }

  /** Elements as float32 (a copy). */
  toFloat32(): Float32Array {
    if (this.dataType === DataType.FLOAT) {
      const bytes = this.bytes();
      return new Float32Array(bytes.slice(0, 4 * this.elementCount).buffer);
    }
    return Float32Array.from(this.toFloat64());
  }

  /** Elements as int64 bigints (for shape-like tensors). */
  toBigInt64(): BigInt64Array {
    if (this.dataType === DataType.INT64) {
      const bytes = this.bytes();
      return new BigInt64Array(bytes.slice(0, 8 * this.elementCount).buffer);
    }
    return BigInt64Array.from(this.toFloat64(), (x) => BigInt(Math.trunc(x)));
  }

  /** A tensor of the given element type holding these values, rounded to that type. */
  static fromNumbers(dataType: number, dims: readonly number[], values: ArrayLike<number>, name = ''): Tensor {
    const count = dims.reduce((a, b) => a * b, 1);
    if (values.length !== count) throw new Error(`tensor "${name}": ${values.length} values for dims [${dims.join(', ')}]`);
    const size = dataTypeByteSize(dataType);
    if (size === undefined) throw new Error(`tensor "${name}": cannot build ${dataTypeName(dataType)} from numbers`);
    const bytes = new Uint8Array(size * count);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < count; i++) {
      // values.length === count was checked above.
      const x = values[i]!;
      switch (dataType) {
        case DataType.FLOAT: view.setFloat32(4 * i, x, true); break;
        case DataType.DOUBLE: view.setFloat64(8 * i, x, true); break;
        case DataType.FLOAT16: view.setUint16(2 * i, float32ToFloat16Bits(x), true); break;
        case DataType.BFLOAT16: view.setUint16(2 * i, float32ToBfloat16Bits(x), true); break;
        case DataType.INT8: view.setInt8(i, x); break;
        case DataType.UINT8: case DataType.BOOL: view.setUint8(i, x); break;
        case DataType.INT16: view.setInt16(2 * i, x, true); break;
        case DataType.UINT16: view.setUint16(2 * i, x, true); break;
        case DataType.INT32: view.setInt32(4 * i, x, true); break;
        case DataType.UINT32: view.setUint32(4 * i, x, true); break;
        case DataType.INT64: view.setBigInt64(8 * i, BigInt(Math.trunc(x)), true); break;
        case DataType.UINT64: view.setBigUint64(8 * i, BigInt(Math.trunc(x)), true); break;
        default: throw new Error(`tensor "${name}": cannot build ${dataTypeName(dataType)} from numbers`);
      }
    }
    return new Tensor(dataType, dims, { kind: 'bytes', bytes }, name);
  }

  /** A float32 tensor that shares the given array's memory. */
  static fromFloat32(dims: readonly number[], values: Float32Array, name = ''): Tensor {
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    return new Tensor(DataType.FLOAT, dims, { kind: 'bytes', bytes }, name);
  }

  /** An int64 tensor (shapes, axes) from plain numbers. */
  static fromInt64(dims: readonly number[], values: ArrayLike<number | bigint>, name = ''): Tensor {
    const data = BigInt64Array.from(Array.from(values, (v) => BigInt(v)));
    return new Tensor(DataType.INT64, dims, { kind: 'bytes', bytes: new Uint8Array(data.buffer) }, name);
  }

  /** Same data and type under other dims or name; the bytes are shared, not copied. */
  withName(name: string): Tensor {
    return new Tensor(this.dataType, this.dims, this.source, name, this.docString);
  }
}
