// Statistics in shards: `condense collect` runs one shard of probe data and writes its moments
// (runtime/statistics-file.ts); `--stats 'shard-*.stats'` reads every shard, checks that they come
// from this model and the same settings, and merges them (Chan's pairwise update) into what one
// run over all their probes would have collected. The statistics are sums, so the order of the
// shards changes nothing but rounding; files are merged in sorted order, so not even that.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NeuronLayer } from '../analysis/find-layers.js';
import { FileNotFoundError, OptionError, StatisticsFileError } from '../errors.js';
import type { Model } from '../ir/model.js';
import { encodeModel } from '../onnx/encode-model.js';
import { loadModel, writeAtomically } from '../onnx/model-file.js';
import { dequantizeConstantWeights } from '../rewrite/dequantize-weights.js';
import { foldBatchNorms } from '../rewrite/fold-batch-norms.js';
import type { CollectProgress } from '../runtime/collect-statistics.js';
import type { SessionOptions } from '../runtime/model-session.js';
import type { ProbeOptions } from '../runtime/probe-data.js';
import { decodeStatisticsFile, encodeStatisticsFile, type StatisticsHeader } from '../runtime/statistics-file.js';
import { cloneModel } from '../ir/clone-model.js';
import { collectLayerStatistics, type LayerStatistics } from './collect-layer-statistics.js';
import { prepareProbes, wantsProbes } from './prepare-probes.js';
import { collectInWorkers } from './parallel-collect.js';
import { findWatchedLayers } from './watched-layers.js';

/** sha256 (hex) of a model's graph and weights: its encoding, with every tensor over 1 KiB hashed from an external-data chunk. */
export function modelFingerprint(model: Model): string {
  const encoded = encodeModel(model, { externalData: { location: 'weights', thresholdBytes: 1024 } });
  const hash = createHash('sha256').update(encoded.modelBytes);
  for (const chunk of encoded.externalChunks) hash.update(chunk);
  return hash.digest('hex');
}

export interface CollectOptions {
  probe: ProbeOptions;
  session?: SessionOptions;
  onProgress?: (p: CollectProgress) => void;
  /** Collect in this many worker threads (a model given by path only). */
  workers?: number;
}

/** One shard's statistics and the header that goes with them. */
export interface CollectedShard {
  header: StatisticsHeader;
  statistics: LayerStatistics;
}

/** Runs one shard of probe data through the model (as audit would) and returns its moments with their header. */
export async function collectShard(input: string | Model, options: CollectOptions): Promise<CollectedShard> {
  if (!wantsProbes(options.probe)) throw new OptionError('--probe', 'is required: collect needs probe data (--probe file or --random n)');
  const subject = typeof input === 'string' ? input : 'model';
  const original = typeof input === 'string' ? loadModel(input) : input;
  const model = cloneModel(original);
  dequantizeConstantWeights(model);
  foldBatchNorms(model);
  const { watched } = findWatchedLayers(model);
  const probes = prepareProbes(model, options.probe, undefined);
  const statistics =
    (options.workers ?? 1) > 1 && typeof input === 'string'
      ? await collectInWorkers(input, options.probe, undefined, probes.fit.count, options.workers!, options.session)
      : await collectLayerStatistics(model, subject, watched, probes.fit, {
          ...(options.session ? { session: options.session } : {}),
          ...(options.probe.batchSize ? { batchSize: options.probe.batchSize } : {}),
          ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        });
  const header: StatisticsHeader = {
    model: modelFingerprint(original),
    layers: [...statistics.keys()].map((name) => ({ name, width: statistics.get(name)!.variableCount, positionStride: statistics.positionStrides.get(name) ?? 1 })),
    settings: { positionSampling: true },
    samples: probes.fit.count,
    probeSource: probes.source,
    positionSampling: statistics.positionSampling,
  };
  return { header, statistics };
}

/** Writes a shard atomically; returns the path. */
export function writeStatisticsFile(file: string, shard: CollectedShard): string {
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new OptionError('--output', `folder "${dir}" does not exist`);
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) throw new OptionError('--output', `"${file}" is a folder; expected a file path`);
  return writeAtomically(file, encodeStatisticsFile(shard.header, shard.statistics));
}

/**
 * The files `patterns` name, sorted: a pattern may use * and ? in its last part (shard-*.stats);
 * the shell may have expanded it already. Each pattern must name at least one file.
 */
