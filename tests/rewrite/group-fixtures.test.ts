// The CNN fixtures laid out as exporters write them (fixtures/export-style-cnns.ts): `prune`
// removes every planted relation of every coupled group (expected.json's channelGroups), keeps the
// decoys, and verifies within 1e-5; the rewritten model loads and runs in onnxruntime; coverage
// says at least 95% of the neurons outside read-out layers are rewritable; and approximate mode
// writes a model onnxruntime loads, or refuses with a verification error.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FixtureExpectations } from '../../fixtures/fixture-expectations.js';
import { VerificationError } from '../../src/errors.js';
import { DataType } from '../../src/ir/data-type.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { inspect } from '../../src/pipeline/inspect.js';
import { prune } from '../../src/pipeline/prune.js';
import { hostToFloat64 } from '../../src/runtime/host-tensor.js';
import { ModelSession } from '../../src/runtime/model-session.js';
import { fixturePath } from '../helpers/cli-runner.js';
import { scratchFolder } from '../helpers/scratch-folder.js';

const scratch = scratchFolder('group-fixtures');
const expected = JSON.parse(fs.readFileSync(fixturePath('expected.json'), 'utf8')) as FixtureExpectations;
const entries = Object.entries(expected.models).filter(([, e]) => e.kind === 'export-cnn');

function concreteShape(shape: readonly (number | string)[]): number[] {
  return shape.map((d) => (typeof d === 'number' ? d : d === 'batch' ? 2 : 16));
}

describe('prune on the export-style CNN fixtures', () => {
  it('covers the six fixtures', () => {
    expect(entries.map(([f]) => f).sort()).toEqual(['efficientnet-mbconv.onnx', 'mobilenet-v2.onnx', 'mobilenet-v3.onnx', 'resnet-downsample.onnx', 'tf2onnx-nhwc.onnx', 'unet-concat.onnx']);
  });

  it.each(entries)('%s: at least 95% of the neurons outside read-out layers are rewritable', (file) => {
    const { coverage } = inspect(fixturePath(file));
    expect(coverage.rewritableShare).toBeGreaterThanOrEqual(0.95);
  });

  it.each(entries)('%s: every coupled group loses exactly its planted channels, verified within 1e-5, and the written model runs', async (file, expectation) => {
    const input = expectation.inputs[0]!;
    const shape = concreteShape(input.shape);
    const output = path.join(scratch.freshFolder(), file);
    const result = await prune(fixturePath(file), { output, probe: { random: 32, seed: 7, shapes: { [input.name]: shape } }, verify: { maxError: 1e-5 } });
    expect(result.fidelity.maxRelError).toBeLessThan(1e-5);
    for (const group of expectation.channelGroups ?? []) {
      const planned = result.plan.groups.find((g) => group.members.every((m) => g.members.includes(m)));
      const removed = group.width - group.expectedWidth;
      // The group's channel space may be wider than one member (Concat, padding); the count lost is what is planted.
      expect(planned ? planned.width - planned.widthAfter : 0, `${group.name}`).toBe(removed);
    }
    const session = await ModelSession.create(output, file);
    try {
      const rng = new SeededRandom(3);
      const count = shape.reduce((a, b) => a * b, 1);
      const outputs = await session.run({ [input.name]: { dataType: DataType.FLOAT, dims: shape, data: Float32Array.from({ length: count }, () => rng.gaussian()) } });
      for (const t of Object.values(outputs)) expect(hostToFloat64(t).every(Number.isFinite)).toBe(true);
    } finally {
      await session.release();
    }
  });

  it.each(entries)('%s: --approximate writes a model onnxruntime loads, or refuses with a verification error', async (file, expectation) => {
    const input = expectation.inputs[0]!;
    const output = path.join(scratch.freshFolder(), file);
    try {
      await prune(fixturePath(file), { output, probe: { random: 32, seed: 7, shapes: { [input.name]: concreteShape(input.shape) } }, merge: { approximate: true } });
      const session = await ModelSession.create(output, file);
      await session.release();
    } catch (error) {
      expect(error).toBeInstanceOf(VerificationError);
    }
  });
});
