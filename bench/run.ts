// npm run bench [-- --quick] [-- --only cluster,collect,dense,big-cnn,shards,budget,memory,prune,large]
// Prints, for generated models, every ratio docs/performance.md records: clustering against
// ml-hclust's agnes and SciPy, collection against plain inference, a dense layer's whole audit
// against numpy + SciPy, peak memory against probe count, pruned against original latency, and a
// model over 2 GB through audit and prune. Each measurement that needs a cold start or its own
// memory high-water mark runs in a child process (bench/child.ts). Not a test: it asserts nothing,
// it reports; the last table says which target each figure meets.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hugePagesEnvironment } from '../cli/huge-pages.js';
import { canonicalLabels, fixed, median, OUT_DIR, printTable, PYTHON, runChild, runPython } from './bench-support.js';
import type { CnnSpec, MlpSpec } from './generated-models.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const onlyIndex = args.indexOf('--only');
const only = onlyIndex >= 0 ? new Set((args[onlyIndex + 1] ?? '').split(',')) : undefined;
const wants = (section: string): boolean => (only ? only.has(section) : section !== 'large' || !quick);

type ModelSpec = { kind: 'mlp'; spec: MlpSpec } | { kind: 'cnn'; spec: CnnSpec };
interface Verdict {
  target: string;
  measured: string;
  isMet: boolean | undefined;
}
const verdicts: Verdict[] = [];
const results: Record<string, unknown> = { quick, startedAt: new Date().toISOString(), cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, python: PYTHON };

const CNN: CnnSpec = { inputChannels: 3, size: 64, channels: [32, 32, 64, 64, 128, 128], strides: [1, 1, 2, 1, 2, 1], classes: 10, seed: 1 };
const CNN_WIDE: CnnSpec = { inputChannels: 3, size: 64, channels: [64, 64, 128, 128, 256, 256], strides: [1, 1, 2, 1, 2, 1], classes: 10, seed: 2 };

function section(name: string, run: () => Promise<void> | void): Promise<void> {
  if (!wants(name)) return Promise.resolve();
  const start = performance.now();
  return Promise.resolve(run()).then(
    () => console.log(`(${name}: ${((performance.now() - start) / 1000).toFixed(0)} s)`),
    (error: unknown) => {
      console.log(`\n${name}: FAILED: ${(error as Error).message}`);
      results[name] = { error: (error as Error).message };
    },
  );
}

interface ClusterResult {
  n: number;
  nnChain: { first: number; warm: number; inPlace: number };
  agnes?: { seconds: number; samePartition: boolean };
  labels: number[];
}
interface LinkageResult {
  best: number;
  labels: number[];
}

await section('cluster', () => {
  const sizes = quick ? [256, 1024, 4096] : [256, 512, 1024, 2048, 4096];
  const cut = 0.3;
  const rows: (string | number)[][] = [];
  const table: unknown[] = [];
  for (const n of sizes) {
    const file = path.join(OUT_DIR, `distances-${n}.npy`);
    const ours = runChild<ClusterResult>('cluster', { n, seed: n, file, agnes: n <= 1024, cut });
    const scipy = runPython<LinkageResult>(['linkage', file, '3', String(cut)]);
    fs.rmSync(file, { force: true });
    const same = scipy ? JSON.stringify(canonicalLabels(scipy.labels)) === JSON.stringify(canonicalLabels(ours.labels)) : undefined;
    rows.push([n, fixed(ours.nnChain.first, 3), fixed(ours.nnChain.warm, 3), fixed(ours.nnChain.inPlace, 3), fixed(ours.agnes?.seconds, 3), fixed(scipy?.best, 3), fixed(scipy ? ours.nnChain.first / scipy.best : undefined), fixed(scipy ? ours.nnChain.warm / scipy.best : undefined), same === undefined ? '-' : same && (ours.agnes?.samePartition ?? true) ? 'yes' : 'NO']);
    table.push({ n, nnChain: ours.nnChain, agnes: ours.agnes, scipy: scipy?.best, samePartition: same });
    if (n === 4096 && scipy) {
      verdicts.push({ target: 'average linkage, n = 4096: nn-chain <= SciPy', measured: `${fixed(ours.nnChain.first / scipy.best)}x first call in a process, ${fixed(ours.nnChain.warm / scipy.best)}x after, ${fixed(ours.nnChain.inPlace / scipy.best)}x in place`, isMet: ours.nnChain.warm <= scipy.best });
    }
  }
  printTable('Average linkage (seconds; distances from planted neuron directions; scipy = best of 3)', ['n', 'nn-chain 1st', 'warm', 'in place', 'agnes', 'scipy', '1st/scipy', 'warm/scipy', 'same clusters'], rows);
  results.cluster = table;
});

