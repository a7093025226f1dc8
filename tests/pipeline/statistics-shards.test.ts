// Statistics in shards: `condense collect` on four parts of the probes, merged with --stats, gives
// the report of one run over all of them; shards of another model, and damaged files, are refused.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataType } from '../../src/ir/data-type.js';
import type { Model } from '../../src/ir/model.js';
import type { Value } from '../../src/ir/value.js';
import { Tensor } from '../../src/ir/tensor.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { loadModel, saveModel } from '../../src/onnx/model-file.js';
import { GraphBuilder, ints } from '../helpers/graph-builder.js';
import { collectLayerStatistics } from '../../src/pipeline/collect-layer-statistics.js';
import { expandStatisticsPaths, readStatisticsShards } from '../../src/pipeline/statistics-shards.js';
import { decodeStatisticsFile, encodeStatisticsFile } from '../../src/runtime/statistics-file.js';
import { findWatchedLayers } from '../../src/pipeline/watched-layers.js';
import { decodeStatisticsFile, encodeStatisticsFile } from '../../src/runtime/statistics-file.js';
import { foldBatchNorms } from '../../src/rewrite/fold-batch-norms.js';
import { decodeNpy, encodeNpy } from '../../src/runtime/npy.js';
import { loadProbeFiles, randomProbes } from '../../src/runtime/probe-data.js';
import { fixturePath, runCliInProcess } from '../helpers/cli-runner.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-shards-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Writes `all` (first axis = samples) to all.npy and four consecutive shard-k.npy files; returns their paths. */
function writeShards(prefix: string, shape: number[], data: Float32Array): { all: string; shards: string[] } {
  const all = path.join(dir, `${prefix}-all.npy`);
  fs.writeFileSync(all, encodeNpy({ dtype: 'float32', shape, data }));
  const perSample = data.length / shape[0]!;
  const bounds = [0, 1, 2, 3, 4].map((k) => Math.round((k * shape[0]!) / 4));
  const shards = [0, 1, 2, 3].map((k) => {
    const file = path.join(dir, `${prefix}-shard-${k}.npy`);
    fs.writeFileSync(file, encodeNpy({ dtype: 'float32', shape: [bounds[k + 1]! - bounds[k]!, ...shape.slice(1)], data: data.slice(bounds[k]! * perSample, bounds[k + 1]! * perSample) }));
    return file;
  });
  return { all, shards };
}

