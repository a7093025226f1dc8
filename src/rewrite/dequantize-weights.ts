// Pass: replace each DequantizeLinear of constants (QDQ weights: int8 or uint8 with a scale and a
// zero point, per tensor or per channel) by the float initializer it computes, under the same
// name, so the analysis copy measures quantized layers from their dequantized weights. Applied to
// the analysis copy only, before BatchNorm folding; the file on disk is never changed.

import { dequantizedTensor, markDequantized } from '../analysis/dequantized-weight.js';
import type { Model } from '../ir/model.js';
import type { Value } from '../ir/value.js';

/** Dequantizes every DequantizeLinear of constants in the main graph; returns the new float weights. */
export function dequantizeConstantWeights(model: Model): Value[] {
  const g = model.graph;
  const weights: Value[] = [];
  for (const node of [...g.nodes]) {
    const found = dequantizedTensor(node);
    const y = node.outputs[0];
    if (!found || !y || y.isGraphOutput || node.outputs.length !== 1) continue;
    const name = y.name;
    const weight = g.addInitializer(`${name}/dequantized`, found.tensor);
    g.replaceAllUses(y, weight);
    g.removeNodes([node]);
    g.handOverName(y, weight, `${name}/quantized`);
    weight.initializer = weight.initializer!.withName(weight.name);
    markDequantized(weight, { node, ...found.source });
    weights.push(weight);
  }
  if (weights.length) g.removeUnusedInitializers();
  return weights;
}