interface CollectResult {
  layers: number;
  widths: number[];
  samples: number;
  batchSize: number;
  gmacs: number;
  plainEndToEnd: number;
  collectEndToEnd: number;
  plainPass: number;
  collectPass: number;
  positionSampling: { key: string; positionStride: number; calibrationRows: { every: number; kept: number }; maxCosineError: number }[];
}

await section('collect', () => {
  const cases: { name: string; model: ModelSpec; samples: number }[] = [
    { name: 'CNN 32-128 ch, 64x64', model: { kind: 'cnn', spec: CNN }, samples: quick ? 256 : 1024 },
    { name: 'CNN 64-256 ch, 64x64', model: { kind: 'cnn', spec: CNN_WIDE }, samples: quick ? 128 : 512 },
    ...(quick ? [256, 4096] : [256, 1024, 2048, 4096]).map((width) => ({ name: `MLP 1024-${width}`, model: { kind: 'mlp' as const, spec: { inputWidth: 1024, widths: [width], classes: 10, seed: 3 } }, samples: quick ? 2048 : 8192 })),
    ...(quick ? [] : [{ name: 'MLP 1024-4096', model: { kind: 'mlp' as const, spec: { inputWidth: 1024, widths: [4096], classes: 10, seed: 3 } }, samples: 1024 }]),
  ];
  const rows: (string | number)[][] = [];
  const out: unknown[] = [];
  for (const c of cases) {
    const r = runChild<CollectResult>('collect', { model: c.model, samples: c.samples, passes: quick ? 2 : 3 });
    const worst = r.positionSampling.reduce((w, p) => Math.max(w, p.maxCosineError), 0);
    rows.push([c.name, r.samples, r.batchSize, fixed(r.plainEndToEnd), fixed(r.collectEndToEnd), fixed(r.collectEndToEnd / r.plainEndToEnd), fixed(r.plainPass), fixed(r.collectPass), fixed(r.collectPass / r.plainPass), r.positionSampling.map((p) => `${p.key}/${p.positionStride}`).join(' ') || '-', r.positionSampling.length ? fixed(worst, 3) : '-']);
    out.push({ ...c, ...r });
    if (c.model.kind === 'cnn') {
      verdicts.push({ target: `${c.name}: collection <= 1.5x plain inference`, measured: `${fixed(r.collectPass / r.plainPass)}x per pass (warm sessions), ${fixed(r.collectEndToEnd / r.plainEndToEnd)}x end to end incl. session start`, isMet: r.collectPass / r.plainPass <= 1.5 });
    }
  }
  printTable('Statistics collection against plain inference of the same batches (seconds)', ['model', 'samples', 'batch', 'plain e2e', 'collect e2e', 'ratio', 'plain pass', 'collect pass', 'ratio', 'layer/stride', 'max |dcos|'], rows);
  results.collect = out;
});

