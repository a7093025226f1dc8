// Which layers are read-outs: their "neurons" are the model's outputs, so the condensation rules
// and the phase diagram treat them apart from hidden layers.

import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import type { NeuronLayer } from './find-layers.js';
import { producerRules, ruleFor } from './layer-rules.js';

/**
 * A linear read-out: no activation, no linear consumer, and no weight-bearing layer anywhere
 * downstream (logits, a regression output, a detection head behind Transpose/Reshape). A conv
 * whose output feeds a residual Add, a Concat or a gate is a hidden layer, not a read-out.
 */
export function isReadoutLayer(layer: NeuronLayer): boolean {
  if (layer.activation.name !== 'Identity' || layer.consumers.length > 0) return false;
  const seen = new Set<Value>();
  const queue: Value[] = [layer.activation.output];
  while (queue.length) {
    const v = queue.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    for (const { node } of v.uses()) {
      if (node === layer.producer || node === layer.biasNode) continue;
      if (isWeightLayer(node)) return false;
      queue.push(...node.outputs);
    }
  }
  return true;
}

function isWeightLayer(node: Node): boolean {
  const rule = ruleFor(producerRules, node);
  return !!rule && !!node.inputs[rule.weightInput]?.constantTensor();
}
