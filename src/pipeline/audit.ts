// audit: find the layers, optionally run probe data for output statistics, measure condensation.

import { findChannelGroups, type ChannelGroup } from '../analysis/channel-groups.js';
import { findLayers } from '../analysis/find-layers.js';
import { resolveAnalysisOptions, type AnalysisOptions, type LayerCondensation } from '../analysis/measure-condensation.js';
import type { Model } from '../ir/model.js';
import { loadModel } from '../onnx/model-file.js';
import type { CollectProgress } from '../runtime/collect-statistics.js';
import type { SessionOptions } from '../runtime/model-session.js';
import type { ProbeOptions } from '../runtime/probe-data.js';
import { foldBatchNorms } from '../rewrite/fold-batch-norms.js';
import { cloneModel } from './clone-model.js';
import { collectLayerStatistics, type PositionSampling } from './collect-layer-statistics.js';
import { prepareProbes, wantsProbes } from './prepare-probes.js';
import { measureLayers } from './measure-layers.js';
import { OptionError } from '../errors.js';
import { readStatisticsShards } from './statistics-shards.js';
import { collectInWorkers } from './parallel-collect.js';

export interface AuditOptions {
  probe?: ProbeOptions;
  analysis?: AnalysisOptions;
  session?: SessionOptions;
  onProgress?: (p: CollectProgress) => void;
  /** Statistics files (`condense collect`; patterns like shard-*.stats) to merge instead of running probes. */
  statistics?: string[];
  /** Collect in this many worker threads, each over a range of the probes (a model given by path only). */
  workers?: number;
}

export interface AuditResult {
  path: string;
  model: Model;
  parameterCount: number;
  layers: LayerCondensation[];
  /** Layers whose channels are tied by residual Adds (dependency groups). */
  groups: ChannelGroup[];
  /** Probe samples run for output statistics (0: data-free audit, weight measures only). */
  probeSamples: number;
  probeSource: string | undefined;
  similarityThreshold: number;
  staticThreshold: number;
  /**
   * Layers whose output statistics kept every positionStride-th position (where all of them would
   * have cost more than the layer), and the largest cosine error that caused on a calibration
   * batch. Absent for a data-free audit.
   */
  positionSampling?: PositionSampling[];
}

/** Audits a model file (or a loaded model): per-layer condensation measures. */
export async function audit(model: string | Model, options: AuditOptions = {}): Promise<AuditResult> {
  const path = typeof model === 'string' ? model : 'model';
  const original = typeof model === 'string' ? loadModel(model) : model;
  const analysis = resolveAnalysisOptions(options.analysis);
  // Measures are taken on BatchNorm-folded weights: a conv channel's u_k includes its BN.
  const loaded = cloneModel(original);
  foldBatchNorms(loaded);
  const layers = findLayers(loaded);
  let statistics = new Map<string, import('../numeric/streaming-moments.js').StreamingMoments>();
  let probeSamples = 0;
  let probeSource: string | undefined;
  let positionSampling: PositionSampling[] | undefined;
  if (options.statistics?.length) {
    if (wantsProbes(options.probe)) throw new OptionError('--stats', 'cannot be combined with --probe or --random: the statistics files already hold the probes\' moments');
    const shards = readStatisticsShards(options.statistics, original, layers);
    statistics = shards.statistics;
    positionSampling = shards.statistics.positionSampling;
    probeSamples = shards.samples;
    probeSource = `${shards.files.length} statistics file${shards.files.length === 1 ? '' : 's'} (${shards.files.join(', ')})`;
  } else if (wantsProbes(options.probe)) {
    const probes = prepareProbes(loaded, options.probe!, undefined);
    probeSource = probes.source;
    probeSamples = probes.fit.count;
    const collected =
      (options.workers ?? 1) > 1 && typeof model === 'string'
        ? await collectInWorkers(model, options.probe!, undefined, probes.fit.count, options.workers!, options.session)
        : await collectLayerStatistics(loaded, path, layers, probes.fit, {
            ...(options.session ? { session: options.session } : {}),
            ...(options.probe?.batchSize ? { batchSize: options.probe.batchSize } : {}),
            ...(options.onProgress ? { onProgress: options.onProgress } : {}),
          });
    statistics = collected;
    positionSampling = collected.positionSampling;
  }
  const measured = await measureLayers(layers, statistics, analysis, options.session);
  return {
    path,
    model: loaded,
    parameterCount: original.parameterCount(),
    layers: measured,
    groups: findChannelGroups(layers),
    probeSamples,
    probeSource,
    similarityThreshold: analysis.similarityThreshold,
    staticThreshold: analysis.staticThreshold,
    ...(positionSampling ? { positionSampling } : {}),
  };
}