interface DenseAudit {
  auditSeconds: number;
  /** User + system seconds of every thread during audit(). */
  auditCpuSeconds: number;
  weightCosine64Seconds: number;
  weightCosine32Seconds: number;
  maxCosineError: number;
  sameWeightClustersAsFloat64?: boolean;
  width: number;
  samples: number;
  staticNeurons: number;
  weightClusters: number;
  outputClusters: number;
  peakRssMiB: number;
}
interface NumpyAudit {
  seconds: number;
  cpuSeconds?: number;
  steps: Record<string, number>;
  weightClusters: number;
  outputClusters: number;
  staticNeurons: number;
}

// Issue 14: the dense audit at most this share of numpy + SciPy's time.
const DENSE_TARGET = 0.8;

await section('dense', () => {
  const samples = quick ? 2048 : 8192;
  const repeats = quick ? 2 : 5;
  const prefix = path.join(OUT_DIR, `dense-4096-${samples}`);
  const files = runChild<{ modelFile: string; weightsFile: string; probesFile: string }>('dense-files', { width: 4096, inputWidth: 1024, samples, prefix });
  // The environment `condense audit` runs in (cli/huge-pages.ts re-runs it with glibc's hugetlb
  // tunable where that helps); "small pages" is audit() called from a plain Node.js process.
  const cliEnv = hugePagesEnvironment(['audit']);
  const smallPagesEnv: NodeJS.ProcessEnv = { ...process.env, CONDENSE_HUGE_PAGES: '0' };
  delete smallPagesEnv.GLIBC_TUNABLES;
  const audit = (env: NodeJS.ProcessEnv | undefined): DenseAudit => runChild<DenseAudit>('dense-audit', { modelFile: files.modelFile, probesFile: files.probesFile }, 600, env);
  // numpy, ours as the CLI runs, ours on small pages, in turn: the machine is shared, so each
  // round's three runs see about the same load, and the ratios are taken within a round.
  const rounds: { numpy?: NumpyAudit; ours: DenseAudit; smallPages?: DenseAudit }[] = [];
  for (let r = 0; r < repeats; r++) {
    const numpy = runPython<NumpyAudit>(['dense-audit', files.weightsFile, files.probesFile, '0.95']);
    const ours = audit(cliEnv ?? smallPagesEnv);
    const smallPages = cliEnv && r < 2 ? audit(smallPagesEnv) : undefined;
    rounds.push({ ...(numpy ? { numpy } : {}), ours, ...(smallPages ? { smallPages } : {}) });
  }
  for (const f of Object.values(files)) fs.rmSync(f, { force: true });
  const ours = rounds.map((r) => r.ours).reduce((a, b) => (b.auditSeconds < a.auditSeconds ? b : a));
  const numpyRuns = rounds.flatMap((r) => (r.numpy ? [r.numpy] : []));
  const numpy = numpyRuns.length ? numpyRuns.reduce((a, b) => (b.seconds < a.seconds ? b : a)) : undefined;
  const ratios = rounds.flatMap((r) => (r.numpy ? [r.ours.auditSeconds / r.numpy.seconds] : []));
  const smallRatios = rounds.flatMap((r) => (r.numpy && r.smallPages ? [r.smallPages.auditSeconds / r.numpy.seconds] : []));
  const list = (xs: number[]): string => xs.map((x) => fixed(x)).join(', ');
  const rows: (string | number)[][] = [
    [`onnx-condense audit${cliEnv ? ' (huge pages, as the CLI runs)' : ''}`, fixed(median(rounds.map((r) => r.ours.auditSeconds))), `runs ${list(rounds.map((r) => r.ours.auditSeconds))}; peak RSS ${fixed(ours.peakRssMiB, 0)} MiB`, ours.weightClusters, ours.outputClusters ?? '-', ours.staticNeurons],
    ['  weight cosine, float32 vs float64', '', `${fixed(ours.weightCosine32Seconds)} s vs ${fixed(ours.weightCosine64Seconds)} s; max |cos32 - cos64| ${ours.maxCosineError.toExponential(1)}; same weight clusters as float64: ${ours.sameWeightClustersAsFloat64 === undefined ? '-' : ours.sameWeightClustersAsFloat64 ? 'yes' : 'NO'}`, '', '', ''],
  ];
  const small = rounds.flatMap((r) => (r.smallPages ? [r.smallPages] : []));
  if (small.length) rows.push(['onnx-condense audit (small pages, a plain Node.js process)', fixed(median(small.map((r) => r.auditSeconds))), `runs ${list(small.map((r) => r.auditSeconds))}; peak RSS ${fixed(Math.max(...small.map((r) => r.peakRssMiB)), 0)} MiB`, small[0]!.weightClusters, small[0]!.outputClusters ?? '-', small[0]!.staticNeurons]);
  if (numpy) rows.push(['numpy + SciPy', fixed(median(numpyRuns.map((r) => r.seconds))), `runs ${list(numpyRuns.map((r) => r.seconds))}; best: ${Object.entries(numpy.steps).map(([k, v]) => `${k} ${fixed(v)}`).join(', ')}`, numpy.weightClusters, numpy.outputClusters, numpy.staticNeurons]);
  printTable(`Whole audit of a dense 1024 -> 4096 ReLU layer on ${samples} samples from one .npy file (seconds, median of ${repeats} rounds, each round numpy then ours in turn)`, ['pipeline', 'median', 'parts', 'weight clusters', 'output clusters', 'static'], rows);
  // CPU seconds (user + system, all threads) move less with the load of a shared machine than wall time.
  const cpuRatios = rounds.flatMap((r) => (r.numpy?.cpuSeconds ? [r.ours.auditCpuSeconds / r.numpy.cpuSeconds] : []));
  if (cpuRatios.length) console.log(`CPU seconds, ours / numpy+SciPy, per round: ${list(cpuRatios)}; median ${fixed(median(cpuRatios))} (ours ${list(rounds.map((r) => r.ours.auditCpuSeconds))}; numpy ${list(numpyRuns.map((r) => r.cpuSeconds ?? NaN))})`);
  if (numpy) console.log(`dense audit / numpy+SciPy, per round: ${list(ratios)}; median ${fixed(median(ratios))}, range ${fixed(Math.min(...ratios))}-${fixed(Math.max(...ratios))} (target <= ${DENSE_TARGET})${smallRatios.length ? `; small pages: ${list(smallRatios)}` : ''}`);
  results.dense = { samples, hugePages: !!cliEnv, rounds };
  if (numpy) verdicts.push({ target: `dense 4096 audit <= ${DENSE_TARGET}x numpy + SciPy`, measured: `median ${fixed(median(ratios))}x over ${ratios.length} rounds (range ${fixed(Math.min(...ratios))}-${fixed(Math.max(...ratios))}; CPU seconds ${cpuRatios.length ? fixed(median(cpuRatios)) : '-'}x)${cliEnv ? ' as the CLI runs (huge pages)' : ''}${smallRatios.length ? `, ${list(smallRatios)} on small pages` : ''}; float32 weight cosines within ${ours.maxCosineError.toExponential(1)} of float64`, isMet: median(ratios) <= DENSE_TARGET });
});

