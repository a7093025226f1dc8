// Runs probe data through a copy of the model with statistics heads on every layer's output.
// Chooses, per layer, a position stride where the scatter would outweigh the layer itself, and,
// unless the caller fixes it, how many samples go into one run.

import type { NeuronLayer } from '../analysis/find-layers.js';
import type { Model } from '../ir/model.js';
import type { Value } from '../ir/value.js';
import { collectStatistics, type CollectedStatistics, type CollectProgress, type PositionSampling } from '../runtime/collect-statistics.js';
import type { SessionOptions } from '../runtime/model-session.js';
import { probeBatches, type ProbeSet } from '../runtime/probe-data.js';
import { addStatisticsHeads, positionStrideFor, type StatisticsHead, type WatchedValue } from '../runtime/statistics-heads.js';
import { cloneModelWithValues } from '../ir/clone-model.js';
import { openModelSession, type StagingOptions } from './open-model-session.js';

export type { PositionSampling };

/** Output moments per layer name; positionSampling says which layers were subsampled and at what cost. */
export type LayerStatistics = CollectedStatistics;

export interface CollectLayerStatisticsOptions {
  session?: SessionOptions;
  /** Samples per onnxruntime run (default: chosen by layer widths; see samplesPerRun). */
  batchSize?: number;
  /** Set false to take every position of every layer, whatever it costs (default: true). */
  positionSampling?: boolean;
  staging?: StagingOptions;
  onProgress?: (p: CollectProgress) => void;
}

/** Samples per run when nothing else decides it (onnxruntime's per-run overhead is then small). */
export const DEFAULT_BATCH_SIZE = 32;
// Activations a run may hold for the watched layers, in bytes (each counted three times: the
// value, its centred copy, and the transposed copy a channels-first layer makes).
const RUN_MEMORY_BYTES = 256 * 2 ** 20;

/** Output moments per layer name, for the layers of the main graph. */
export async function collectLayerStatistics(
  model: Model,
  subject: string,
  layers: NeuronLayer[],
  probes: ProbeSet,
  options: CollectLayerStatisticsOptions = {},
): Promise<LayerStatistics> {
  const prepared = prepareStatisticsModel(model, layers, probes.count, options);
  if (!prepared) return Object.assign(new Map(), { positionSampling: [] });
  const session = await openModelSession(prepared.model, subject, options.session, options.staging);
  try {
    return await collectStatistics(session, prepared.heads, probeBatches(probes, prepared.batchSize), { samplesTotal: probes.count, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
  } finally {
    await session.release();
  }
}

/** The statistics model collectLayerStatistics runs: a copy with heads, and its samples per run. */
export interface StatisticsModel {
  model: Model;
  heads: StatisticsHead[];
  batchSize: number;
}

/**
 * A copy of `model` with statistics heads on the main graph's layers (each with its position
 * stride), and the samples per run for `count` probes; undefined when there is nothing to collect.
 */
export function prepareStatisticsModel(model: Model, layers: NeuronLayer[], count: number, options: Pick<CollectLayerStatisticsOptions, 'batchSize' | 'positionSampling'> = {}): StatisticsModel | undefined {
  const watched = layers.filter((l) => !l.subgraphOf && l.width > 0);
  if (watched.length === 0 || count === 0) return undefined;
  const { model: copy, valueOf } = cloneModelWithValues(model);
  const plans = watched.map((l) => watchPlan(l, valueOf(l.activation.output), options.positionSampling ?? true));
  const heads = addStatisticsHeads(copy, plans.map((p) => p.watched));
  return { model: copy, heads, batchSize: options.batchSize ?? samplesPerRun(plans, count) };
}

interface WatchPlan {
  watched: WatchedValue;
  /** Positions per sample (1 for a [samples, m] value), when the shape says. */
  positionsPerSample: number | undefined;
}

function watchPlan(layer: NeuronLayer, value: Value, isSampling: boolean): WatchPlan {
  const shape = layer.activation.output.shape;
  const rank = shape?.length ?? layer.weight.dims.length;
  const neuronAxis = rank - layer.neuronAxisFromEnd;
  // Every axis but the batch and the neuron axis indexes positions.
  let positionsPerSample: number | undefined = 1;
  let rowLength: number | undefined;
  for (let axis = 1; axis < rank; axis++) {
    if (axis === neuronAxis) continue;
    const d = shape?.[axis]?.value;
    positionsPerSample = d === undefined || positionsPerSample === undefined ? undefined : positionsPerSample * d;
    rowLength = d;
  }
  const weightCount = layer.weight.dims.reduce((p, d) => p * d, 1);
  const positionStride = isSampling ? positionStrideFor({ width: layer.width, fanIn: weightCount / layer.width, positionsPerSample, ...(rowLength ? { rowLength } : {}) }) : 1;
  return {
    watched: { key: layer.name, value, width: layer.width, neuronAxisFromEnd: layer.neuronAxisFromEnd, rank, positionStride },
    positionsPerSample,
  };
}

/**
 * Samples per run: at least DEFAULT_BATCH_SIZE, and enough that each run observes as many rows as
 * its widest layer has neurons. Every run hands back an m x m scatter per layer that is merged in
 * float64 (and, for m = 4096, 64 MiB copied out of the runtime): with fewer rows than m that fixed
 * cost outweighs the GEMM itself. Capped so the watched activations of a run stay near
 * RUN_MEMORY_BYTES, which depends on the model, not on the number of probes.
 */
export function samplesPerRun(plans: { watched: WatchedValue; positionsPerSample: number | undefined }[], count: number): number {
  let wanted = DEFAULT_BATCH_SIZE;
  let bytesPerSample = 0;
  for (const { watched, positionsPerSample } of plans) {
    const positions = positionsPerSample ?? 1;
    const keptRows = Math.max(1, Math.floor(positions / (watched.positionStride ?? 1)));
    wanted = Math.max(wanted, Math.ceil(watched.width / keptRows));
    bytesPerSample += 3 * 4 * positions * watched.width;
  }
  const affordable = Math.max(DEFAULT_BATCH_SIZE, Math.floor(RUN_MEMORY_BYTES / Math.max(1, bytesPerSample)));
  return Math.max(1, Math.min(wanted, affordable, count));
}
