// audit: find the layers, optionally run probe data for output statistics, measure condensation.

import { findChannelGroups, type ChannelGroup } from '../analysis/channel-groups.js';
import { findLayers } from '../analysis/find-layers.js';
import { measureCondensation, resolveAnalysisOptions, type AnalysisOptions, type LayerCondensation } from '../analysis/measure-condensation.js';
import type { Model } from '../ir/model.js';
import { loadModel } from '../onnx/model-file.js';
import type { CollectProgress } from '../runtime/collect-statistics.js';
import type { SessionOptions } from '../runtime/model-session.js';
import type { ProbeOptions } from '../runtime/probe-data.js';
import { foldBatchNorms } from '../rewrite/fold-batch-norms.js';
import { cloneModel } from './clone-model.js';
import { collectLayerStatistics, type PositionSampling } from './collect-layer-statistics.js';
import { prepareProbes, wantsProbes } from './prepare-probes.js';
import { inputWeightVectors } from '../analysis/input-weights.js';
import { encodeModel } from '../onnx/encode-model.js';
import { cosineMatrixOnRuntime } from '../runtime/gram-matrix.js';

export interface AuditOptions {
  probe?: ProbeOptions;
  analysis?: AnalysisOptions;
  session?: SessionOptions;
  onProgress?: (p: CollectProgress) => void;
  /** Called as each stage begins (for progress lines): "collecting statistics", "measuring layer 3/40: fc3". */
  onStage?: (stage: string) => void;
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
  /** How inputs other than plain samples were fed (pinned values, zero state, token ids). */
  probeNotes: string[];
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
  let probeNotes: string[] = [];
  let positionSampling: PositionSampling[] | undefined;
  if (wantsProbes(options.probe)) {
    const probes = prepareProbes(loaded, options.probe!, undefined);
    options.onStage?.('collecting statistics');
    probeSource = probes.source;
    probeNotes = probes.notes;
    probeSamples = probes.fit.count;
    const collected = await collectLayerStatistics(loaded, path, layers, probes.fit, {
      ...(options.session ? { session: options.session } : {}),
      ...(options.probe?.batchSize ? { batchSize: options.probe.batchSize } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    statistics = collected;
    positionSampling = collected.positionSampling;
  }
  const measured: LayerCondensation[] = [];
  for (const [i, l] of layers.entries()) {
    options.onStage?.(`measuring layer ${i + 1}/${layers.length}: ${l.name}`);
    // Wide layers' weight cosines on the runtime's GEMM (a JavaScript loop takes seconds); one
    // layer at a time, so only one n x n matrix is in the making.
    const computed: { weightCosine?: Float64Array } = {};
    if (l.width >= 512) {
      const { rows, dim } = inputWeightVectors(l);
      computed.weightCosine = await cosineMatrixOnRuntime(rows, l.width, dim, (m) => encodeModel(m).modelBytes, options.session ?? {});
    }
    measured.push(measureCondensation(l, statistics.get(l.name), analysis, computed));
  }
  return {
    path,
    model: loaded,
    parameterCount: original.parameterCount(),
    layers: measured,
    groups: findChannelGroups(layers),
    probeSamples,
    probeSource,
    probeNotes,
    similarityThreshold: analysis.similarityThreshold,
    staticThreshold: analysis.staticThreshold,
    ...(positionSampling ? { positionSampling } : {}),
  };
}