interface BigRun {
  seconds: number;
  baselineMiB: number;
  peakRssMiB: number;
  detail: { layers?: number; neurons?: { before: number; after: number }; maxRelError?: number; error?: string };
}

// Peak RSS of audit and prune may exceed the model file by at most this much (issue 14: under
// 1 GB for a 44 M-parameter float16 model, whose file is 88 MB).
const BIG_CNN_MARGIN_MIB = 900;

await section('big-cnn', () => {
  const file = path.join(OUT_DIR, 'big-cnn.onnx');
  const output = path.join(OUT_DIR, 'big-cnn-pruned.onnx');
  const made = runChild<{ seconds: number; parameters: number; fileBytes: number }>('big-cnn-make', { file });
  const fileMiB = made.fileBytes / 2 ** 20;
  // As the CLI runs them: on huge pages where cli/huge-pages.ts re-runs it so (they can cost RSS).
  const auditRun = runChild<BigRun>('big-cnn-run', { file, step: 'audit', samples: 8 }, 600, hugePagesEnvironment(['audit']));
  const pruneRun = runChild<BigRun>('big-cnn-run', { file, step: 'prune', samples: 64, output }, 600, hugePagesEnvironment(['prune']));
  for (const f of [file, output]) fs.rmSync(f, { force: true });
  const limit = fileMiB + BIG_CNN_MARGIN_MIB;
  const rows = [
    ['audit --random 8', fixed(auditRun.seconds, 1), fixed(auditRun.peakRssMiB, 0), fixed(auditRun.peakRssMiB - fileMiB, 0), auditRun.peakRssMiB <= limit ? 'yes' : 'NO', `${auditRun.detail.layers} layers`],
    ['prune --random 64', fixed(pruneRun.seconds, 1), fixed(pruneRun.peakRssMiB, 0), fixed(pruneRun.peakRssMiB - fileMiB, 0), pruneRun.peakRssMiB <= limit ? 'yes' : 'NO', pruneRun.detail.error ? `FAILED: ${pruneRun.detail.error}` : `neurons ${pruneRun.detail.neurons!.before} -> ${pruneRun.detail.neurons!.after}, max rel err ${pruneRun.detail.maxRelError!.toExponential(1)}`],
  ];
  printTable(`A generated ${(made.parameters / 1e6).toFixed(1)} M-parameter float16 CNN (${fixed(fileMiB, 0)} MiB file): peak RSS against file + ${BIG_CNN_MARGIN_MIB} MiB = ${fixed(limit, 0)} MiB`, ['step', 's', 'peak RSS MiB', 'over the file', 'within margin', 'what'], rows);
  results['big-cnn'] = { made, auditRun, pruneRun, marginMiB: BIG_CNN_MARGIN_MIB };
  verdicts.push({ target: `${(made.parameters / 1e6).toFixed(0)} M-param fp16 CNN: peak RSS <= file + ${BIG_CNN_MARGIN_MIB} MiB (${fixed(limit, 0)} MiB)`, measured: `audit ${fixed(auditRun.peakRssMiB, 0)} MiB, prune ${fixed(pruneRun.peakRssMiB, 0)} MiB`, isMet: auditRun.peakRssMiB <= limit && pruneRun.peakRssMiB <= limit });
});

