// Condensation is defined for finite weights only: one Inf makes a layer's maximum amplitude
// infinite, every other neuron "static" and the report garbage. This check names every layer
// whose weights (its own, its bias, its consumers') hold a NaN or an infinity, or are empty (a
// layer of no neurons or no inputs has nothing to measure), before measuring.

import { ModelFormatError } from '../errors.js';
import { DataType } from '../ir/data-type.js';
import type { Value } from '../ir/value.js';
import { constantNumbers, type NeuronLayer, type WeightRef } from './find-layers.js';

/** Throws ModelFormatError naming `subject` and every layer with a non-finite weight. */
export function checkFiniteWeights(layers: readonly NeuronLayer[], subject: string): void {
  const problems: string[] = [];
  for (const layer of layers) {
    if (layer.width === 0 || layer.weight.dims.some((d) => d === 0)) {
      problems.push(`layer "${layer.name}" has an empty weight "${layer.weight.value.name}" (dims [${layer.weight.dims.join(', ')}])`);
      continue;
    }
    const parts = layer.gated ? [layer.gated.gate, layer.gated.up] : [layer];
    const refs: WeightRef[] = [...parts.flatMap((p) => [p.weight, ...(p.bias ? [p.bias] : [])]), ...layer.consumers.map((c) => c.weight)];
    for (const ref of refs) {
      const values = floatValues(ref.value);
      if (!values) continue;
      const k = firstNonFinite(values);
      if (k >= 0) {
        problems.push(`layer "${layer.name}" reads "${ref.value.name}", whose element ${k} is ${values[k]}`);
        break;
      }
    }
  }
  if (problems.length > 0) {
    throw new ModelFormatError(subject, `${problems.length === 1 ? problems[0] : `${problems.length} layers have unusable weights: ${problems.join('; ')}`}; condensation needs finite (non-NaN, non-Inf), non-empty weights`);
  }
}

/** A constant's numbers; float32 tensors are read as they are (no float64 copy of a wide layer's weights). */
function floatValues(v: Value): Float32Array | Float64Array | undefined {
  const t = v.constantTensor();
  if (t?.dataType === DataType.FLOAT) return t.toFloat32();
  return constantNumbers(v);
}

function firstNonFinite(values: Float32Array | Float64Array): number {
  for (let k = 0; k < values.length; k++) {
    const x = values[k]!;
    if (x - x !== 0) return k; // NaN and +-Infinity; x - x is 0 for every finite x
  }
  return -1;
}