async function collectAll(model: string, prefix: string, shards: string[]): Promise<string> {
  for (const [k, shard] of shards.entries()) {
    const r = await runCliInProcess(['collect', model, '--probe', shard, '-o', path.join(dir, `${prefix}-shard-${k}.stats`)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }
  return path.join(dir, `${prefix}-shard-*.stats`);
}

const cases = [
  {
    name: 'an MLP on MNIST digits',
    strided: false,
    model: fixturePath('mnist-mlp.onnx'),
    probes: (): { shape: number[]; data: Float32Array } => {
      const probe = decodeNpy(fs.readFileSync(fixturePath('mnist-probe.npy')), 'mnist-probe.npy');
      return { shape: [...probe.shape], data: Float32Array.from(probe.data as Float32Array) };
    },
  },
  {
    name: 'a residual CNN',
    model: fixturePath('resnet-planted.onnx'),
    strided: false,
    probes: (): { shape: number[]; data: Float32Array } => {
      const model = loadModel(fixturePath('resnet-planted.onnx'));
      const set = randomProbes(model, 96, { seed: 4, shapes: { input: [1, 3, 16, 16] } });
      return { shape: [96, 3, 16, 16], data: set.inputs.input!.data as Float32Array };
    },
  },
  {
    name: 'a conv stem whose first layer keeps every few positions',
    get model(): string {
      const file = path.join(dir, 'stem.onnx');
      if (!fs.existsSync(file)) saveModel(stem(), file);
      return file;
    },
    strided: true,
    probes: (): { shape: number[]; data: Float32Array } => {
      const set = randomProbes(stem(), 48, { seed: 5 });
      return { shape: [48, 3, 64, 64], data: set.inputs.x!.data as Float32Array };
    },
  },
];

/** x[N, 3, 64, 64] -> Conv 3x3 (3 -> 32) -> Relu -> Conv 3x3 (32 -> 32) -> Relu: conv1's statistics are position-strided. */
function stem(): Model {
  const random = new SeededRandom(3);
  const b = new GraphBuilder('stem');
  let x = b.input('x', DataType.FLOAT, ['N', 3, 64, 64]);
  const typed: Value[] = [];
  for (const [name, cin] of [['conv1', 3], ['conv2', 32]] as const) {
    const w = b.initializer(`${name}_w`, Tensor.fromFloat32([32, cin, 3, 3], Float32Array.from({ length: 32 * cin * 9 }, () => random.gaussian() * 0.2)));
    const [z] = b.node('Conv', [x, w], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) }, { name });
    z!.type = { kind: 'tensor', elemType: DataType.FLOAT, shape: [{ param: 'N' }, { value: 32 }, { value: 64 }, { value: 64 }] };
    x = b.node('Relu', [z!], {}, { name: `${name}_relu` })[0]!;
    x!.type = z!.type;
    typed.push(z!, x!);
  }
  b.output(x!, DataType.FLOAT);
  const model = b.build(13);
  // Saved shapes, so the loaded file knows each map's positions (and conv1 gets its stride).
  model.graph.valueInfos.push(...typed.slice(0, -1));
  return model;
}

describe.each(cases)('four shards of $name merged with --stats', (c) => {
  it('give the same clusters as one audit over all the probes, and moments equal to rounding', async () => {
    const { model, probes, strided } = c;
    const prefix = path.basename(model, '.onnx');
    const { shape, data } = probes();
    const { all, shards } = writeShards(prefix, shape, data);
    const pattern = await collectAll(model, prefix, shards);

    const single = await runCliInProcess(['audit', model, '--probe', all, '--json']);
    const merged = await runCliInProcess(['audit', model, '--stats', pattern, '--json']);
    expect(single.code).toBe(0);
    expect(merged.code).toBe(0);
    const a = JSON.parse(single.stdout) as { layers: { name: string; clusters: unknown; clusterSizes: unknown }[]; probe: { samples: number } };
    const b = JSON.parse(merged.stdout) as typeof a;
    expect(b.probe.samples).toBe(a.probe.samples);
    expect(b.layers.map((l) => [l.name, l.clusters, l.clusterSizes])).toEqual(a.layers.map((l) => [l.name, l.clusters, l.clusterSizes]));
    expect(a.layers.some((l) => (l.clusters as { output: number | null }).output !== null)).toBe(true);

    // --workers 4: the same four ranges collected in worker threads of one process.
    const threaded = await runCliInProcess(['audit', model, '--probe', all, '--workers', '4', '--json']);
    expect(threaded.stderr).toBe('');
    const t = JSON.parse(threaded.stdout) as typeof a;
    expect(t.layers.map((l) => [l.name, l.clusters, l.clusterSizes])).toEqual(a.layers.map((l) => [l.name, l.clusters, l.clusterSizes]));

    // The moments themselves, against one collection over every probe.
    const original = loadModel(model);
    const folded = loadModel(model);
    foldBatchNorms(folded);
    // Layers and the group tensors consumers read (approximate group merges refit on those).
    const { layers, watched } = findWatchedLayers(folded);
    const direct = await collectLayerStatistics(folded, model, watched, loadProbeFiles(folded, [all]));
    const fromShards = readStatisticsShards([pattern], original, layers, watched);
    expect(fromShards.statistics.size).toBe(watched.length);
    expect(fromShards.files).toHaveLength(4);
    expect([...fromShards.statistics.positionStrides.values()].some((s) => s > 1)).toBe(strided);
    expect(fromShards.samples).toBe(shape[0]);
    expect([...fromShards.statistics.keys()]).toEqual([...direct.keys()]);
    expect([...fromShards.statistics.positionStrides]).toEqual([...direct.positionStrides]);
    for (const [name, m] of direct) {
      const s = fromShards.statistics.get(name)!;
      expect(s.count).toBe(m.count);
      const scale = m.scatter.reduce((x, v) => Math.max(x, Math.abs(v)), 0);
      const scatterError = m.scatter.reduce((x, v, k) => Math.max(x, Math.abs(v - s.scatter[k]!)), 0);
      const meanScale = m.mean.reduce((x, v) => Math.max(x, Math.abs(v)), 1e-30);
      const meanError = m.mean.reduce((x, v, k) => Math.max(x, Math.abs(v - s.mean[k]!)), 0);
      // The heads run their GEMMs in float32, and the shards' batches differ from the single run's.
      expect(scatterError / scale).toBeLessThan(2e-5);
      expect(meanError / meanScale).toBeLessThan(2e-5);
    }
  });
});