interface ShardsResult {
  samples: number;
  singleSeconds: number;
  collectSeconds: number;
  mergeSeconds: number;
  mergedAuditSeconds: number;
  sameClusters: boolean;
  worstRelativeScatterDifference: number;
  statsBytes: number;
  layers: string[];
}

await section('shards', () => {
  const r = runChild<ShardsResult>('shards', { samples: quick ? 256 : 1024 });
  printTable(`Sharded statistics: 4 shards of ${r.samples} samples (CNN 32-256 ch, 32x32) collected apart and merged with --stats, against one audit over all (seconds)`, ['single audit', 'collect 4 shards', 'read + check + merge', 'audit --stats', 'same clusters', 'max rel scatter diff', 'stats files MiB'], [[fixed(r.singleSeconds), fixed(r.collectSeconds), fixed(r.mergeSeconds, 3), fixed(r.mergedAuditSeconds), r.sameClusters ? 'yes' : 'NO', r.worstRelativeScatterDifference.toExponential(1), fixed(r.statsBytes / 2 ** 20)]]);
  results.shards = r;
  verdicts.push({ target: 'sharded audit (4 shards) equals one run', measured: `${r.sameClusters ? 'same' : 'DIFFERENT'} clusters, scatter within ${r.worstRelativeScatterDifference.toExponential(1)}; merge ${fixed(r.mergeSeconds, 3)} s`, isMet: r.sameClusters && r.worstRelativeScatterDifference < 1e-4 });
});

await section('budget', () => {
  // Issue 11's budgeted prune: not on main when this bench was written (docs/performance.md).
  console.log('\nbudget search / audit: not measured: the budgeted prune (issue 11) is not on main yet');
  results.budget = { available: false };
  verdicts.push({ target: 'budget search / audit', measured: 'not available (issue 11 not merged)', isMet: undefined });
});

