// ONNX element types by their TensorProto.DataType numbers, and what the IR needs to know of each.

export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
} as const;
export type DataType = (typeof DataType)[keyof typeof DataType];

const byteSizes: Record<number, number> = {
  1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2,
  17: 1, 18: 1, 19: 1, 20: 1,
};

/** Bytes per element of a fixed-size type; undefined for strings and sub-byte types. */
export function dataTypeByteSize(dataType: number): number | undefined {
  return byteSizes[dataType];
}

/** The ONNX spelling of an element type, for messages ("float", "int64", ...). */
export function dataTypeName(dataType: number): string {
  const names: Record<number, string> = {
    0: 'undefined', 1: 'float', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64',
    8: 'string', 9: 'bool', 10: 'float16', 11: 'double', 12: 'uint32', 13: 'uint64', 14: 'complex64',
    15: 'complex128', 16: 'bfloat16', 17: 'float8e4m3fn', 18: 'float8e4m3fnuz', 19: 'float8e5m2',
    20: 'float8e5m2fnuz', 21: 'uint4', 22: 'int4',
  };
  return names[dataType] ?? `type ${dataType}`;
}

/** True for the floating-point types whose values the analysis can read as real numbers. */
export function isFloatType(dataType: number): boolean {
  return dataType === DataType.FLOAT || dataType === DataType.DOUBLE || dataType === DataType.FLOAT16 || dataType === DataType.BFLOAT16;
}
