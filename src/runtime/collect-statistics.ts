// Runs probe batches through a session with statistics heads and merges each batch's mean and
// scatter into running float64 moments (Chan's parallel update): memory stays O(m^2) per layer
// however many samples are fed. Heads that subsample positions are calibrated on the first batch
// against their unsampled twin, so the report can say what the sampling cost in accuracy.

import { DataType } from '../ir/data-type.js';
import { cosineFromGram } from '../numeric/cosine.js';
import { mirrorBlock, StreamingMoments } from '../numeric/streaming-moments.js';
import type { HostTensor } from './host-tensor.js';
import type { ModelSession } from './model-session.js';
import type { ScatterBlock, StatisticsHead, StatisticsOutputs } from './statistics-heads.js';

export interface CollectProgress {
  samplesDone: number;
  samplesTotal: number;
}

/** What keeping every positionStride-th position did to one layer's output similarities. */
export interface PositionSampling {
  /** The head's key (the layer name). */
  key: string;
  positionStride: number;
  /** Observations (samples x positions) in the calibration batch: all of them, and those kept. */
  calibrationRows: { every: number; kept: number };
  /**
   * max over neuron pairs of |cos_kept - cos_every|, the output cosines (from the second moment,
   * as the measures use them) of the calibration batch with and without the stride. An upper
   * bound for |cos| too; over the whole probe set the kept rows are more and the error smaller.
   */
  maxCosineError: number;
}

/** Moments per head key, the calibration of every head that subsampled positions, and each head's stride. */
export type CollectedStatistics = Map<string, StreamingMoments> & { positionSampling: PositionSampling[]; positionStrides: Map<string, number> };

/** Feeds every batch and returns the accumulated moments per head key. */
export async function collectStatistics(
  session: ModelSession,
  heads: StatisticsHead[],
  batches: Iterable<Record<string, HostTensor>> | AsyncIterable<Record<string, HostTensor>>,
  options: { samplesTotal?: number; onProgress?: (p: CollectProgress) => void } = {},
): Promise<CollectedStatistics> {
  const moments = new Map(heads.map((h) => [h.key, new BlockMoments(h.width, h.scatterBlocks)]));
  const positionSampling: PositionSampling[] = [];
  const outputNames = heads.flatMap(outputsOf);
  const sampledHeads = heads.filter((h) => h.unsampled);
  const calibrationInput = sampledHeads[0]?.unsampled!.calibrationInput;
  const calibrationNames = [...outputNames, ...sampledHeads.flatMap((h) => outputsOf(h.unsampled!))];
  let samplesDone = 0;
  for await (const feeds of batches) {
    // Only the first batch switches the unsampled twins on.
    const isCalibration = samplesDone === 0 && calibrationInput !== undefined;
    const allFeeds = calibrationInput === undefined ? feeds : { ...feeds, [calibrationInput]: flag(isCalibration) };
    const out = await session.run(allFeeds, isCalibration ? calibrationNames : outputNames);
    for (const h of heads) moments.get(h.key)!.addBatch(out, h);
    if (isCalibration) {
      for (const h of sampledHeads) positionSampling.push(calibrate(h, out));
    }
    samplesDone += Object.values(feeds)[0]?.dims[0] ?? 0;
    options.onProgress?.({ samplesDone, samplesTotal: options.samplesTotal ?? samplesDone });
  }
  const result = new Map<string, StreamingMoments>();
  for (const [key, m] of moments) result.set(key, m.finish());
  return Object.assign(result, { positionSampling, positionStrides: new Map(heads.map((h) => [h.key, h.positionStride])) });
}

function flag(value: boolean): HostTensor {
  return { dataType: DataType.BOOL, dims: [], data: Uint8Array.of(value ? 1 : 0) };
}

function outputsOf(o: StatisticsOutputs): string[] {
  return [o.meanOutput, ...o.scatterBlocks.map((b) => b.output), o.rowCountOutput];
}

/**
 * StreamingMoments fed by blocks of the scatter: each batch's blocks merge into the matching
 * entries of the running m x m scatter by the same pairwise update (Chan, Golub and LeVeque 1979,
 * as StreamingMoments.addBatch), and the blocks below the diagonal are mirrored once at the end.
 */
class BlockMoments {
  private readonly moments: StreamingMoments;
  private readonly delta: Float64Array;

  constructor(
    readonly width: number,
    private readonly blocks: readonly ScatterBlock[],
  ) {
    this.moments = new StreamingMoments(width);
    this.delta = new Float64Array(width);
  }

  addBatch(out: Record<string, HostTensor>, o: StatisticsOutputs): void {
    const rows = Number((out[o.rowCountOutput]!.data as BigInt64Array)[0]);
    if (rows <= 0) return;
    const batchMean = out[o.meanOutput]!.data as Float32Array;
    const { mean, scatter } = this.moments;
    const m = this.width;
    const countA = this.moments.count;
    const total = countA + rows;
    const delta = this.delta;
    for (let i = 0; i < m; i++) delta[i] = batchMean[i]! - mean[i]!;
    const weight = (countA * rows) / total;
    o.scatterBlocks.forEach((block) => {
      const data = out[block.output]!.data as Float32Array;
      const blockWidth = block.columnEnd - block.columnStart;
      if (countA === 0) {
        // The first batch: its scatter is the running scatter (no cross term), copied row by row.
        for (let i = block.rowStart; i < block.rowEnd; i++) {
          const from = (i - block.rowStart) * blockWidth;
          scatter.set(data.subarray(from, from + blockWidth), i * m + block.columnStart);
        }
        return;
      }
      for (let i = block.rowStart; i < block.rowEnd; i++) {
        const di = delta[i]! * weight;
        const row = i * m;
        const from = (i - block.rowStart) * blockWidth - block.columnStart;
        for (let j = block.columnStart; j < block.columnEnd; j++) scatter[row + j] = scatter[row + j]! + data[from + j]! + di * delta[j]!;
      }
    });
    const meanStep = rows / total;
    for (let i = 0; i < m; i++) mean[i] = mean[i]! + delta[i]! * meanStep;
    this.moments.count = total;
  }

  /** The moments, with the scatter's lower blocks filled from the upper ones. */
  finish(): StreamingMoments {
    const { scatter } = this.moments;
    const m = this.width;
    for (const block of this.blocks) {
      if (block.rowStart === block.columnStart) continue;
      mirrorBlock(scatter, m, block.rowStart, block.rowEnd, block.columnStart, block.columnEnd);
    }
    return this.moments;
  }
}

function calibrate(head: StatisticsHead, out: Record<string, HostTensor>): PositionSampling {
  const kept = new BlockMoments(head.width, head.scatterBlocks);
  kept.addBatch(out, head);
  const every = new BlockMoments(head.width, head.unsampled!.scatterBlocks);
  every.addBatch(out, head.unsampled!);
  const keptMoments = kept.finish();
  const everyMoments = every.finish();
  const a = cosineFromGram(keptMoments.secondMoment(), head.width);
  const b = cosineFromGram(everyMoments.secondMoment(), head.width);
  let maxCosineError = 0;
  for (let k = 0; k < a.length; k++) maxCosineError = Math.max(maxCosineError, Math.abs(a[k]! - b[k]!));
  return { key: head.key, positionStride: head.positionStride, calibrationRows: { every: everyMoments.count, kept: keptMoments.count }, maxCosineError };
}
