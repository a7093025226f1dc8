// Issue 3's acceptance: the planted-redundancy CNN fixtures prune to the channel counts the
// fixture script recorded, coupled channels merge only where every member agrees, every pruned
// model is verified, and audit reports the coupled groups and the MNIST conv condensation.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findLayers } from '../../src/analysis/find-layers.js';
import { loadModel } from '../../src/onnx/model-file.js';
import { fixturePath, runCliInProcess } from '../helpers/cli-runner.js';

interface ExpectedLayer {
  node: string;
  width: number;
  expectedWidth: number | null;
  isMergeable: boolean;
  notMergeableReasonClass?: string | null;
  channelGroup?: string | null;
}
interface ExpectedModel {
  inputs: { name: string; shape: (string | number)[] }[];
  layers: ExpectedLayer[];
  channelGroups?: { name: string; members: string[]; expectedWidth: number }[];
}
const expected = JSON.parse(fs.readFileSync(fixturePath('expected.json'), 'utf8')) as { models: Record<string, ExpectedModel> };

/** --shape for the first input, with dynamic dimensions set to 12. */
function shapeOption(model: ExpectedModel): string[] {
  const input = model.inputs[0]!;
  const dims = input.shape.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 1 : 12));
  return ['--shape', `${input.name}=${dims.join('x')}`];
}

const planted = ['resnet-planted.onnx', 'depthwise-separable.onnx', 'se-block.onnx', 'cnn-exporter.onnx'];

describe('pruning the planted CNN fixtures', () => {
  for (const file of planted) {
    it(`prunes ${file} to the recorded channel counts, verified to 1e-5`, async () => {
      const model = expected.models[file]!;
      const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'condense-cnn-')), 'pruned.onnx');
      const result = await runCliInProcess(['prune', fixturePath(file), '-o', out, '--random', '24', ...shapeOption(model), '--json']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const report = JSON.parse(result.stdout) as { fidelity: { maxRelError: number } };
      expect(report.fidelity.maxRelError).toBeLessThan(1e-5);
      const widths = Object.fromEntries(findLayers(loadModel(out)).map((l) => [l.name, l.width]));
      for (const layer of model.layers) {
        expect([layer.node, widths[layer.node]]).toEqual([layer.node, layer.expectedWidth ?? layer.width]);
      }
    });
  }

  it('reports the residual stream as one coupled group and the grouped, gated layers with their reasons', async () => {
    const resnet = JSON.parse((await runCliInProcess(['audit', fixturePath('resnet-planted.onnx'), '--json'])).stdout) as {
      layers: { name: string; coupledGroup: string | null }[];
      groups: { members: string[]; mergeable: boolean }[];
    };
    const recorded = expected.models['resnet-planted.onnx']!.channelGroups![0]!;
    expect(resnet.groups.map((g) => [...g.members].sort())).toEqual([[...recorded.members].sort()]);
    expect(resnet.groups[0]!.mergeable).toBe(true);
    for (const name of recorded.members) expect(resnet.layers.find((l) => l.name === name)!.coupledGroup).toBe('group1');

    const reasons = async (file: string): Promise<Record<string, string | null>> => {
      const r = JSON.parse((await runCliInProcess(['audit', fixturePath(file), '--json'])).stdout) as { layers: { name: string; reason: string | null }[] };
      return Object.fromEntries(r.layers.map((l) => [l.name, l.reason]));
    };
    const depthwise = await reasons('depthwise-separable.onnx');
    expect(depthwise.conv1).toMatch(/grouped convolution/);
    expect(depthwise.dw_conv).toMatch(/grouped convolution/);
    const se = await reasons('se-block.onnx');
    expect(se.conv1).toMatch(/gate/);
    expect(se.se_expand).toMatch(/gate/);
  });

  it('finds far fewer kernel clusters in the small-init MNIST conv than in the default-init one', async () => {
    const clusters = async (file: string): Promise<number> => {
      const r = JSON.parse((await runCliInProcess(['audit', fixturePath(file), '--json'])).stdout) as { layers: { name: string; clusters: { weight: number } }[] };
      return r.layers.find((l) => l.name === 'conv1')!.clusters.weight;
    };
    const small = await clusters('cnn-mnist-small-init.onnx');
    const standard = await clusters('cnn-mnist-default-init.onnx');
    expect(small).toBeLessThanOrEqual(3);
    expect(standard).toBeGreaterThanOrEqual(3 * small);
  });
});