describe('statistics files that do not belong together', () => {
  it('are refused with exit 2 and one line naming the shard from another model', async () => {
    const model = fixturePath('mlp-relu-planted.onnx');
    const other = fixturePath('mlp-layernorm.onnx');
    const probe = randomProbes(loadModel(model), 32, { seed: 1 });
    const file = path.join(dir, 'mix-probe.npy');
    fs.writeFileSync(file, encodeNpy({ dtype: 'float32', shape: [32, 8], data: probe.inputs.x!.data as Float32Array }));
    expect((await runCliInProcess(['collect', model, '--probe', file, '-o', path.join(dir, 'mix-0.stats')])).code).toBe(0);
    expect((await runCliInProcess(['collect', other, '--probe', file, '-o', path.join(dir, 'mix-1.stats')])).code).toBe(0);
    const r = await runCliInProcess(['audit', model, '--stats', path.join(dir, 'mix-*.stats')]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/mix-1\.stats: was collected on another model/);
    const pruned = path.join(dir, 'mix-pruned.onnx');
    const p = await runCliInProcess(['prune', model, '--stats', path.join(dir, 'mix-*.stats'), '-o', pruned]);
    expect(p.code).toBe(2);
    expect(fs.existsSync(pruned)).toBe(false);
  });

  it('are refused when collected with other settings, naming both files', async () => {
    const model = fixturePath('mlp-relu-planted.onnx');
    const { header, moments } = decodeStatisticsFile(fs.readFileSync(path.join(dir, 'mix-0.stats')), 'mix-0.stats');
    const file = path.join(dir, 'settings-1.stats');
    fs.copyFileSync(path.join(dir, 'mix-0.stats'), path.join(dir, 'settings-0.stats'));
    fs.writeFileSync(file, Buffer.concat(encodeStatisticsFile({ ...header, settings: { positionSampling: false } }, moments)));
    const r = await runCliInProcess(['audit', model, '--stats', path.join(dir, 'settings-*.stats')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/settings-1\.stats: was collected with other settings than .*settings-0\.stats/);
  });

  it('are refused when corrupted, truncated or not statistics at all (exit 2, never 70)', async () => {
    const model = fixturePath('mlp-relu-planted.onnx');
    const good = path.join(dir, 'mix-0.stats');
    if (!fs.existsSync(good)) {
      const file = path.join(dir, 'bad-probe.npy');
      fs.writeFileSync(file, encodeNpy({ dtype: 'float32', shape: [32, 8], data: randomProbes(loadModel(model), 32, { seed: 1 }).inputs.x!.data as Float32Array }));
      expect((await runCliInProcess(['collect', model, '--probe', file, '-o', good])).code).toBe(0);
    }
    const bytes = fs.readFileSync(good);
    const flipped = Uint8Array.from(bytes);
    flipped[bytes.length - 100] = flipped[bytes.length - 100]! ^ 0x40;
    const variants: [string, Uint8Array, RegExp][] = [
      ['flipped.stats', flipped, /corrupted or truncated/],
      ['truncated.stats', bytes.subarray(0, bytes.length - 37), /corrupted or truncated/],
      ['short.stats', bytes.subarray(0, 20), /truncated|not an onnx-condense/],
      ['model.stats', fs.readFileSync(model), /not an onnx-condense statistics file/],
    ];
    for (const [name, content, message] of variants) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, content);
      const r = await runCliInProcess(['audit', model, '--stats', file]);
      expect(r.code, name).toBe(2);
      expect(r.stderr, name).toMatch(message);
      expect(r.stderr.trim().split('\n'), name).toHaveLength(1);
    }
    const none = await runCliInProcess(['audit', model, '--stats', path.join(dir, 'nothing-*.stats')]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--stats: no file matches/);
  });

  it('merge into a prune that verifies and writes the smaller model', async () => {
    const model = fixturePath('mlp-relu-planted.onnx');
    const probe = randomProbes(loadModel(model), 256, { seed: 2 });
    const { shards } = writeShards('prune', [256, 8], probe.inputs.x!.data as Float32Array);
    const pattern = await collectAll(model, 'prune', shards);
    const output = path.join(dir, 'pruned.onnx');
    const r = await runCliInProcess(['prune', model, '--stats', pattern, '-o', output, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { neurons: { before: number; after: number } };
    expect(report.neurons.after).toBeLessThan(report.neurons.before);
    expect(fs.existsSync(output)).toBe(true);
  });

  it('carry the group tensors, so a budgeted prune from shards cuts coupled groups as one run over the probes does', async () => {
    const model = fixturePath('resnet-planted.onnx');
    const probe = randomProbes(loadModel(model), 128, { seed: 5, shapes: { input: [1, 3, 16, 16] } });
    const { shards } = writeShards('groups', [128, 3, 16, 16], probe.inputs.input!.data as Float32Array);
    const pattern = await collectAll(model, 'groups', shards);
    const r = await runCliInProcess(['prune', model, '--stats', pattern, '--random', '256', '--shape', 'input=1x3x16x16', '--max-error', '5e-2', '--dry-run', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { budget: { layers: { kind: string; name: string }[] } };
    expect(report.budget.layers.filter((l) => l.kind === 'group').length).toBeGreaterThan(0);

    // Shards written before group tensors were collected (layers only) still load, all of them
    // alike; one of each kind together is refused.
    const files = expandStatisticsPaths([pattern]);
    const layersOnly = files.map((file, k) => {
      const { header, moments } = decodeStatisticsFile(fs.readFileSync(file), file);
      const layers = header.layers.filter((l) => !l.name.startsWith('group'));
      expect(layers.length).toBeLessThan(header.layers.length);
      const kept = new Map([...moments].filter(([name]) => layers.some((l) => l.name === name)));
      const old = path.join(dir, `old-shard-${k}.stats`);
      fs.writeFileSync(old, Buffer.concat(encodeStatisticsFile({ ...header, layers }, kept)));
      return old;
    });
    // As measureModel finds them: on the BatchNorm-folded model.
    const folded = loadModel(model);
    foldBatchNorms(folded);
    const { layers, watched } = findWatchedLayers(folded);
    const merged = readStatisticsShards(layersOnly, loadModel(model), layers, watched);
    expect(merged.statistics.size).toBe(layers.length);
    expect(() => readStatisticsShards([files[0]!, layersOnly[1]!], loadModel(model), layers, watched)).toThrow(/holds other tensors than/);
  });
});

describe('condense check --stats', () => {
  const model = fixturePath('mlp-relu-planted.onnx');
  /** Four shards of 256 random samples and the file of all of them; the pattern of their statistics files. */
  async function shardsOfPlantedMlp(prefix: string): Promise<{ all: string; pattern: string }> {
    const probe = randomProbes(loadModel(model), 256, { seed: 6 });
    const { all, shards } = writeShards(prefix, [256, 8], probe.inputs.x!.data as Float32Array);
    return { all, pattern: await collectAll(model, prefix, shards) };
  }
  const writeConfig = (name: string, rules: unknown, probe?: unknown): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, JSON.stringify({ rules, ...(probe ? { probe } : {}) }));
    return file;
  };

  it('evaluates the layer rules on the merged statistics exactly as on one run over all the probes', async () => {
    const { all, pattern } = await shardsOfPlantedMlp('check');
    const config = writeConfig('check-rules.json', { maxRedundancy: 0.2, minEffectiveWidth: 4, maxStaticShare: 0.5 });
    const single = await runCliInProcess(['check', model, '--probe', all, '--config', config, '--json']);
    const merged = await runCliInProcess(['check', model, '--stats', pattern, '--config', config, '--json']);
    // The planted copies make fc1 more than 20% redundant: both runs fail that rule, with exit 1.
    expect([single.code, merged.code]).toEqual([1, 1]);
    expect(merged.stderr).toBe(single.stderr);
    expect(merged.stderr).toMatch(/^condense: check failed: 1 of \d+ rules failed\n$/);
    type Report = { results: { rule: string; layer: string | null; status: string; actual: number | null; message: string }[] };
    const a = JSON.parse(single.stdout) as Report;
    const b = JSON.parse(merged.stdout) as Report;
    expect(b.results.map((o) => [o.rule, o.layer, o.status, o.actual])).toEqual(a.results.map((o) => [o.rule, o.layer, o.status, o.actual]));
    expect(b.results.some((o) => o.status === 'fail' && /outputs/.test(o.message))).toBe(true);
  });

  it('runs the prune rule on the merged statistics, verifying on a held-out draw', async () => {
    const config = writeConfig('check-prune.json', { prune: { maxParameterShare: 0.95, maxRelativeError: 1e-4 } });
    const r = await runCliInProcess(['check', model, '--stats', path.join(dir, 'check-shard-*.stats'), '--config', config, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { results: { rule: string; status: string; actual: number }[] };
    const prune = report.results.find((o) => o.rule === 'prune')!;
    expect(prune.status).toBe('pass');
    expect(prune.actual).toBeLessThan(0.95);
  });

  it("ignores the config's probe settings for the layer rules and says so; refuses probes given with --stats", async () => {
    const config = writeConfig('check-probe.json', { maxStaticShare: 0.5 }, { random: 64 });
    const r = await runCliInProcess(['check', model, '--stats', path.join(dir, 'check-shard-*.stats'), '--config', config, '--json']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { notes: string[] }).notes.join('\n')).toMatch(/probe settings were not run: the statistics files hold/);
    const both = await runCliInProcess(['check', model, '--stats', path.join(dir, 'check-shard-*.stats'), '--random', '16']);
    expect(both.code).toBe(2);
    expect(both.stderr.trim().split('\n')).toHaveLength(1);
    expect(both.stderr).toMatch(/--stats: cannot be combined with --probe or --random/);
  });

  it('refuses shards of another model, and damaged files, as audit and prune do (exit 2, one line, nothing written)', async () => {
    const junit = path.join(dir, 'check-mix.xml');
    const mixed = await runCliInProcess(['check', model, '--stats', path.join(dir, 'mix-*.stats'), '--junit', junit]);
    expect(mixed.code).toBe(2);
    expect(mixed.stdout).toBe('');
    expect(mixed.stderr.trim().split('\n')).toHaveLength(1);
    expect(mixed.stderr).toMatch(/mix-1\.stats: was collected on another model/);
    expect(fs.existsSync(junit)).toBe(false);
    const damaged = await runCliInProcess(['check', model, '--stats', path.join(dir, 'truncated.stats')]);
    expect(damaged.code).toBe(2);
    expect(damaged.stderr).toMatch(/corrupted or truncated/);
  });
});
