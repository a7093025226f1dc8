// The condensation measures of one layer (condensation.md, "Measures"): cosine similarity of input
// weights and of outputs, amplitude and static neurons, hierarchical clusters, effective width.

import type { StreamingMoments } from '../numeric/streaming-moments.js';
import { cosineFromMoments, cosineMatrix, norms } from '../numeric/cosine.js';
import { CondenseError, OptionError } from '../errors.js';
import { clusterNeuronsInPlace, type ClusterMethod } from './cluster/cluster-neurons.js';
import type { NeuronLayer } from './find-layers.js';
import { inputWeightVectors, outgoingWeightNorms } from './input-weights.js';

export interface AnalysisOptions {
  /** Neurons whose similarity is at least this are clustered together (default 0.95). */
  similarityThreshold?: number;
  /** Neurons with amplitude below this fraction of the layer's largest are static (default 0.01). */
  staticThreshold?: number;
  clusterMethod?: ClusterMethod;
}

export interface Clusters {
  /** Cluster of each neuron; -1 for static neurons, which are not clustered. */
  labels: Int32Array;
  /** Number of clusters among non-static neurons: the effective width. */
  count: number;
  method: string;
}

export interface LayerCondensation {
  layer: NeuronLayer;
  width: number;
  /** 1 - |cos| is the distance when the activation is odd (tanh(-z) = -tanh(z)). */
  usesAbsoluteCosine: boolean;
  weightCosine: Float64Array;
  inputWeightNorms: Float64Array;
  outgoingWeightNorms: Float64Array | undefined;
  amplitude: Float64Array;
  staticNeurons: number[];
  weightClusters: Clusters;
  /** Present when probe statistics were collected. */
  outputCosine?: Float64Array;
  outputClusters?: Clusters;
  statistics?: StreamingMoments;
}

export function resolveAnalysisOptions(options: AnalysisOptions = {}): Required<AnalysisOptions> {
  const similarityThreshold = options.similarityThreshold ?? 0.95;
  const staticThreshold = options.staticThreshold ?? 0.01;
  if (!(similarityThreshold > 0 && similarityThreshold <= 1)) throw new OptionError('similarityThreshold', `expected a number in (0, 1], got "${similarityThreshold}"`);
  if (!(staticThreshold >= 0 && staticThreshold < 1)) throw new OptionError('staticThreshold', `expected a number in [0, 1), got "${staticThreshold}"`);
  return { similarityThreshold, staticThreshold, clusterMethod: options.clusterMethod ?? 'auto' };
}

/** What a caller computed already (wide layers' weight cosines on the runtime's GEMM, with the u_k they came from). */
export interface PrecomputedMeasures {
  /** With inputWeightNorms, the u_k themselves are never built here. */
  weightCosine?: Float64Array;
  inputWeightNorms?: Float64Array;
}

/** Measures one layer from its weights and, when given, the streaming statistics of its outputs. */
export function measureCondensation(layer: NeuronLayer, statistics: StreamingMoments | undefined, options: AnalysisOptions = {}, computed: PrecomputedMeasures = {}): LayerCondensation {
  const opts = resolveAnalysisOptions(options);
  const width = layer.width;
  const vectors = computed.weightCosine && computed.inputWeightNorms ? undefined : inputWeightVectors(layer);
  const uNorms = computed.inputWeightNorms ?? norms(vectors!.rows, width, vectors!.dim);
  const aNorms = outgoingWeightNorms(layer);
  const amplitude = aNorms ? uNorms.map((u, k) => u * aNorms[k]!) : Float64Array.from(uNorms);
  const maxAmplitude = amplitude.reduce((m, x) => Math.max(m, x), 0);
  const staticNeurons: number[] = [];
  amplitude.forEach((a, k) => {
    if (a <= opts.staticThreshold * maxAmplitude) staticNeurons.push(k);
  });
  const usesAbsoluteCosine = layer.activation.isOdd;
  const weightCosine = computed.weightCosine ?? cosineMatrix(vectors!.rows, width, vectors!.dim);
  const maxDistance = 1 - opts.similarityThreshold;
  const weightClusters = clusterActive(weightCosine, width, staticNeurons, usesAbsoluteCosine, maxDistance, opts.clusterMethod);
  const result: LayerCondensation = {
    layer,
    width,
    usesAbsoluteCosine,
    weightCosine,
    inputWeightNorms: uNorms,
    outgoingWeightNorms: aNorms,
    amplitude,
    staticNeurons,
    weightClusters,
  };
  if (statistics && statistics.count > 0) {
    if (!allFinite(statistics.mean) || !allFinite(statistics.scatter)) {
      throw new CondenseError('BAD_PROBE', `layer "${layer.name}"`, 'outputs on the probe data are not finite (a value overflowed or was NaN); expected probe values of the scale the model works at');
    }
    const outputCosine = cosineFromMoments(statistics.scatter, statistics.mean, statistics.count, width);
    result.outputCosine = outputCosine;
    result.outputClusters = clusterActive(outputCosine, width, staticNeurons, usesAbsoluteCosine, maxDistance, opts.clusterMethod);
    result.statistics = statistics;
  }
  return result;
}

// A loop, not every(Number.isFinite): a 4096-wide scatter has 16 M entries, and the callback costs 10x.
function allFinite(values: Float64Array): boolean {
  for (let k = 0; k < values.length; k++) {
    const x = values[k]!;
    if (x - x !== 0) return false;
  }
  return true;
}

/** Clusters the non-static neurons on distance 1 - cos (or 1 - |cos|). */
function clusterActive(cosine: Float64Array, width: number, staticNeurons: number[], absolute: boolean, maxDistance: number, method: ClusterMethod): Clusters {
  const isStatic = new Uint8Array(width);
  for (const k of staticNeurons) isStatic[k] = 1;
  const active: number[] = [];
  for (let k = 0; k < width; k++) if (!isStatic[k]) active.push(k);
  const labels = new Int32Array(width).fill(-1);
  const n = active.length;
  if (n === 0) return { labels, count: 0, method: 'none' };
  // The distances go straight into the clusterer's working matrix: no n x n matrix of our own.
  // Cosines in [-1, 1] give distances in [0, 2]; a NaN stays NaN and the clusterer's check refuses it.
  const fill = (distance: Float64Array): 'validated' | undefined => {
    let isFinite = true;
    for (let i = 0; i < n; i++) {
      const row = active[i]! * width;
      const out = i * n;
      if (n === width) {
        for (let j = 0; j < n; j++) {
          const c = cosine[row + j]!;
          const d = 1 - (absolute ? Math.abs(c) : c);
          distance[out + j] = d < 0 ? 0 : d;
          if (!(d <= 2)) isFinite = false;
        }
      } else {
        for (let j = 0; j < n; j++) {
          const c = cosine[row + active[j]!]!;
          const d = 1 - (absolute ? Math.abs(c) : c);
          distance[out + j] = d < 0 ? 0 : d;
          if (!(d <= 2)) isFinite = false;
        }
      }
      distance[out + i] = 0;
    }
    return isFinite ? 'validated' : undefined;
  };
  const clusters = clusterNeuronsInPlace(fill, n, { maxDistance, method });
  active.forEach((k, i) => (labels[k] = clusters.labels[i]!));
  return { labels, count: clusters.count, method: clusters.method };
}

/** Share of the layer's width that condensation makes redundant: 1 - effective / width. */
export function redundancy(effectiveWidth: number, width: number): number {
  return width === 0 ? 0 : 1 - effectiveWidth / width;
}
