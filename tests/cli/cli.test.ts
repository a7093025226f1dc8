// The `condense` commands run in process on the fixture models: what inspect, audit and prune print
// (as tables and as the JSON of docs/json-schema.md), checked against fixtures/expected.json, and
// the pruned models checked again in onnxruntime, independently of the tool's own verification.

import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import type { FixtureExpectations, LayerExpectation } from '../../fixtures/fixture-expectations.js';
import { findLayers, loadModel, type AuditReport, type PruneReport } from '../../src/index.js';
import { fixturePath, runCliInProcess, type CliResult } from '../helpers/cli-runner.js';

const expected = JSON.parse(fs.readFileSync(fixturePath('expected.json'), 'utf8')) as FixtureExpectations;

const scratch = fs.mkdtempSync(path.join(tmpdir(), 'condense-cli-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** Runs the CLI and fails with its stderr when it does not exit 0. */
async function succeed(args: string[]): Promise<CliResult> {
  const result = await runCliInProcess(args);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return result;
}

async function json<T>(args: string[]): Promise<T> {
  return JSON.parse((await succeed([...args, '--json'])).stdout) as T;
}

function layersOf(fixture: string): LayerExpectation[] {
  return expected.models[fixture]!.layers;
}

/** The table row of a layer: the line that starts with its name. */
function rowOf(table: string, layer: string): string {
  const row = table.split('\n').find((line) => line.startsWith(`${layer} `));
  expect(row, `a table row for ${layer}`).toBeDefined();
  return row!;
}

describe('condense inspect', () => {
  const file = fixturePath('mlp-layernorm.onnx');

  it('lists the ops, the parameter count, the layers and why fc1 and fc3 cannot be merged', async () => {
    const { stdout } = await succeed(['inspect', file]);
    const params = loadModel(file).parameterCount();
    expect(stdout).toContain(`${params.toLocaleString('en-US')} parameters`);
    const ops = stdout.split('\n').find((line) => line.startsWith('ops: '));
    // The decomposed LayerNorm shows up as its elementary ops.
    for (const op of ['Gemm 3', 'Relu 3', 'ReduceMean 2', 'Sqrt 1', 'MatMul 1']) expect(ops).toContain(op);
    for (const layer of layersOf('mlp-layernorm.onnx')) {
      const row = rowOf(stdout, layer.node);
      expect(row).toMatch(new RegExp(`\\b${layer.width}\\b`));
      expect(row.includes('  yes')).toBe(layer.isMergeable);
    }
    expect(rowOf(stdout, 'fc1')).toMatch(/no: .*(LayerNorm|ReduceMean)/);
    expect(rowOf(stdout, 'fc3')).toMatch(/no: .*"features" is a graph output/);
  });

  it('prints the same facts as JSON with the documented fields', async () => {
    interface InspectJson {
      schemaVersion: number; kind: string;
      model: { path: string; irVersion: number; opsetImports: { domain: string; version: number }[]; producer: string; params: number; nodes: number };
      inputs: { name: string; type: string }[];
      outputs: { name: string; type: string }[];
      ops: { opType: string; count: number }[];
      layers: { name: string; op: string; activation: string; width: number; consumers: string[]; mergeable: boolean; reason: string | null }[];
    }
    const report = await json<InspectJson>(['inspect', file]);
    expect(report).toMatchObject({ schemaVersion: 1, kind: 'inspect', model: { path: file, irVersion: 8, params: loadModel(file).parameterCount() } });
    expect(report.model.opsetImports).toContainEqual({ domain: '', version: 17 });
    expect(report.inputs.map((i) => i.name)).toEqual(['x']);
    expect(report.outputs.map((o) => o.name).sort()).toEqual(['features', 'y']);
    expect(report.ops).toContainEqual({ opType: 'ReduceMean', count: 2 });
    for (const layer of layersOf('mlp-layernorm.onnx')) {
      const found = report.layers.find((l) => l.name === layer.node)!;
      expect(found, layer.node).toMatchObject({ width: layer.width, mergeable: layer.isMergeable, activation: layer.activation });
      // The tool lists linear consumers only, so a layer feeding the LayerNorm has none.
      if (layer.isMergeable) expect(found.consumers).toEqual(layer.consumers);
      expect(found.reason === null).toBe(layer.isMergeable);
    }
    expect(report.layers.find((l) => l.name === 'fc1')!.reason).toMatch(/LayerNorm|ReduceMean/);
    expect(report.layers.find((l) => l.name === 'fc3')!.reason).toMatch(/graph output/);
  });

  it('shows layers tied by residual Adds as their channel group, in text and JSON, as audit does', async () => {
    const resnet = fixturePath('resnet-planted.onnx');
    const { stdout } = await succeed(['inspect', resnet]);
    for (const layer of ['stem_conv', 'block1_conv2', 'block2_conv2']) expect(rowOf(stdout, layer)).toMatch(/with group group1/);
    expect(rowOf(stdout, 'block1_conv1')).toMatch(/\byes\b/);
    expect(stdout).toMatch(/^group1: channels of stem_conv, block1_conv2, block2_conv2 are tied by block1_add, block2_add/m);
    const report = await json<{ layers: { name: string; coupledGroup: string | null }[]; groups: { id: string; members: string[] }[] }>(['inspect', resnet]);
    expect(report.groups).toEqual([expect.objectContaining({ id: 'group1', members: ['stem_conv', 'block1_conv2', 'block2_conv2'] })]);
    expect(report.layers.filter((l) => l.coupledGroup === 'group1').map((l) => l.name)).toEqual(['stem_conv', 'block1_conv2', 'block2_conv2']);
  });
});

describe('condense audit', () => {
  it('is data-free without probes: weight clusters per layer, no output clusters, and a note saying why', async () => {
    const file = fixturePath('mlp-relu-planted.onnx');
    const report = await json<AuditReport>(['audit', file]);
    expect(report).toMatchObject({ schemaVersion: 1, kind: 'audit', model: { path: file, params: loadModel(file).parameterCount() }, probe: null });
    expect(report.notes.some((n) => /output .*needs probe data/.test(n))).toBe(true);
    for (const layer of report.layers) {
      expect(Object.keys(layer)).toEqual(expect.arrayContaining(['name', 'op', 'activation', 'width', 'static', 'clusters', 'mergeable', 'reason']));
      expect(layer.clusters.output).toBeNull();
      expect(layer.clusters.weight).toBeGreaterThan(0);
      expect(layer.clusters.weight).toBeLessThanOrEqual(layer.width);
    }
    const fc1 = report.layers.find((l) => l.name === 'fc1')!;
    expect(fc1).toMatchObject({ op: 'Gemm', activation: 'Relu', width: 24, mergeable: true, reason: null });

    const { stdout } = await succeed(['audit', file]);
    expect(stdout).toMatch(/^note: data-free audit: output similarity needs probe data/m);
  });

  it.each(['mlp-relu-planted.onnx', 'mlp-tanh-planted.onnx', 'mlp-gelu-planted.onnx', 'mlp-layernorm.onnx'])(
    'counts each planted direction of %s once among the weight clusters',
    async (fixture) => {
      const report = await json<AuditReport>(['audit', fixturePath(fixture)]);
      for (const layer of layersOf(fixture)) {
        expect(report.layers.find((l) => l.name === layer.node)!.clusters.weight, layer.node).toBe(layer.directionCount);
      }
    },
  );

  it('measures output clusters on 64 seeded random probes with --random 64', async () => {
    const report = await json<AuditReport>(['audit', fixturePath('mnist-mlp.onnx'), '--random', '64']);
    expect(report.probe).toEqual({ samples: 64, source: 'random Gaussian (seed 0)' });
    expect(report.notes).toEqual([]);
    const fc1 = report.layers.find((l) => l.name === 'fc1')!;
    expect(fc1).toMatchObject({ op: 'MatMul+Add', width: 64, mergeable: true });
    expect(fc1.clusters.output).toBeGreaterThan(0);
    expect(fc1.clusters.output).toBeLessThanOrEqual(64);
  });

  it('measures output clusters on the MNIST probe digits with --probe, and prints them in the table', async () => {
    const probe = fixturePath('mnist-probe.npy');
    const report = await json<AuditReport>(['audit', fixturePath('mnist-mlp.onnx'), '--probe', probe]);
    expect(report.probe).toEqual({ samples: expected.data['mnist-probe.npy']!.shape[0], source: `file ${probe}` });
    const fc1 = report.layers.find((l) => l.name === 'fc1')!;
    expect(fc1.clusters.output).toBeGreaterThan(0);
    expect(fc1.clusters.output).toBeLessThanOrEqual(64);

    const { stdout } = await succeed(['audit', fixturePath('mnist-mlp.onnx'), '--probe', probe]);
    expect(stdout).toContain('256 probe samples');
    expect(rowOf(stdout, 'fc1')).toMatch(new RegExp(`\\b${fc1.clusters.output}\\b`));
    expect(stdout).not.toContain('note: data-free');
  });

  it.each([
    ['two-layer-small-init.onnx', 'two-layer-standard-init.onnx'],
    ['two-layer-4d-small-init.onnx', 'two-layer-4d-standard-init.onnx'],
  ])('finds far fewer weight clusters in %s than in %s', async (small, standard) => {
    const clusters = async (fixture: string): Promise<number> =>
      (await json<AuditReport>(['audit', fixturePath(fixture)])).layers.find((l) => l.name === 'fc1')!.clusters.weight;
    const [smallCount, standardCount] = [await clusters(small), await clusters(standard)];
    // The fixture script's own count (active neurons, average linkage, cos >= 0.95): 3 and 12 in
    // 1-D, 4 and 60 in 4-D. The tool clusters every neuron, so allow it a few more.
    const recorded = (fixture: string): number =>
      layersOf(fixture)[0]!.measured!.clusterCounts.find((c) => c.similarityThreshold === 0.95)!.clusterCount;
    expect(smallCount).toBeLessThanOrEqual(Math.max(6, recorded(small) + 3));
    expect(standardCount).toBeGreaterThanOrEqual(2 * smallCount);
    expect(standardCount).toBeGreaterThanOrEqual(recorded(standard) - 3);
  });
});

/** Runs a model file in onnxruntime on the same seeded inputs; returns every output, flattened. */
async function runModel(file: string, inputName: string, features: number): Promise<Record<string, Float32Array>> {
  const samples = 32;
  const x = Float32Array.from({ length: samples * features }, (_, i) => Math.sin(1.7 * i + 0.3) * 1.5);
  const session = await ort.InferenceSession.create(file, { logSeverityLevel: 3 });
  try {
    const results = await session.run({ [inputName]: new ort.Tensor('float32', x, [samples, features]) });
    return Object.fromEntries(Object.entries(results).map(([name, t]) => [name, t.data as Float32Array]));
  } finally {
    await session.release();
  }
}

describe('condense prune', () => {
  const planted = Object.entries(expected.models).filter(([, m]) => m.kind === 'planted').map(([file]) => file);

  it('has the four planted fixtures to prune', () => {
    expect(planted.sort()).toEqual(['mlp-gelu-planted.onnx', 'mlp-layernorm.onnx', 'mlp-relu-planted.onnx', 'mlp-tanh-planted.onnx']);
  });

  it.each(planted)('merges %s to exactly the widths in expected.json and writes a model onnxruntime runs alike', async (fixture) => {
    const input = fixturePath(fixture);
    const folder = fs.mkdtempSync(path.join(scratch, 'prune-'));
    const output = path.join(folder, fixture);
    const report = await json<PruneReport>(['prune', input, '-o', output]);

    expect(report).toMatchObject({ schemaVersion: 1, kind: 'prune', input, output });
    expect(report.params.after).toBeLessThan(report.params.before);
    expect(report.neurons.after).toBeLessThan(report.neurons.before);
    expect(report.fidelity.maxRelError).toBeLessThan(1e-5);
    expect(report.fidelity.maxAbsError).toBeGreaterThanOrEqual(0);
    expect(report.fidelity.samples).toBeGreaterThan(0);
    expect(report.fidelity.top1Agreement).toBe(1);
    for (const layer of layersOf(fixture)) {
      const planned = report.layers.find((l) => l.name === layer.node);
      if (layer.isMergeable) expect(planned, layer.node).toMatchObject({ width: layer.width, widthAfter: layer.expectedWidth });
      else expect(planned, `${layer.node} is not mergeable`).toBeUndefined();
    }
    const removed = layersOf(fixture).reduce((sum, l) => sum + l.width - l.expectedWidth!, 0);
    expect(report.neurons.before - report.neurons.after).toBe(removed);

    // The written file: only the model in the folder (no temporary or data files left behind),
    // each layer's weight and its consumers' weights cut to the expected width.
    expect(fs.readdirSync(folder)).toEqual([fixture]);
    const written = findLayers(loadModel(output));
    for (const layer of layersOf(fixture)) {
      const found = written.find((l) => l.name === layer.node)!;
      expect(found, layer.node).toBeDefined();
      expect(found.width, layer.node).toBe(layer.expectedWidth);
      expect(found.weight.dims[found.outAxis], `${layer.node} weight`).toBe(layer.expectedWidth);
      for (const consumer of found.consumers) expect(consumer.weight.dims[consumer.inAxis], `${consumer.node.label} weight`).toBe(layer.expectedWidth);
    }
    expect(loadModel(output).parameterCount()).toBe(report.params.after);

    // onnxruntime loads the file itself and agrees with the original on inputs the tool never saw.
    const signature = expected.models[fixture]!.inputs[0]!;
    const features = signature.shape[1] as number;
    const [before, after] = [await runModel(input, signature.name, features), await runModel(output, signature.name, features)];
    expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
    for (const [name, y] of Object.entries(before)) {
      const z = after[name]!;
      expect(z.length, name).toBe(y.length);
      let maxAbs = 0;
      let maxRef = 0;
      for (let i = 0; i < y.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(y[i]! - z[i]!));
        maxRef = Math.max(maxRef, Math.abs(y[i]!));
      }
      expect(maxAbs / maxRef, name).toBeLessThan(1e-5);
    }
  });

  it('prints a summary naming the output, the parameter change, the fidelity and each merged layer', async () => {
    const output = path.join(fs.mkdtempSync(path.join(scratch, 'summary-')), 'small.onnx');
    const { stdout } = await succeed(['prune', fixturePath('mlp-gelu-planted.onnx'), '-o', output]);
    expect(stdout).toContain(`-> ${output}`);
    expect(stdout).toMatch(/parameters 439 -> \d+ \(-\d+\.\d%\), neurons 32 -> 27/);
    expect(stdout).toMatch(/verified on \d+ held-out samples .*max rel error/);
    expect(rowOf(stdout, 'fc1')).toMatch(/^fc1\s+16\s+13\s.*exact$/);
    expect(rowOf(stdout, 'fc2')).toMatch(/^fc2\s+12\s+10\s.*exact$/);
    expect(fs.existsSync(output)).toBe(true);
  });

  it('plans and verifies with --dry-run but writes nothing', async () => {
    const folder = fs.mkdtempSync(path.join(scratch, 'dry-'));
    const report = await json<PruneReport>(['prune', fixturePath('mlp-tanh-planted.onnx'), '-o', path.join(folder, 'small.onnx'), '--dry-run']);
    expect(report.output).toBeNull();
    expect(report.layers.find((l) => l.name === 'fc1')!.widthAfter).toBe(layersOf('mlp-tanh-planted.onnx')[0]!.expectedWidth);
    expect(fs.readdirSync(folder)).toEqual([]);
  });
});

describe('condense --help', () => {
  it('lists the three commands and exits 0', async () => {
    const { code, stdout } = await runCliInProcess(['--help']);
    expect(code).toBe(0);
    for (const command of ['inspect', 'audit', 'prune']) expect(stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
  });
});
