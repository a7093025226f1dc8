// Weights stored quantized (QDQ): DequantizeLinear(x, scale, zero_point) of constants, as
// onnxruntime's quantizer and torch's QDQ export write them. The float weight it computes,
// y = (x - zero_point) * scale per tensor or per slice along `axis` (ONNX DequantizeLinear), is what
// the audit measures; which values were dequantized is remembered, so find-layers can say that prune
// does not rewrite them. Reads the IR only.

import { DataType, dataTypeName } from '../ir/data-type.js';
import type { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import type { Value } from '../ir/value.js';
import { blocker, type Blocker } from './blocker.js';

/** Where a dequantized weight came from: the quantized constant, its element type and the axis (null: per tensor). */
export interface QuantizedSource {
  node: Node;
  quantized: string;
  elemType: string;
  axis: number | null;
}

const QUANTIZED_TYPES: ReadonlySet<number> = new Set([DataType.INT8, DataType.UINT8, DataType.INT32, DataType.INT16, DataType.UINT16]);

/**
 * The float32 tensor a DequantizeLinear of constants computes, or undefined when an input is not a
 * constant, the type is not an integer one, or the scale's shape fits neither per-tensor nor per-axis.
 */
export function dequantizedTensor(node: Node): { tensor: Tensor; source: Omit<QuantizedSource, 'node'> } | undefined {
  if (!node.is('DequantizeLinear')) return undefined;
  const x = node.inputs[0]?.constantTensor();
  const scale = node.inputs[1]?.constantTensor();
  const zeroPointValue = node.inputs[2];
  const zeroPoint = zeroPointValue ? zeroPointValue.constantTensor() : undefined;
  if (!x || !scale || !QUANTIZED_TYPES.has(x.dataType) || (zeroPointValue && !zeroPoint)) return undefined;
  if (node.getInt('block_size', 0) !== 0) return undefined;
  const values = x.toFloat64();
  const scales = scale.toFloat64();
  const zeros = zeroPoint ? zeroPoint.toFloat64() : new Float64Array(scales.length);
  if (zeros.length !== scales.length) return undefined;
  const rank = x.dims.length;
  // One scale: per tensor. Otherwise one scale per slice along `axis` (default 1).
  let axis: number | null = null;
  let inner = 1;
  if (scales.length !== 1) {
    const a = node.getInt('axis', 1);
    axis = a < 0 ? a + rank : a;
    if (axis < 0 || axis >= rank || x.dims[axis] !== scales.length || scale.dims.length !== 1) return undefined;
    inner = x.dims.slice(axis + 1).reduce((n, d) => n * d, 1);
  }
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const k = axis === null ? 0 : Math.floor(i / inner) % scales.length;
    out[i] = (values[i]! - zeros[k]!) * scales[k]!;
  }
  const source = { quantized: node.inputs[0]!.name, elemType: dataTypeName(x.dataType), axis };
  return { tensor: Tensor.fromFloat32(x.dims, out), source };
}

const dequantized = new WeakMap<Value, QuantizedSource>();

/** Records that `weight` holds the dequantized values of `source` (the dequantize pass calls this). */
export function markDequantized(weight: Value, source: QuantizedSource): void {
  dequantized.set(weight, source);
}

export function dequantizedFrom(weight: Value): QuantizedSource | undefined {
  return dequantized.get(weight);
}

/** The blocker of a layer whose weights were stored quantized: audited from the dequantized values, never rewritten. */
export function quantizedWeightBlocker(weight: Value): Blocker | undefined {
  const source = dequantized.get(weight);
  if (!source) return undefined;
  const per = source.axis === null ? 'per tensor' : `per channel along axis ${source.axis}`;
  return blocker('quantized', `its weights are stored quantized (DequantizeLinear "${source.node.label}" of ${source.elemType} "${source.quantized}", ${per}): measured from the dequantized values; prune does not rewrite quantized weights`, source.node);
}
