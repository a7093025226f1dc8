// One benchmark measurement in a fresh process (bench/run.ts starts these): a cold start and a
// peak-memory reading of its own. Usage: node --import tsx bench/child.ts TASK 'JSON input'.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { agnesClusterer } from '../src/analysis/cluster/agnes-clusterer.js';
import { cutDendrogram } from '../src/analysis/cluster/clusterer.js';
import { nnChainClusterer } from '../src/analysis/cluster/nn-chain-clusterer.js';
import { findLayers } from '../src/analysis/find-layers.js';
import { inputWeightVectors } from '../src/analysis/input-weights.js';
import { measureCondensation } from '../src/analysis/measure-condensation.js';
import { DataType } from '../src/ir/data-type.js';
import { Graph } from '../src/ir/graph.js';
import { Model } from '../src/ir/model.js';
import { Tensor } from '../src/ir/tensor.js';
import { cosineMatrix } from '../src/numeric/cosine.js';
import { SeededRandom } from '../src/numeric/seeded-random.js';
import { encodeModel } from '../src/onnx/encode-model.js';
import { loadModel, saveModel } from '../src/onnx/model-file.js';
import { audit } from '../src/pipeline/audit.js';
import { collectShard, readStatisticsShards, writeStatisticsFile } from '../src/pipeline/statistics-shards.js';
import { collectLayerStatistics, prepareStatisticsModel } from '../src/pipeline/collect-layer-statistics.js';
import { prune } from '../src/pipeline/prune.js';
import { collectStatistics } from '../src/runtime/collect-statistics.js';
import type { HostTensor } from '../src/runtime/host-tensor.js';
import { ModelSession, type Device } from '../src/runtime/model-session.js';
import { cosineMatrixOnRuntime } from '../src/runtime/gram-matrix.js';
import { encodeNpy, encodeNpz } from '../src/runtime/npy.js';
import { loadProbeFiles, probeBatches, randomProbes } from '../src/runtime/probe-data.js';
import { OUT_DIR, fastest, peakRssMiB, printResult, secondsSince } from './bench-support.js';
import { buildCnn, buildMlp, type CnnSpec, type GeneratedModel, type MlpSpec } from './generated-models.js';

type ModelSpec = { kind: 'mlp'; spec: MlpSpec } | { kind: 'cnn'; spec: CnnSpec };

function build(spec: ModelSpec): GeneratedModel {
  return spec.kind === 'mlp' ? buildMlp(spec.spec) : buildCnn(spec.spec);
}

/** Planted neuron vectors (k directions plus noise) and their cosine distances, as average linkage sees a layer. */
function plantedDistances(n: number, seed: number): Float64Array {
  const random = new SeededRandom(seed);
  const dim = 64;
  const centres = Math.max(2, Math.floor(n / 8));
  const centre = Float64Array.from({ length: centres * dim }, () => random.gaussian());
  const rows = new Float64Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = random.integer(centres);
    for (let k = 0; k < dim; k++) rows[i * dim + k] = centre[c * dim + k]! + 0.3 * random.gaussian();
  }
  const cosine = cosineMatrix(rows, n, dim);
  const distance = new Float64Array(n * n);
  for (let k = 0; k < distance.length; k++) distance[k] = Math.max(0, 1 - cosine[k]!);
  for (let i = 0; i < n; i++) distance[i * n + i] = 0;
  return distance;
}

/** The upper triangle, row by row: scipy's condensed form. */
function condensed(distance: Float64Array, n: number): Float64Array {
  const out = new Float64Array((n * (n - 1)) / 2);
  let k = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) out[k++] = distance[i * n + j]!;
  return out;
}

