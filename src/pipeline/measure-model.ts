// measureModel: the one front half every command shares. Loads the model (once), folds BatchNorm
// into a structural copy, finds layers and dependency groups, runs the probes through one
// statistics session (once), and measures condensation. audit, prune, check and series take what
// they need from the Measurement it returns; nothing downstream loads, folds or finds again.

import { auditHeads, type AttentionAudit } from '../analysis/head-audit.js';
import { DEFAULT_EXACT_TOLERANCE } from '../rewrite/plan-merges.js';
import { planHeadMerges, type HeadMergePlan } from '../rewrite/merge-heads.js';
import type { DependencyGroup } from '../analysis/channel-groups.js';
import { checkFiniteWeights } from '../analysis/finite-weights.js';
import type { NeuronLayer } from '../analysis/find-layers.js';
import { findWatchedLayers } from './watched-layers.js';
import { resolveAnalysisOptions, type AnalysisOptions, type LayerCondensation } from '../analysis/measure-condensation.js';
import { cloneModel } from '../ir/clone-model.js';
import type { Model } from '../ir/model.js';
import { loadModel } from '../onnx/model-file.js';
import type { CollectProgress } from '../runtime/collect-statistics.js';
import type { SessionOptions } from '../runtime/model-session.js';
import type { ProbeOptions } from '../runtime/probe-data.js';
import { dequantizeConstantWeights } from '../rewrite/dequantize-weights.js';
import { foldBatchNorms } from '../rewrite/fold-batch-norms.js';
import { collectLayerStatistics, type LayerStatistics } from './collect-layer-statistics.js';
import { prepareProbes, wantsProbes, type HoldoutOptions, type PreparedProbes } from './prepare-probes.js';
import { OptionError } from '../errors.js';
import { measureLayers, RUNTIME_COSINE_MIN_WIDTH } from './measure-layers.js';
import { collectInWorkers } from './parallel-collect.js';
import { readStatisticsShards } from './statistics-shards.js';

export interface MeasureOptions {
  probe?: ProbeOptions;
  analysis?: AnalysisOptions;
  session?: SessionOptions;
  /**
   * Hold probes out for verification (prune, check's prune rule): random probes get a second,
   * independently seeded draw of `samples` (default max(16, n/4)); files lose their last quarter.
   */
  holdout?: HoldoutOptions;
  /**
   * Random probes to draw when `probe` asks for none (verification needs data); default none. A
   * function sees the layers found (a least-squares refit wants more samples than neurons).
   */
  defaultRandomProbes?: number | ((layers: NeuronLayer[]) => number);
  onProgress?: (p: CollectProgress) => void;
  /**
   * Statistics files (`condense collect`) to merge instead of collecting on the probes; probes,
   * when asked for, then serve only as the held-out set.
   */
  statistics?: string[];
  /** Collect in this many worker threads over ranges of the probes (a model given by path only). */
  workers?: number;
  /** Called as each stage begins (for progress lines): "collecting statistics", "measuring layer 3/40: fc3". */
  onStage?: (stage: string) => void;
  /**
   * false: prepare the probes (and the held-out set) but run no statistics session; layers are
   * measured from weights alone. Exact-only prune plans from weights and needs data only to verify.
   */
  collect?: boolean;
}

/** Layers at least this wide get their weight cosines from onnxruntime's GEMM (a JavaScript loop takes seconds). */
export const RUNTIME_COSINE_WIDTH = RUNTIME_COSINE_MIN_WIDTH;

export interface Measurement {
  /** The model file, or 'model' for a model passed in memory. */
  path: string;
  /** The model as loaded: what verification compares a rewrite with. */
  original: Model;
  /** A structural copy with BatchNorm folded: the model layers, groups and statistics refer to. */
  model: Model;
  layers: NeuronLayer[];
  groups: DependencyGroup[];
  /** Attention blocks with their per-head audit (weights only; exact relations at the default exact tolerance). */
  attention: AttentionAudit[];
  /** Output moments per layer name (empty for a data-free measurement). */
  statistics: LayerStatistics;
  /** One per layer, in the order of `layers`. */
  measured: LayerCondensation[];
  /** The probes the statistics were fitted on (and the held-out ones), when any ran. */
  probes: PreparedProbes | undefined;
  analysis: Required<AnalysisOptions>;
  /** Where the statistics came from when they were read from files (--stats). */
  statisticsFiles?: { samples: number; source: string; mergeSeconds: number };
}

