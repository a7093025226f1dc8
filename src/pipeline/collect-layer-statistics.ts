// Runs probe data through a copy of the model with statistics heads on every layer's output.

import type { NeuronLayer } from '../analysis/find-layers.js';
import type { Model } from '../ir/model.js';
import type { Value } from '../ir/value.js';
import type { StreamingMoments } from '../numeric/streaming-moments.js';
import { collectStatistics, type CollectProgress } from '../runtime/collect-statistics.js';
import { ModelSession, type SessionOptions } from '../runtime/model-session.js';
import { probeBatches, type ProbeSet } from '../runtime/probe-data.js';
import { addStatisticsHeads } from '../runtime/statistics-heads.js';
import { cloneModel, modelBytes } from './clone-model.js';

/** Output moments per layer name, for the layers of the main graph. */
export async function collectLayerStatistics(
  model: Model,
  subject: string,
  layers: NeuronLayer[],
  probes: ProbeSet,
  options: { session?: SessionOptions; batchSize?: number; onProgress?: (p: CollectProgress) => void } = {},
): Promise<Map<string, StreamingMoments>> {
  const watched = layers.filter((l) => !l.subgraphOf && l.width > 0);
  if (watched.length === 0 || probes.count === 0) return new Map();
  const copy = cloneModel(model);
  const byName = new Map<string, Value>();
  for (const n of copy.graph.nodes) for (const o of n.outputs) byName.set(o.name, o);
  for (const v of [...copy.graph.inputs, ...copy.graph.initializers]) byName.set(v.name, v);
  const heads = addStatisticsHeads(copy, watched.map((l) => ({
    key: l.name,
    value: byName.get(l.activation.output.name)!,
    width: l.width,
    neuronAxisFromEnd: l.neuronAxisFromEnd,
    rank: l.activation.output.shape?.length ?? l.weight.dims.length,
  })));
  const session = await ModelSession.create(modelBytes(copy), subject, options.session);
  try {
    return await collectStatistics(session, heads, probeBatches(probes, options.batchSize ?? 32), { samplesTotal: probes.count, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
  } finally {
    await session.release();
  }
}