async function clusterTask(input: { n: number; seed: number; file: string; agnes: boolean; cut: number }): Promise<unknown> {
  const { n, cut } = input;
  const distance = plantedDistances(n, input.seed);
  fs.writeFileSync(input.file, encodeNpy({ dtype: 'float64', shape: [(n * (n - 1)) / 2], data: condensed(distance, n) }));
  let start = performance.now();
  const dendrogram = nnChainClusterer.linkage(distance, n);
  const first = secondsSince(start);
  const warm = await fastest(2, () => nnChainClusterer.linkage(distance, n));
  const scratch = Float64Array.from(distance);
  start = performance.now();
  nnChainClusterer.linkageInPlace(scratch, n);
  const inPlace = secondsSince(start);
  const labels = Array.from(cutDendrogram(dendrogram, n, cut).labels);
  let agnes: { seconds: number; samePartition: boolean } | undefined;
  if (input.agnes) {
    start = performance.now();
    const fromAgnes = agnesClusterer.linkage(distance, n);
    agnes = { seconds: secondsSince(start), samePartition: JSON.stringify(Array.from(cutDendrogram(fromAgnes, n, cut).labels)) === JSON.stringify(labels) };
  }
  return { n, nnChain: { first, warm: warm.seconds, inPlace }, agnes, labels };
}

/** Feeds materialised up front, so timed passes run the model and nothing else. */
function feedsOf(model: Model, samples: number, batchSize: number): Record<string, HostTensor>[] {
  return [...probeBatches(randomProbes(model, samples, { seed: 1 }), batchSize)];
}

async function collectTask(input: { model: ModelSpec; samples: number; passes: number; device?: Device }): Promise<unknown> {
  const { model, macsPerSample } = build(input.model);
  const session = input.device ? { device: input.device } : {};
  const layers = findLayers(model);
  const probes = randomProbes(model, input.samples, { seed: 1 });
  const prepared = prepareStatisticsModel(model, layers, probes.count)!;
  const feeds = feedsOf(model, input.samples, prepared.batchSize);
  const plainBytes = encodeModel(model).modelBytes;
  // End to end: a fresh session, every batch drawn and run once (how an audit runs).
  let start = performance.now();
  const plainCold = await ModelSession.create(plainBytes, 'plain', session);
  for (const f of probeBatches(probes, prepared.batchSize)) await plainCold.run(f);
  const plainEndToEnd = secondsSince(start);
  await plainCold.release();
  start = performance.now();
  const collected = await collectLayerStatistics(model, 'model', layers, probes, { session });
  const collectEndToEnd = secondsSince(start);
  // Steady state: warm sessions, the fastest of a few passes over the same feeds.
  const plain = await ModelSession.create(plainBytes, 'plain', session);
  const heads = await ModelSession.create(encodeModel(prepared.model).modelBytes, 'heads', session);
  let plainPass = Infinity;
  let collectPass = Infinity;
  for (let pass = 0; pass < input.passes; pass++) {
    plainPass = Math.min(plainPass, (await fastest(1, async () => { for (const f of feeds) await plain.run(f); })).seconds);
    collectPass = Math.min(collectPass, (await fastest(1, () => collectStatistics(heads, prepared.heads, feeds))).seconds);
  }
  await plain.release();
  await heads.release();
  return {
    layers: layers.length,
    widths: layers.map((l) => l.width),
    samples: input.samples,
    batchSize: prepared.batchSize,
    gmacs: (macsPerSample * input.samples) / 1e9,
    plainEndToEnd,
    collectEndToEnd,
    plainPass,
    collectPass,
    positionSampling: collected.positionSampling,
    peakRssMiB: peakRssMiB(),
  };
}

/** Writes a dense model, its weights for numpy and its probe samples; returns the file names. */
function denseFilesTask(input: { width: number; inputWidth: number; samples: number; prefix: string }): unknown {
  const { model } = buildMlp({ inputWidth: input.inputWidth, widths: [input.width], classes: 10, seed: 5, redundancy: 0.25 });
  const modelFile = `${input.prefix}.onnx`;
  saveModel(model, modelFile);
  const init = (name: string): Tensor => model.graph.initializers.find((v) => v.name === name)!.initializer!;
  const entries = new Map([
    ['w', { dtype: 'float32' as const, shape: [...init('fc1_w').dims], data: init('fc1_w').toFloat32() }],
    ['b', { dtype: 'float32' as const, shape: [...init('fc1_b').dims], data: init('fc1_b').toFloat32() }],
    ['a', { dtype: 'float32' as const, shape: [...init('head_w').dims], data: init('head_w').toFloat32() }],
  ]);
  fs.writeFileSync(`${input.prefix}.npz`, encodeNpz(entries));
  const probes = randomProbes(model, input.samples, { seed: 9 });
  fs.writeFileSync(`${input.prefix}-probes.npy`, encodeNpy({ dtype: 'float32', shape: [input.samples, input.inputWidth], data: probes.inputs.x!.data as Float32Array }));
  return { modelFile, weightsFile: `${input.prefix}.npz`, probesFile: `${input.prefix}-probes.npy` };
}