/** Loads (when given a path), folds, finds layers and groups, collects statistics once, and measures. */
export async function measureModel(model: string | Model, options: MeasureOptions = {}): Promise<Measurement> {
  const path = typeof model === 'string' ? model : 'model';
  const analysis = resolveAnalysisOptions(options.analysis);
  const original = typeof model === 'string' ? loadModel(model) : model;
  // Measures are taken on BatchNorm-folded weights: a conv channel's u_k includes its BN.
  const folded = cloneModel(original);
  dequantizeConstantWeights(folded);
  foldBatchNorms(folded);
  // Projections feeding recognised attention merge as head blocks, not as single neurons.
  const { layers, attention: blocks, groups, watched } = findWatchedLayers(folded);
  checkFiniteWeights(layers, path);
  const attention = blocks.map((b) => auditHeads(b, { similarityThreshold: analysis.similarityThreshold, exactTolerance: DEFAULT_EXACT_TOLERANCE }));

  const probeOptions: ProbeOptions | undefined = wantsProbes(options.probe)
    ? options.probe
    : options.defaultRandomProbes
      ? { ...options.probe, random: typeof options.defaultRandomProbes === 'function' ? options.defaultRandomProbes(layers) : options.defaultRandomProbes }
      : undefined;
  let statistics: LayerStatistics = Object.assign(new Map(), { positionSampling: [], positionStrides: new Map<string, number>() });
  let probes: PreparedProbes | undefined;
  let statisticsFiles: Measurement['statisticsFiles'];
  if (options.statistics?.length) {
    if (wantsProbes(options.probe) && !options.holdout) throw new OptionError('--stats', "cannot be combined with --probe or --random: the statistics files already hold the probes' moments");
    const shards = readStatisticsShards(options.statistics, original, layers, watched);
    statistics = shards.statistics;
    statisticsFiles = { samples: shards.samples, source: `${shards.files.length} statistics file${shards.files.length === 1 ? '' : 's'} (${shards.files.join(', ')})`, mergeSeconds: shards.seconds };
    // Held-out probes still verify a rewrite.
    if (probeOptions && options.holdout) probes = prepareProbes(folded, probeOptions, options.holdout);
  } else if (probeOptions && options.collect === false) {
    probes = prepareProbes(folded, probeOptions, options.holdout);
  } else if (probeOptions) {
    probes = prepareProbes(folded, probeOptions, options.holdout);
    options.onStage?.('collecting statistics');
    statistics =
      (options.workers ?? 1) > 1 && typeof model === 'string'
        ? await collectInWorkers(model, probeOptions, options.holdout, probes.fit.count, options.workers!, options.session)
        : await collectLayerStatistics(folded, path, watched, probes.fit, {
            ...(options.session ? { session: options.session } : {}),
            ...(probeOptions.batchSize ? { batchSize: probeOptions.batchSize } : {}),
            ...(options.onProgress ? { onProgress: options.onProgress } : {}),
          });
  }
  const measured = await measureLayers(layers, statistics, analysis, options.session, options.onStage);
  return { path, original, model: folded, layers, groups, attention, statistics, measured, probes, analysis, ...(statisticsFiles ? { statisticsFiles } : {}) };
}

/**
 * The exact head merges of a measurement's attention blocks at a tolerance: the measured audits
 * when it is the default, audited again at another (--exact-tolerance). Both the exact and the
 * budgeted prune take these as they are (heads are never budget candidates: a head merge is exact).
 */
export function exactHeadPlans(measurement: Pick<Measurement, 'attention' | 'analysis'>, exactTolerance: number = DEFAULT_EXACT_TOLERANCE): HeadMergePlan[] {
  const audits = exactTolerance === DEFAULT_EXACT_TOLERANCE ? measurement.attention : measurement.attention.map((a) => auditHeads(a.block, { similarityThreshold: measurement.analysis.similarityThreshold, exactTolerance }));
  return planHeadMerges(audits, exactTolerance);
}

/**
 * Neurons a prune report counts before any merge: every measured layer's, plus the rows of
 * projections held inside fused attention ops (com.microsoft Attention's packed weight), which
 * no layer stands for but head merges cut.
 */
export function neuronCount(measurement: Pick<Measurement, 'measured' | 'attention'>): number {
  const fused = new Map<string, number>();
  for (const { block } of measurement.attention) for (const part of [block.q, block.k, block.v]) if (!part.layer) fused.set(`${part.name}@${part.offset}`, part.width);
  return measurement.measured.reduce((s, m) => s + m.width, 0) + [...fused.values()].reduce((s, w) => s + w, 0);
}
