// audit: measure a model (measure-model.ts) and state the measures per layer and group.

import type { ChannelGroup } from '../analysis/channel-groups.js';
import type { AttentionAudit } from '../analysis/head-audit.js';
import { measureCoverage, type Coverage } from '../analysis/coverage.js';
import { findUnsupportedLayers, type UnsupportedLayer } from '../analysis/unsupported-layers.js';
import type { AnalysisOptions, LayerCondensation } from '../analysis/measure-condensation.js';
import type { Model } from '../ir/model.js';
import type { CollectProgress } from '../runtime/collect-statistics.js';
import type { SessionOptions } from '../runtime/model-session.js';
import type { ProbeOptions } from '../runtime/probe-data.js';
import type { PositionSampling } from './collect-layer-statistics.js';
import { measureModel, type Measurement } from './measure-model.js';

export interface AuditOptions {
  probe?: ProbeOptions;
  analysis?: AnalysisOptions;
  session?: SessionOptions;
  onProgress?: (p: CollectProgress) => void;
  /** Statistics files (`condense collect`; patterns like shard-*.stats) to merge instead of running probes. */
  statistics?: string[];
  /** Collect in this many worker threads, each over a range of the probes (a model given by path only). */
  workers?: number;
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
  /** Attention blocks and their per-head audit (empty for models without attention). */
  attention: AttentionAudit[];
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
  /** Weight-bearing ops the tool names but cannot measure or rewrite (integer ops of quantized models). */
  unsupportedLayers: UnsupportedLayer[];
  /** The share of hidden neurons prune can rewrite, and what blocks the rest. */
  coverage: Coverage;
}

/** Audits a model file (or a loaded model): per-layer condensation measures. */
export async function audit(model: string | Model, options: AuditOptions = {}): Promise<AuditResult> {
  return auditResult(await measureModel(model, options));
}

/** The audit of a measurement (check reuses the measurement for its prune rule). */
export function auditResult(m: Measurement): AuditResult {
  const unsupportedLayers = findUnsupportedLayers(m.original);
  return {
    path: m.path,
    model: m.model,
    parameterCount: m.original.parameterCount(),
    layers: m.measured,
    groups: m.groups,
    attention: m.attention,
    probeSamples: m.statisticsFiles?.samples ?? m.probes?.fit.count ?? 0,
    probeSource: m.statisticsFiles?.source ?? m.probes?.source,
    probeNotes: m.probes?.notes ?? [],
    similarityThreshold: m.analysis.similarityThreshold,
    staticThreshold: m.analysis.staticThreshold,
    ...(m.probes || m.statisticsFiles ? { positionSampling: m.statistics.positionSampling } : {}),
    unsupportedLayers,
    coverage: measureCoverage(m.layers, m.groups, unsupportedLayers, m.attention.map((a) => a.block)),
  };
}
