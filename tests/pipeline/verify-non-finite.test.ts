// Verification compares non-finite outputs by rule: the same infinity at the same place is equal,
// anything else non-finite is a failure that no --max-error accepts.

import { describe, expect, it } from 'vitest';
import { DataType } from '../../src/ir/data-type.js';
import { Tensor } from '../../src/ir/tensor.js';
import { encodeModel } from '../../src/onnx/encode-model.js';
import { compareModels } from '../../src/runtime/verify-rewrite.js';
import { randomProbes } from '../../src/runtime/probe-data.js';
import { GraphBuilder } from '../helpers/graph-builder.js';

/** y = x * w, with w as given: an Inf weight makes an Inf (or NaN) output. */
function scaled(weights: number[]): Uint8Array {
  const b = new GraphBuilder('scale');
  const x = b.input('x', DataType.FLOAT, ['batch', weights.length]);
  const [y] = b.node('Mul', [x, b.initializer('w', Tensor.fromFloat32([weights.length], Float32Array.from(weights)))]);
  b.output(y!, DataType.FLOAT, ['batch', weights.length]);
  return encodeModel(b.build(13)).modelBytes;
}

describe('compareModels with non-finite outputs', () => {
  const b = new GraphBuilder('p');
  b.output(b.input('x', DataType.FLOAT, ['batch', 3]), DataType.FLOAT, ['batch', 3]);
  const probes = randomProbes(b.build(13), 8, { seed: 3 });

  it('fails when the original has Inf where the rewritten model is finite, instead of reporting an error of 0', async () => {
    const f = await compareModels(scaled([1, Infinity, 2]), scaled([1, 5, 2.9]), 'm', probes);
    expect(f.maxRelError).toBe(Infinity);
    expect(f.nonFinite).toMatchObject({ output: f.worstOutput, element: 1, original: Infinity });
    expect(f.nonFinite!.rewritten).toBeTypeOf("number");
    expect(f.maxRelError <= 1e-4).toBe(false);
  });

  it('accepts the same Inf at the same place and measures the finite elements around it', async () => {
    const f = await compareModels(scaled([1, Infinity, 2]), scaled([1, Infinity, 2]), 'm', probes);
    expect(f.nonFinite).toBeNull();
    expect(f.maxRelError).toBe(0);
    const g = await compareModels(scaled([1, Infinity, 2]), scaled([1, Infinity, 3]), 'm', probes);
    expect(g.nonFinite).toBeNull();
    expect(g.maxRelError).toBeGreaterThan(0.1);
  });
});