export function expandStatisticsPaths(patterns: string[]): string[] {
  const files = new Set<string>();
  for (const pattern of patterns) {
    const base = path.basename(pattern);
    if (!/[*?]/.test(base)) {
      if (!fs.existsSync(pattern)) throw new FileNotFoundError(pattern);
      files.add(pattern);
      continue;
    }
    const dir = path.dirname(pattern);
    if (/[*?]/.test(dir)) throw new OptionError('--stats', `"${pattern}": wildcards are allowed only in the file name, not in folders`);
    const matcher = new RegExp(`^${base.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    const matched = fs.existsSync(dir) ? fs.readdirSync(dir).filter((name) => matcher.test(name)) : [];
    if (matched.length === 0) throw new OptionError('--stats', `no file matches "${pattern}"`);
    for (const name of matched) files.add(path.join(dir, name));
  }
  return [...files].sort();
}

/** Merged shards: the statistics of one run over all their probes. */
export interface MergedShards {
  statistics: LayerStatistics;
  samples: number;
  files: string[];
  /** Seconds spent reading, checking and merging. */
  seconds: number;
}

/**
 * Reads and merges statistics files for `original` (whose watched `layers` were found on its
 * BatchNorm-folded copy). Refuses a file from another model, other layers or other settings,
 * naming it and the first file.
 */
export function readStatisticsShards(patterns: string[], original: Model, layers: NeuronLayer[], watched: NeuronLayer[] = layers): MergedShards {
  const started = performance.now();
  const files = expandStatisticsPaths(patterns);
  const fingerprint = modelFingerprint(original);
  const listOf = (ls: NeuronLayer[]): string => ls.filter((l) => !l.subgraphOf && l.width > 0).map((l) => `${l.name}:${l.width}`).join(',');
  const expectedLayers = listOf(watched);
  // Files written before group tensors were collected hold the layers only: still this model's
  // statistics (group merges then stay exact), as long as every shard holds the same list.
  const layersOnly = listOf(layers);
  let first: { file: string; header: StatisticsHeader } | undefined;
  let merged: LayerStatistics | undefined;
  let samples = 0;
  for (const file of files) {
    let bytes: Uint8Array;
    try {
      bytes = fs.readFileSync(file);
    } catch (error) {
      throw new FileNotFoundError(file, { cause: error });
    }
    const { header, moments } = decodeStatisticsFile(bytes, file);
    if (header.model !== fingerprint) throw new StatisticsFileError(file, `was collected on another model (sha256 ${header.model.slice(0, 12)}..., this model is ${fingerprint.slice(0, 12)}...); expected statistics of this model`);
    const shardLayers = header.layers.map((l) => `${l.name}:${l.width}`).join(',');
    if (shardLayers !== expectedLayers && shardLayers !== layersOnly) throw new StatisticsFileError(file, `holds layers ${shardLayers || '(none)'}; this model's are ${expectedLayers || '(none)'}`);
    if (first && shardLayers !== first.header.layers.map((l) => `${l.name}:${l.width}`).join(',')) {
      throw new StatisticsFileError(file, `holds other tensors than ${first.file} (${shardLayers}); expected shards collected by one version of condense`);
    }
    if (first) {
      const settings = (h: StatisticsHeader): string => JSON.stringify({ settings: h.settings, strides: h.layers.map((l) => l.positionStride) });
      if (settings(header) !== settings(first.header)) throw new StatisticsFileError(file, `was collected with other settings than ${first.file} (${settings(header)} against ${settings(first.header)}); expected one setting for every shard`);
    }
    samples += header.samples;
    if (!merged) {
      first = { file, header };
      merged = Object.assign(moments, {
        positionSampling: header.positionSampling.map((p) => ({ ...p, calibrationRows: { ...p.calibrationRows } })),
        positionStrides: new Map(header.layers.map((l) => [l.name, l.positionStride])),
      });
      continue;
    }
    for (const [name, m] of moments) merged.get(name)!.addBatch(m.mean, m.scatter, m.count);
    // Each shard calibrated on its own first batch: report the worst.
    for (const p of header.positionSampling) {
      const kept = merged.positionSampling.find((q) => q.key === p.key);
      if (kept) kept.maxCosineError = Math.max(kept.maxCosineError, p.maxCosineError);
    }
  }
  if (!merged) throw new OptionError('--stats', 'names no file');
  return { statistics: merged, samples, files, seconds: (performance.now() - started) / 1000 };
}