async function denseAuditTask(input: { modelFile: string; probesFile: string }): Promise<unknown> {
  const cpuStart = process.cpuUsage();
  let start = performance.now();
  const result = await audit(input.modelFile, { probe: { files: [input.probesFile] } });
  const auditSeconds = secondsSince(start);
  const cpu = process.cpuUsage(cpuStart);
  const auditCpuSeconds = (cpu.user + cpu.system) / 1e6;
  const auditRss = peakRssMiB();
  const layer = result.layers.find((l) => l.layer.name === 'fc1')!;
  // What float32 does to the weight cosines audit now takes from the runtime: the float64 Gram of
  // the same unit rows, and the largest difference.
  const fc1 = findLayers(loadModel(input.modelFile)).find((l) => l.name === 'fc1')!;
  const { rows, dim } = inputWeightVectors(fc1);
  const encode = (m: Model): Uint8Array => encodeModel(m).modelBytes;
  start = performance.now();
  const cos64 = await cosineMatrixOnRuntime(rows, fc1.width, dim, encode);
  const weightCosine64Seconds = secondsSince(start);
  start = performance.now();
  const cos32 = await cosineMatrixOnRuntime(rows, fc1.width, dim, encode, { precision: 'float32' });
  const weightCosine32Seconds = secondsSince(start);
  let maxCosineError = 0;
  for (let k = 0; k < cos64.length; k++) maxCosineError = Math.max(maxCosineError, Math.abs(cos64[k]! - cos32[k]!));
  // The clusters the float64 cosines give, against audit's.
  const threshold = 0.95;
  const distance = new Float64Array(cos64.length);
  for (let k = 0; k < distance.length; k++) distance[k] = Math.max(0, 1 - cos64[k]!);
  for (let i = 0; i < fc1.width; i++) distance[i * fc1.width + i] = 0;
  const static64 = layer.staticNeurons.length;
  const clusters64 = static64 === 0 ? cutDendrogram(nnChainClusterer.linkage(distance, fc1.width), fc1.width, 1 - threshold) : undefined;
  return {
    auditSeconds,
    auditCpuSeconds,
    weightCosine64Seconds,
    weightCosine32Seconds,
    maxCosineError,
    sameWeightClustersAsFloat64: clusters64 ? JSON.stringify(Array.from(clusters64.labels)) === JSON.stringify(Array.from(layer.weightClusters.labels)) : undefined,
    width: fc1.width,
    samples: result.probeSamples,
    staticNeurons: layer.staticNeurons.length,
    weightClusters: layer.weightClusters.count,
    outputClusters: layer.outputClusters?.count,
    clusterMethod: layer.weightClusters.method,
    peakRssMiB: auditRss,
  };
}

/** A ~42 M-parameter float16 CNN (83 MB file), written to `file`. */
function bigCnnMakeTask(input: { file: string }): unknown {
  const start = performance.now();
  const { model } = buildCnn(BIG_CNN);
  saveModel(model, input.file);
  return { seconds: secondsSince(start), parameters: model.parameterCount(), fileBytes: fs.statSync(input.file).size };
}

export const BIG_CNN: CnnSpec = { inputChannels: 3, size: 32, channels: [64, 128, 256, 512, 1024, 1536, 1536], strides: [1, 2, 1, 2, 2, 1, 2], classes: 10, seed: 11, float16: true, redundancy: 0.25 };

