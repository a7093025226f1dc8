// The vectors the condensation measures compare: u_k = [w_k; b_k] (input weights with the bias,
// scaled as the op applies them) and a_k, the outgoing weights that consumers apply to neuron k.

import { axisToRows } from '../numeric/axis-slices.js';
import { constantNumbers, type NeuronLayer } from './find-layers.js';

/** u_k for each neuron: a width x dim row-major matrix (condensation.md, "Measures"). */
export function inputWeightVectors(layer: NeuronLayer): { rows: Float64Array; dim: number } {
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
