// The condensation measures of one layer (condensation.md, "Measures"): cosine similarity of input
// weights and of outputs, amplitude and static neurons, hierarchical clusters, effective width.

import type { StreamingMoments } from '../numeric/streaming-moments.js';
import { cosineFromGram, cosineMatrix, norms } from '../numeric/cosine.js';
import { OptionError } from '../errors.js';
import { clusterNeurons, type ClusterMethod } from './cluster/cluster-neurons.js';
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

/** Measures one layer from its weights and, when given, the streaming statistics of its outputs. */
export function measureCondensation(layer: NeuronLayer, statistics: StreamingMoments | undefined, options: AnalysisOptions = {}, computed: { weightCosine?: Float64Array } = {}): LayerCondensation {
  const opts = resolveAnalysisOptions(options);
  const { rows, dim } = inputWeightVectors(layer);
  const width = layer.width;
  const uNorms = norms(rows, width, dim);
  const aNorms = outgoingWeightNorms(layer);
  const amplitude = aNorms ? uNorms.map((u, k) => u * aNorms[k]!) : Float64Array.from(uNorms);
  const maxAmplitude = amplitude.reduce((m, x) => Math.max(m, x), 0);
  const staticNeurons: number[] = [];
  amplitude.forEach((a, k) => {
    if (a <= opts.staticThreshold * maxAmplitude) staticNeurons.push(k);
  });
  const usesAbsoluteCosine = layer.activation.isOdd;
  const weightCosine = computed.weightCosine ?? cosineMatrix(rows, width, dim);
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
    const outputCosine = cosineFromGram(statistics.secondMoment(), width);
    result.outputCosine = outputCosine;
    result.outputClusters = clusterActive(outputCosine, width, staticNeurons, usesAbsoluteCosine, maxDistance, opts.clusterMethod);
    result.statistics = statistics;
  }
  return result;
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
  const distance = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const row = active[i]! * width;
    for (let j = 0; j < n; j++) {
      const c = cosine[row + active[j]!]!;
      distance[i * n + j] = i === j ? 0 : Math.max(0, 1 - (absolute ? Math.abs(c) : c));
    }
  }
  const clusters = clusterNeurons(distance, n, { maxDistance, method });
  active.forEach((k, i) => (labels[k] = clusters.labels[i]!));
  return { labels, count: clusters.count, method: clusters.method };
}

/** Share of the layer's width that condensation makes redundant: 1 - effective / width. */
export function redundancy(effectiveWidth: number, width: number): number {
  return width === 0 ? 0 : 1 - effectiveWidth / width;
}
