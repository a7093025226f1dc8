// The condensation measures of every layer, the one path audit and prune (and check, through
// audit) share: wide layers' weight cosines on onnxruntime's GEMM, one layer at a time, so only
// one n x n matrix is in the making.

import { unitInputWeights } from '../analysis/input-weights.js';
import type { NeuronLayer } from '../analysis/find-layers.js';
import { measureCondensation, type AnalysisOptions, type LayerCondensation, type PrecomputedMeasures } from '../analysis/measure-condensation.js';
import type { StreamingMoments } from '../numeric/streaming-moments.js';
import { encodeModel } from '../onnx/encode-model.js';
import { cosineMatrixOfUnitRows } from '../runtime/gram-matrix.js';
import type { SessionOptions } from '../runtime/model-session.js';

/** Layers at least this wide get their weight cosines from the runtime (a JavaScript loop takes seconds). */
export const RUNTIME_COSINE_MIN_WIDTH = 512;

/**
 * Weight cosines of wide layers are computed in float32 (docs/performance.md measures the effect:
 * |cos32 - cos64| stays below 1e-6 on a 4096 x 1025 layer, far inside any similarity threshold's
 * margin); narrower layers use the float64 loop.
 */
export async function measureLayers(layers: NeuronLayer[], statistics: ReadonlyMap<string, StreamingMoments>, analysis: AnalysisOptions, session: SessionOptions = {}, onStage?: (stage: string) => void): Promise<LayerCondensation[]> {
  const measured: LayerCondensation[] = [];
  for (const [i, l] of layers.entries()) {
    onStage?.(`measuring layer ${i + 1}/${layers.length}: ${l.name}`);
    const computed: PrecomputedMeasures = {};
    if (l.width >= RUNTIME_COSINE_MIN_WIDTH) {
      const { unit, norms, dim } = unitInputWeights(l);
      computed.inputWeightNorms = norms;
      computed.weightCosine = await cosineMatrixOfUnitRows(unit, l.width, dim, (m) => encodeModel(m).modelBytes, { ...session, precision: 'float32' });
    }
    measured.push(measureCondensation(l, statistics.get(l.name), analysis, computed));
  }
  return measured;
}
