// Which layers are read-outs: their "neurons" are the model's outputs, so the condensation rules
// and the phase diagram treat them apart from hidden layers.

import type { NeuronLayer } from './find-layers.js';

/** A linear read-out: no activation, and no linear layer reads it (logits, a regression output). */
export function isReadoutLayer(layer: NeuronLayer): boolean {
  return layer.activation.name === 'Identity' && layer.consumers.length === 0;
}
