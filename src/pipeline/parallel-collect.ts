// `--workers N`: statistics collection split over N worker threads on one machine, for when the
// cores outnumber what one onnxruntime session keeps busy. Each worker opens its own session with
// cores / N intra-op threads and collects one consecutive range of the probe samples; the ranges'
// moments merge in order (Chan's pairwise update), exactly as shards from `condense collect` do.

import { createRequire } from 'node:module';
import * as os from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CondenseError, type CondenseErrorCode, OptionError } from '../errors.js';
import { StreamingMoments } from '../numeric/streaming-moments.js';
import { loadModel } from '../onnx/model-file.js';
import { dequantizeConstantWeights } from '../rewrite/dequantize-weights.js';
import { foldBatchNorms } from '../rewrite/fold-batch-norms.js';
import type { PositionSampling } from '../runtime/collect-statistics.js';
import type { SessionOptions } from '../runtime/model-session.js';
import { sliceProbes, type ProbeOptions } from '../runtime/probe-data.js';
import { cloneModel } from '../ir/clone-model.js';
import { collectLayerStatistics, type LayerStatistics } from './collect-layer-statistics.js';
import { prepareProbes } from './prepare-probes.js';
import { findWatchedLayers } from './watched-layers.js';

/** What one worker is asked to do. */
export interface WorkerTask {
  model: string;
  probe: ProbeOptions;
  /** As prepareProbes takes it: prune holds out samples for verification, audit does not. */
  holdout: { samples?: number } | undefined;
  from: number;
  to: number;
  session: SessionOptions;
}

interface RangeResult {
  layers: { name: string; count: number; mean: Float64Array; scatter: Float64Array; positionStride: number }[];
  positionSampling: PositionSampling[];
}

/** A worker body that registers tsx's loader, then imports the TypeScript worker (tests and tsx runs only). */
function sourceLoader(script: URL): string {
  const api = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  return `import(${JSON.stringify(api)}).then((api) => { api.register(); return import(${JSON.stringify(script.href)}); });`;
}

/** The worker's side: the statistics of samples [from, to) of the fit probes. */
export async function collectRange(task: WorkerTask): Promise<RangeResult> {
  const model = cloneModel(loadModel(task.model));
  dequantizeConstantWeights(model);
  foldBatchNorms(model);
  // The same layers and group tensors as a run in one process, so the merged moments match it.
  const { watched } = findWatchedLayers(model);
  const fit = prepareProbes(model, task.probe, task.holdout).fit;
  const statistics = await collectLayerStatistics(model, task.model, watched, sliceProbes(fit, task.from, task.to), {
    session: task.session,
    ...(task.probe.batchSize ? { batchSize: task.probe.batchSize } : {}),
  });
  return {
    layers: [...statistics].map(([name, m]) => ({ name, count: m.count, mean: m.mean, scatter: m.scatter, positionStride: statistics.positionStrides.get(name) ?? 1 })),
    positionSampling: statistics.positionSampling,
  };
}

/**
 * The statistics of all `count` fit probes, collected by `workers` threads over consecutive
 * ranges and merged in order. `workers` is capped at the number of samples.
 */
export async function collectInWorkers(modelPath: string, probe: ProbeOptions, holdout: WorkerTask['holdout'], count: number, workers: number, session: SessionOptions = {}): Promise<LayerStatistics> {
  if (!Number.isInteger(workers) || workers < 1) throw new OptionError('--workers', `expected a positive whole number, got "${workers}"`);
  const n = Math.max(1, Math.min(workers, count));
  const threads = session.threads ?? Math.max(1, Math.floor(os.availableParallelism() / n));
  const bounds = Array.from({ length: n + 1 }, (_, k) => Math.round((k * count) / n));
  // Under a TypeScript loader (tests, tsx) the worker is the .ts source; built, it is the .js file.
  const isSource = import.meta.url.endsWith('.ts');
  const script = new URL(`./collect-worker.${isSource ? 'ts' : 'js'}`, import.meta.url);
  const results = await Promise.all(
    bounds.slice(0, -1).map(
      (from, k) =>
        new Promise<RangeResult>((resolve, reject) => {
          const task: WorkerTask = { model: modelPath, probe, holdout, from, to: bounds[k + 1]!, session: { ...session, threads } };
          const worker = isSource ? new Worker(sourceLoader(script), { eval: true, workerData: task }) : new Worker(script, { workerData: task });
          worker.once('message', (message: { result?: RangeResult; error?: { code?: CondenseErrorCode; subject?: string; message: string } }) => {
            void worker.terminate();
            if (message.result) return resolve(message.result);
            const e = message.error!;
            reject(e.code && e.subject !== undefined ? new CondenseError(e.code, e.subject, e.message.slice(e.subject.length + 2)) : new Error(`statistics worker ${k + 1} of ${n} failed: ${e.message}`));
          });
          worker.once('error', reject);
          worker.once('exit', (code) => reject(new Error(`statistics worker ${k + 1} of ${n} exited with code ${code} before answering`)));
        }),
    ),
  );
  const merged = new Map<string, StreamingMoments>();
  for (const r of results) {
    for (const l of r.layers) {
      let m = merged.get(l.name);
      if (!m) merged.set(l.name, (m = new StreamingMoments(l.mean.length)));
      m.addBatch(l.mean, l.scatter, l.count);
    }
  }
  const positionSampling = results[0]!.positionSampling;
  for (const r of results.slice(1)) {
    for (const p of r.positionSampling) {
      const kept = positionSampling.find((q) => q.key === p.key);
      if (kept) kept.maxCosineError = Math.max(kept.maxCosineError, p.maxCosineError);
    }
  }
  return Object.assign(merged, { positionSampling, positionStrides: new Map(results[0]!.layers.map((l) => [l.name, l.positionStride])) });
}