interface MemoryResult {
  samples: number;
  seconds: number;
  baselineMiB: number;
  peakRssMiB: number;
}

await section('memory', () => {
  const mlp: ModelSpec = { kind: 'mlp', spec: { inputWidth: 1024, widths: [1024], classes: 10, seed: 6 } };
  const cases: { name: string; model: ModelSpec; samples: number; file?: boolean }[] = [
    { name: 'CNN, random probes', model: { kind: 'cnn', spec: CNN }, samples: quick ? 256 : 512 },
    // 8 runs of 1024 at 1x: fewer would measure the process before its first garbage collection
    // (V8 collects once ~64 MiB of array buffers are dropped), not its steady state.
    { name: 'MLP 1024, random probes', model: mlp, samples: 8192 },
    ...(quick ? [] : [{ name: 'MLP 1024, .npy probes', model: mlp, samples: 8192, file: true }]),
  ];
  const rows: (string | number)[][] = [];
  const out: unknown[] = [];
  for (const c of cases) {
    const runs = [c.samples, 10 * c.samples].map((samples) => {
      let probeFile: string | undefined;
      if (c.file) {
        probeFile = path.join(OUT_DIR, `memory-probes-${samples}.npy`);
        runChild('dense-files', { width: 8, inputWidth: 1024, samples, prefix: path.join(OUT_DIR, `memory-${samples}`) });
        fs.renameSync(path.join(OUT_DIR, `memory-${samples}-probes.npy`), probeFile);
        for (const ext of ['.onnx', '.npz']) fs.rmSync(path.join(OUT_DIR, `memory-${samples}${ext}`), { force: true });
      }
      const r = runChild<MemoryResult>('memory', { model: c.model, samples, ...(probeFile ? { probeFile } : {}) });
      if (probeFile) fs.rmSync(probeFile, { force: true });
      return r;
    });
    const ratio = runs[1]!.peakRssMiB / runs[0]!.peakRssMiB;
    rows.push([c.name, runs[0]!.samples, fixed(runs[0]!.peakRssMiB, 0), runs[1]!.samples, fixed(runs[1]!.peakRssMiB, 0), fixed(ratio), fixed(runs[0]!.seconds, 1), fixed(runs[1]!.seconds, 1)]);
    out.push({ ...c, runs });
    verdicts.push({ target: `${c.name}: 10x samples <= 1.2x peak RSS`, measured: `${fixed(ratio)}x (${fixed(runs[0]!.peakRssMiB, 0)} -> ${fixed(runs[1]!.peakRssMiB, 0)} MiB)`, isMet: ratio <= 1.2 });
  }
  printTable('Peak resident memory of a whole audit, one process each (MiB)', ['probes', 'samples', 'peak RSS', '10x samples', 'peak RSS', 'ratio', 's', 's (10x)'], rows);
  results.memory = out;
});

interface PruneResult {
  pruneSeconds: number;
  neurons: { before: number; after: number };
  maxRelError: number;
  flopsRemoved: number;
  originalSeconds: number;
  prunedSeconds: number;
  speedup: number;
}

