// The vectors the condensation measures compare: u_k = [w_k; b_k] (input weights with the bias,
// scaled as the op applies them) and a_k, the outgoing weights that consumers apply to neuron k.

import { DataType } from '../ir/data-type.js';
import type { Tensor } from '../ir/tensor.js';
import { axisToRows } from '../numeric/axis-slices.js';
import { float16BitsToFloat32 } from '../numeric/float16.js';
import { constantNumbers, type NeuronLayer } from './find-layers.js';
import { gatedInputWeightVectors, gatedUnitInputWeights } from './gated-mlp.js';

/** u_k for each neuron: a width x dim row-major matrix (condensation.md, "Measures"). */
export function inputWeightVectors(layer: NeuronLayer): { rows: Float64Array; dim: number } {
  if (layer.gated) return gatedInputWeightVectors(layer.gated);
  const w = constantNumbers(layer.weight.value)!;
  const wRows = axisToRows(w, layer.weight.dims, layer.outAxis);
  const fanIn = wRows.length / layer.width;
  const hasBias = layer.bias !== undefined;
  const dim = fanIn + (hasBias ? 1 : 0);
  const rows = new Float64Array(layer.width * dim);
  const b = layer.bias ? constantNumbers(layer.bias.value)! : undefined;
  for (let k = 0; k < layer.width; k++) {
    for (let i = 0; i < fanIn; i++) rows[k * dim + i] = layer.weight.scale * wRows[k * fanIn + i]!;
    if (b) rows[k * dim + fanIn] = layer.bias!.scale * (layer.bias!.perNeuron ? b[k]! : b[0]!);
  }
  return { rows, dim };
}

/**
 * u_k / |u_k| in float32 and |u_k| in float64, read straight from the weight tensor: what a wide
 * layer's weight cosines need on the runtime's float32 GEMM, without the float64 copies
 * inputWeightVectors makes (for a 1536 x 1536 x 3 x 3 conv those are 3 x 170 MB). Zero rows stay
 * zero. The same numbers as normalising inputWeightVectors' rows and rounding them to float32.
 */
export function unitInputWeights(layer: NeuronLayer): { unit: Float32Array; norms: Float64Array; dim: number } {
  if (layer.gated) return gatedUnitInputWeights(layer.gated);
  const tensor = layer.weight.value.constantTensor()!;
  const w = floatElements(tensor);
  const dims = layer.weight.dims;
  const axis = layer.outAxis;
  const count = layer.width;
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const fanIn = outer * inner;
  const b = layer.bias ? constantNumbers(layer.bias.value)! : undefined;
  const dim = fanIn + (b ? 1 : 0);
  const scale = layer.weight.scale;
  const unit = new Float32Array(count * dim);
  const norms = new Float64Array(count);
  for (let k = 0; k < count; k++) {
    const biasValue = b ? layer.bias!.scale * (layer.bias!.perNeuron ? b[k]! : b[0]!) : 0;
    let sum = biasValue * biasValue;
    for (let o = 0; o < outer; o++) {
      const src = (o * count + k) * inner;
      for (let i = 0; i < inner; i++) {
        const x = scale * w[src + i]!;
        sum += x * x;
      }
    }
    const norm = Math.sqrt(sum);
    norms[k] = norm;
    if (norm === 0) continue;
    const row = k * dim;
    for (let o = 0; o < outer; o++) {
      const src = (o * count + k) * inner;
      const dst = row + o * inner;
      for (let i = 0; i < inner; i++) unit[dst + i] = (scale * w[src + i]!) / norm;
    }
    if (b) unit[row + fanIn] = biasValue / norm;
  }
  return { unit, norms, dim };
}

/** A float tensor's elements as float32 (float16 decoded as it is read, not through float64). */
function floatElements(t: Tensor): Float32Array {
  if (t.dataType === DataType.FLOAT) return t.toFloat32();
  if (t.dataType === DataType.FLOAT16) {
    const bytes = t.bytes();
    const out = new Float32Array(t.elementCount);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = float16BitsToFloat32(view.getUint16(2 * i, true));
    return out;
  }
  return Float32Array.from(t.toFloat64());
}

/** |a_k|: the norm of everything the consumers multiply neuron k by; undefined without consumers. */
export function outgoingWeightNorms(layer: NeuronLayer): Float64Array | undefined {
  if (layer.consumers.length === 0 || !layer.mergeable) return undefined;
  const norms = new Float64Array(layer.width);
  for (const c of layer.consumers) {
    const a = constantNumbers(c.weight.value)!;
    const rows = axisToRows(a, c.viewDims, c.inAxis);
    const len = rows.length / layer.width;
    for (let k = 0; k < layer.width; k++) {
      let s = 0;
      for (let i = 0; i < len; i++) s += rows[k * len + i]! ** 2;
      norms[k]! += s * c.weight.scale ** 2;
    }
  }
  return norms.map(Math.sqrt);
}