/** Peak RSS of one audit or prune of `file`, alone in this process. */
async function bigCnnRunTask(input: { file: string; step: 'audit' | 'prune'; samples: number; output?: string }): Promise<unknown> {
  const baseline = peakRssMiB();
  const start = performance.now();
  let detail: unknown;
  if (input.step === 'audit') {
    const r = await audit(input.file, { probe: { random: input.samples } });
    detail = { layers: r.layers.length };
  } else {
    try {
      const r = await prune(input.file, { output: input.output!, probe: { random: input.samples } });
      detail = { neurons: r.neurons, maxRelError: r.fidelity.maxRelError };
    } catch (error) {
      detail = { error: (error as Error).message.split('\n')[0] };
    }
  }
  return { seconds: secondsSince(start), baselineMiB: baseline, peakRssMiB: peakRssMiB(), detail };
}

/** Four shards collected with collectShard, merged, against one audit over all the probes. */
async function shardsTask(input: { samples: number }): Promise<unknown> {
  const dir = path.join(OUT_DIR, `shards-${process.pid}`);
  fs.mkdirSync(dir, { recursive: true });
  const { model } = buildCnn({ inputChannels: 3, size: 32, channels: [32, 64, 128, 256], strides: [1, 2, 1, 2], classes: 10, seed: 12, redundancy: 0.25 });
  const file = path.join(dir, 'model.onnx');
  saveModel(model, file);
  const probes = randomProbes(model, input.samples, { seed: 3 });
  const data = probes.inputs.x!.data as Float32Array;
  const perSample = data.length / input.samples;
  const all = path.join(dir, 'all.npy');
  fs.writeFileSync(all, encodeNpy({ dtype: 'float32', shape: [input.samples, 3, 32, 32], data }));
  let start = performance.now();
  const single = await audit(file, { probe: { files: [all] } });
  const singleSeconds = secondsSince(start);
  start = performance.now();
  for (let k = 0; k < 4; k++) {
    const from = Math.round((k * input.samples) / 4);
    const to = Math.round(((k + 1) * input.samples) / 4);
    const shardFile = path.join(dir, `shard-${k}.npy`);
    fs.writeFileSync(shardFile, encodeNpy({ dtype: 'float32', shape: [to - from, 3, 32, 32], data: data.slice(from * perSample, to * perSample) }));
    writeStatisticsFile(path.join(dir, `shard-${k}.stats`), await collectShard(file, { probe: { files: [shardFile] } }));
  }
  const collectSeconds = secondsSince(start);
  const statsBytes = [0, 1, 2, 3].reduce((sum, k) => sum + fs.statSync(path.join(dir, `shard-${k}.stats`)).size, 0);
  const loaded = loadModel(file);
  const merged = readStatisticsShards([path.join(dir, 'shard-*.stats')], loaded, findLayers(loaded));
  start = performance.now();
  const fromShards = await audit(file, { statistics: [path.join(dir, 'shard-*.stats')] });
  const mergedAuditSeconds = secondsSince(start);
  const same = single.layers.every((l, k) => JSON.stringify(Array.from(l.outputClusters?.labels ?? [])) === JSON.stringify(Array.from(fromShards.layers[k]!.outputClusters?.labels ?? [])));
  let worstMoment = 0;
  for (const l of single.layers) {
    const a = l.statistics;
    const b = fromShards.layers.find((x) => x.layer.name === l.layer.name)!.statistics;
    if (!a || !b) continue;
    const scale = a.scatter.reduce((x, v) => Math.max(x, Math.abs(v)), 0);
    for (let k = 0; k < a.scatter.length; k++) worstMoment = Math.max(worstMoment, Math.abs(a.scatter[k]! - b.scatter[k]!) / scale);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return { samples: input.samples, singleSeconds, collectSeconds, mergeSeconds: merged.seconds, mergedAuditSeconds, sameClusters: same, worstRelativeScatterDifference: worstMoment, statsBytes, layers: single.layers.map((l) => `${l.layer.name} ${l.outputClusters?.count}`) };
}

async function memoryTask(input: { model: ModelSpec; samples: number; probeFile?: string }): Promise<unknown> {
  const file = path.join(OUT_DIR, `memory-${input.model.kind}-${process.pid}.onnx`);
  const { model } = build(input.model);
  saveModel(model, file);
  const baseline = peakRssMiB();
  const start = performance.now();
  const result = await audit(file, { probe: input.probeFile ? { files: [input.probeFile] } : { random: input.samples } });
  fs.rmSync(file, { force: true });
  return { samples: result.probeSamples, seconds: secondsSince(start), baselineMiB: baseline, peakRssMiB: peakRssMiB() };
}

function macsOf(model: Model, spatial: Map<string, number>): number {
  let macs = 0;
  for (const node of model.graph.nodes) {
    if (node.opType !== 'Gemm' && node.opType !== 'Conv') continue;
    const weight = node.inputs[1]?.constantTensor();
    if (!weight) continue;
    macs += weight.elementCount * (node.opType === 'Conv' ? spatial.get(node.name) ?? 1 : 1);
  }
  return macs;
}

async function pruneTask(input: { model: ModelSpec; samples: number; batchSize: number; passes: number }): Promise<unknown> {
  const generated = build(input.model);
  const file = path.join(OUT_DIR, `prune-${input.model.kind}.onnx`);
  const output = path.join(OUT_DIR, `prune-${input.model.kind}-pruned.onnx`);
  saveModel(generated.model, file);
  let start = performance.now();
  const result = await prune(file, { output, probe: { random: 512, seed: 3 } });
  const pruneSeconds = secondsSince(start);
  const pruned = loadModel(output);
  // Conv output sides, by node name, from the generator's own arithmetic.
  const spatial = new Map<string, number>();
  if (input.model.kind === 'cnn') {
    let side = input.model.spec.size;
    input.model.spec.channels.forEach((_, i) => {
      const stride = input.model.kind === 'cnn' ? input.model.spec.strides?.[i] ?? 1 : 1;
      side = Math.floor((side + 2 - 3) / stride) + 1;
      spatial.set(`conv${i + 1}`, side * side);
    });
  }
  const macsBefore = macsOf(generated.model, spatial);
  const macsAfter = macsOf(pruned, spatial);
  const feeds = feedsOf(generated.model, input.samples, input.batchSize);
  const before = await ModelSession.create(fs.readFileSync(file), 'original');
  const after = await ModelSession.create(fs.readFileSync(output), 'pruned');
  let original = Infinity;
  let smaller = Infinity;
  for (let pass = 0; pass < input.passes; pass++) {
    original = Math.min(original, (await fastest(1, async () => { for (const f of feeds) await before.run(f); })).seconds);
    smaller = Math.min(smaller, (await fastest(1, async () => { for (const f of feeds) await after.run(f); })).seconds);
  }
  await before.release();
  await after.release();
  return {
    pruneSeconds,
    neurons: result.neurons,
    params: result.params,
    maxRelError: result.fidelity.maxRelError,
    macsBefore,
    macsAfter,
    flopsRemoved: 1 - macsAfter / macsBefore,
    originalSeconds: original,
    prunedSeconds: smaller,
    speedup: original / smaller,
  };
}

/**
 * A model just over 2 GB: three embedding tables [rows, 1024] (about 0.74 GB each, so no single
 * tensor is past the limit either) summed over 8 token ids, mean-pooled, then a small ReLU MLP
 * with planted copies. Written with its tensors in external data.
 */
function largeMakeTask(input: { file: string; rowsPerTable: number }): unknown {
  const start = performance.now();
  const graph = new Graph('large_embedding_mlp');
  const ids = graph.createValue('ids', { kind: 'tensor', elemType: DataType.INT64, shape: [{ param: 'batch' }, { value: 8 }] });
  graph.inputs.push(ids);
  const dim = 1024;
  let state = 12345;
  let sum: ReturnType<Graph['addNode']>['outputs'][number] | undefined;
  for (let t = 0; t < 3; t++) {
    const data = new Float32Array(input.rowsPerTable * dim);
    // A cheap seeded fill: 0.74 GB of Box-Muller would take longer than the benchmark's budget.
    for (let k = 0; k < data.length; k++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      data[k] = (state / 4294967296 - 0.5) * 0.2;
    }
    const table = graph.addInitializer(`table${t}`, Tensor.fromFloat32([input.rowsPerTable, dim], data));
    const gathered = graph.addNode({ opType: 'Gather', name: `gather${t}`, inputs: [table, ids], outputs: [`embedded${t}`] }).outputs[0]!;
    sum = sum ? graph.addNode({ opType: 'Add', name: `sum${t}`, inputs: [sum, gathered], outputs: [`summed${t}`] }).outputs[0]! : gathered;
  }
  const pooled = graph.addNode({ opType: 'ReduceMean', name: 'pool', inputs: [sum!], outputs: ['pooled'], attributes: [{ name: 'axes', type: 'ints', value: [1n] }, { name: 'keepdims', type: 'int', value: 0n }] }).outputs[0]!;
  const mlp = buildMlp({ inputWidth: dim, widths: [512, 512], classes: 10, seed: 4, redundancy: 0.5 });
  // Graft the MLP's nodes and weights onto the pooled features.
  const mapped = new Map([[mlp.model.graph.inputs[0]!, pooled]]);
  for (const v of mlp.model.graph.initializers) mapped.set(v, graph.addInitializer(v.name, v.initializer!));
  for (const node of mlp.model.graph.nodes) {
    const added = graph.addNode({
      opType: node.opType,
      name: node.name,
      inputs: node.inputs.map((v) => (v ? mapped.get(v)! : null)),
      outputs: node.outputs.map((o) => o.name),
      attributes: [...node.attributes.values()],
    });
    node.outputs.forEach((o, k) => mapped.set(o, added.outputs[k]!));
  }
  const logits = mapped.get(mlp.model.graph.outputs[0]!)!;
  logits.type = { kind: 'tensor', elemType: DataType.FLOAT, shape: [{ param: 'batch' }, { value: 10 }] };
  graph.outputs.push(logits);
  const model = new Model(graph);
  model.opsetImports = [{ domain: '', version: 13 }];
  saveModel(model, input.file);
  return {
    seconds: secondsSince(start),
    modelBytes: fs.statSync(input.file).size,
    externalDataBytes: fs.statSync(`${input.file}.data`).size,
    peakRssMiB: peakRssMiB(),
  };
}

async function largeRunTask(input: { file: string; output: string }): Promise<unknown> {
  let start = performance.now();
  const model = loadModel(input.file);
  const loadSeconds = secondsSince(start);
  start = performance.now();
  const audited = await audit(model, { probe: { random: 64 } });
  const auditSeconds = secondsSince(start);
  const auditRss = peakRssMiB();
  let pruned: unknown;
  start = performance.now();
  try {
    const result = await prune(input.file, { output: input.output, probe: { random: 128 } });
    pruned = {
      seconds: secondsSince(start),
      neurons: result.neurons,
      maxRelError: result.fidelity.maxRelError,
      outputBytes: fs.statSync(input.output).size,
      outputDataBytes: fs.existsSync(`${input.output}.data`) ? fs.statSync(`${input.output}.data`).size : 0,
    };
  } catch (error) {
    pruned = { seconds: secondsSince(start), error: (error as Error).message.split('\n')[0] };
  }
  return {
    loadSeconds,
    auditSeconds,
    layers: audited.layers.map((l) => ({ name: l.layer.name, width: l.width, outputClusters: l.outputClusters?.count })),
    auditPeakRssMiB: auditRss,
    prune: pruned,
    peakRssMiB: peakRssMiB(),
  };
}

const tasks: Record<string, (input: never) => unknown> = {
  cluster: clusterTask,
  collect: collectTask,
  'dense-files': denseFilesTask,
  'dense-audit': denseAuditTask,
  'big-cnn-make': bigCnnMakeTask,
  'big-cnn-run': bigCnnRunTask,
  shards: shardsTask,
  memory: memoryTask,
  prune: pruneTask,
  'large-make': largeMakeTask,
  'large-run': largeRunTask,
};

const [task, json] = process.argv.slice(2);
const run = tasks[task ?? ''];
if (!run) {
  console.error(`unknown task "${task}"; expected one of ${Object.keys(tasks).join(', ')}`);
  process.exit(2);
}
fs.mkdirSync(OUT_DIR, { recursive: true });
printResult(await run(JSON.parse(json ?? '{}') as never));
