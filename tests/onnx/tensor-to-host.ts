// Conversions between IR tensors (little-endian bytes) and host tensors (the typed arrays that
// onnxruntime-node feeds and returns), for tests that run decoded data through a session.

import { DataType, dataTypeName } from '../../src/ir/data-type.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { HostData, HostTensor } from '../../src/runtime/host-tensor.js';

type TypedArrayClass =
  | Float32ArrayConstructor | Float64ArrayConstructor | BigInt64ArrayConstructor | BigUint64ArrayConstructor
  | Int32ArrayConstructor | Uint32ArrayConstructor | Int16ArrayConstructor | Uint16ArrayConstructor
  | Int8ArrayConstructor | Uint8ArrayConstructor;

// onnxruntime-node's Tensor types: float16 travels as its bits in a Uint16Array, bool as bytes.
const arrayClassByDataType: Record<number, TypedArrayClass> = {
  [DataType.FLOAT]: Float32Array,
  [DataType.DOUBLE]: Float64Array,
  [DataType.FLOAT16]: Uint16Array,
  [DataType.INT64]: BigInt64Array,
  [DataType.UINT64]: BigUint64Array,
  [DataType.INT32]: Int32Array,
  [DataType.UINT32]: Uint32Array,
  [DataType.INT16]: Int16Array,
  [DataType.UINT16]: Uint16Array,
  [DataType.INT8]: Int8Array,
  [DataType.UINT8]: Uint8Array,
  [DataType.BOOL]: Uint8Array,
};

/** True when onnxruntime-node can feed and fetch tensors of this element type. */
export function isHostType(dataType: number): boolean {
  return dataType === DataType.STRING || arrayClassByDataType[dataType] !== undefined;
}

/** A host tensor holding a copy of the tensor's elements, in the array type onnxruntime-node wants. */
export function tensorToHost(tensor: Tensor): HostTensor {
  const dims = [...tensor.dims];
  if (tensor.dataType === DataType.STRING) {
    const decoder = new TextDecoder();
    return { dataType: tensor.dataType, dims, data: tensor.strings().map((s) => decoder.decode(s)) };
  }
  const ArrayClass = arrayClassByDataType[tensor.dataType];
  if (!ArrayClass) throw new Error(`tensor "${tensor.name}": onnxruntime-node has no host type for ${dataTypeName(tensor.dataType)}`);
  // slice() copies into a fresh buffer at offset 0, so the typed array view is aligned.
  const bytes = tensor.bytes().slice();
  return { dataType: tensor.dataType, dims, data: new ArrayClass(bytes.buffer, 0, tensor.elementCount) as HostData };
}

/** The host tensor's elements as an IR tensor (bytes copied). */
export function hostToTensor(host: HostTensor, name = ''): Tensor {
  if (Array.isArray(host.data)) {
    const encoder = new TextEncoder();
    return new Tensor(host.dataType, host.dims, { kind: 'strings', strings: host.data.map((s) => encoder.encode(s)) }, name);
  }
  const view = host.data;
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
  return new Tensor(host.dataType, host.dims, { kind: 'bytes', bytes }, name);
}