await section('prune', () => {
  const cases: { name: string; model: ModelSpec }[] = [
    { name: 'MLP 1024-2048-2048, 50% planted', model: { kind: 'mlp', spec: { inputWidth: 1024, widths: [2048, 2048], classes: 10, seed: 7, redundancy: 0.5 } } },
    { name: 'MLP 1024-2048-2048, 25% planted', model: { kind: 'mlp', spec: { inputWidth: 1024, widths: [2048, 2048], classes: 10, seed: 8, redundancy: 0.25 } } },
    { name: 'CNN 32-128 ch, 50% planted', model: { kind: 'cnn', spec: { ...CNN, seed: 9, redundancy: 0.5 } } },
  ];
  const rows: (string | number)[][] = [];
  const out: unknown[] = [];
  for (const c of cases) {
    const r = runChild<PruneResult>('prune', { model: c.model, samples: quick ? 512 : 2048, batchSize: 64, passes: 3 });
    rows.push([c.name, `${r.neurons.before} -> ${r.neurons.after}`, fixed(r.flopsRemoved * 100, 1) + '%', fixed(r.originalSeconds, 3), fixed(r.prunedSeconds, 3), fixed(r.speedup), fixed(1 / (1 - r.flopsRemoved)), r.maxRelError.toExponential(1), fixed(r.pruneSeconds, 1)]);
    out.push({ ...c, ...r });
  }
  printTable('Latency of original against pruned models (seconds for the same batches of 64)', ['model', 'neurons', 'FLOPs removed', 'original', 'pruned', 'speedup', 'ideal', 'max rel err', 'prune s'], rows);
  results.prune = out;
});

interface LargeMake {
  seconds: number;
  modelBytes: number;
  externalDataBytes: number;
  peakRssMiB: number;
}
interface LargeRun {
  loadSeconds: number;
  auditSeconds: number;
  layers: { name: string; width: number; outputClusters?: number }[];
  auditPeakRssMiB: number;
  prune: { seconds: number; error?: string; neurons?: { before: number; after: number }; maxRelError?: number; outputBytes?: number; outputDataBytes?: number };
  peakRssMiB: number;
}

await section('large', () => {
  const file = path.join(OUT_DIR, 'large.onnx');
  const output = path.join(OUT_DIR, 'large-pruned.onnx');
  const made = runChild<LargeMake>('large-make', { file, rowsPerTable: 180_000 }, 900);
  const run = runChild<LargeRun>('large-run', { file, output }, 1800);
  for (const f of [file, `${file}.data`, output, `${output}.data`]) fs.rmSync(f, { force: true });
  const gb = (bytes: number): string => (bytes / 1e9).toFixed(2);
  const rows: (string | number)[][] = [
    ['write', fixed(made.seconds, 1), `model ${gb(made.modelBytes)} GB + external data ${gb(made.externalDataBytes)} GB`, fixed(made.peakRssMiB, 0)],
    ['load', fixed(run.loadSeconds, 1), 'lazy: external data stays on disk', '-'],
    ['audit --random 64', fixed(run.auditSeconds, 1), run.layers.map((l) => `${l.name} ${l.width}->${l.outputClusters ?? '?'}`).join(', '), fixed(run.auditPeakRssMiB, 0)],
    ['prune --random 128', fixed(run.prune.seconds, 1), run.prune.error ? `FAILED: ${run.prune.error}` : `neurons ${run.prune.neurons!.before} -> ${run.prune.neurons!.after}, max rel err ${run.prune.maxRelError!.toExponential(1)}, wrote ${gb(run.prune.outputBytes!)} + ${gb(run.prune.outputDataBytes!)} GB`, fixed(run.peakRssMiB, 0)],
  ];
  printTable('A model over 2 GB (external data) through audit and prune', ['step', 's', 'what', 'peak RSS MiB'], rows);
  results.large = { made, run };
  verdicts.push({ target: 'model > 2 GB: loads, audits and prunes', measured: run.prune.error ? `audit ok; prune failed: ${run.prune.error}` : 'all three ok', isMet: !run.prune.error });
});

printTable('Targets', ['target', 'measured', 'met'], verdicts.map((v) => [v.target, v.measured, v.isMet === undefined ? '-' : v.isMet ? 'yes' : 'NO']));
results.verdicts = verdicts;
fs.mkdirSync(OUT_DIR, { recursive: true });
fs.writeFileSync(path.join(OUT_DIR, quick ? 'results-quick.json' : 'results.json'), JSON.stringify(results, null, 2));
console.log(`\nresults: ${path.relative(process.cwd(), path.join(OUT_DIR, quick ? 'results-quick.json' : 'results.json'))}`);
