// Runs probe batches through a session with statistics heads and merges each batch's mean and
// scatter into running float64 moments (Chan's parallel update): memory stays O(m^2) per layer
// however many samples are fed.

import { StreamingMoments } from '../numeric/streaming-moments.js';
import type { HostTensor } from './host-tensor.js';
import type { ModelSession } from './model-session.js';
import type { StatisticsHead } from './statistics-heads.js';

export interface CollectProgress {
  samplesDone: number;
  samplesTotal: number;
}

/** Feeds every batch and returns the accumulated moments per head key. */
export async function collectStatistics(
  session: ModelSession,
  heads: StatisticsHead[],
  batches: Iterable<Record<string, HostTensor>>,
  options: { samplesTotal?: number; onProgress?: (p: CollectProgress) => void } = {},
): Promise<Map<string, StreamingMoments>> {
  const moments = new Map(heads.map((h) => [h.key, new StreamingMoments(h.width)]));
  const outputNames = heads.flatMap((h) => [h.meanOutput, h.scatterOutput, h.shapeOutput]);
  let samplesDone = 0;
  for (const feeds of batches) {
    const out = await session.run(feeds, outputNames);
    for (const h of heads) {
      const rows = Number((out[h.shapeOutput]!.data as BigInt64Array)[0]);
      moments.get(h.key)!.addBatch(out[h.meanOutput]!.data as Float32Array, out[h.scatterOutput]!.data as Float32Array, rows);
    }
    samplesDone += Object.values(feeds)[0]?.dims[0] ?? 0;
    options.onProgress?.({ samplesDone, samplesTotal: options.samplesTotal ?? samplesDone });
  }
  return moments;
}
