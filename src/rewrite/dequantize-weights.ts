// Pass: replace each DequantizeLinear of constants (QDQ weights: int8 or uint8 with a scale and a
// zero point, per tensor or per channel) by the float initializer it computes, under the same
// name, so the analysis copy measures quantized layers from their dequantized weights. Applied to
// the analysis copy only, before BatchNorm folding; the file on disk is never changed. The reverse
// pass, requantizeWeights, puts each DequantizeLinear back where its float weight is unchanged
// (quantized weights are never rewritten: find-layers blocks them), so a pruned QDQ model keeps
// its int8 weights.

import { dequantizedTensor, markDequantized } from '../analysis/dequantized-weight.js';
import type { Attribute } from '../ir/node.js';
import type { Model } from '../ir/model.js';
import type { Tensor } from '../ir/tensor.js';
import type { Value } from '../ir/value.js';

/** What a dequantized weight was: the DequantizeLinear's name, attributes and constant inputs. */
interface QuantizedOrigin {
  nodeName: string;
  domain: string;
  attributes: Attribute[];
  inputs: { name: string; tensor: Tensor }[];
}

// Keyed by the float tensor: model copies share tensors, and a rewritten weight is a new tensor.
const origins = new WeakMap<Tensor, QuantizedOrigin>();

/** Dequantizes every DequantizeLinear of constants in the main graph; returns the new float weights. */
export function dequantizeConstantWeights(model: Model): Value[] {
  const g = model.graph;
  const weights: Value[] = [];
  for (const node of [...g.nodes]) {
    const found = dequantizedTensor(node);
    const y = node.outputs[0];
    if (!found || !y || y.isGraphOutput || node.outputs.length !== 1) continue;
    const origin: QuantizedOrigin = {
      nodeName: node.name,
      domain: node.domain,
      attributes: [...node.attributes.values()],
      inputs: node.inputs.filter((v): v is Value => !!v).map((v) => ({ name: v.name, tensor: v.constantTensor()! })),
    };
    const name = y.name;
    const weight = g.addInitializer(`${name}/dequantized`, found.tensor);
    g.replaceAllUses(y, weight);
    g.removeNodes([node]);
    g.handOverName(y, weight, `${name}/quantized`);
    weight.initializer = weight.initializer!.withName(weight.name);
    origins.set(weight.initializer, origin);
    markDequantized(weight, { node, ...found.source });
    weights.push(weight);
  }
  if (weights.length) g.removeUnusedInitializers();
  return weights;
}

/**
 * Puts a DequantizeLinear of the original constants back in place of every float weight that
 * dequantizeConstantWeights made and nothing has changed since; returns how many.
 */
export function requantizeWeights(model: Model): number {
  const g = model.graph;
  let restored = 0;
  for (const weight of [...g.initializers]) {
    const origin = weight.initializer ? origins.get(weight.initializer) : undefined;
    if (!origin || weight.isGraphInput || weight.isGraphOutput) continue;
    const inputs = origin.inputs.map((i) => g.addInitializer(i.name, i.tensor));
    const node = g.addNode({ opType: 'DequantizeLinear', domain: origin.domain, name: origin.nodeName, inputs, outputs: [`${weight.name}/requantized`], attributes: origin.attributes });
    const y = node.outputs[0]!;
    g.replaceAllUses(weight, y);
    g.handOverName(weight, y, `${weight.name}/float`);
    restored++;
  }
  if (restored) {
    g.removeUnusedInitializers();
    g.topologicalSort();
  }
  return restored;
}
