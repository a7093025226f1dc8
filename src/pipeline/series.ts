// series: checkpoints of one architecture in training order. Per layer and checkpoint: effective
// width, static neurons and the relative distance RD(t) = |theta_w(t) - theta_w(0)| / |theta_w(0)|
// of the input weights from the first checkpoint's (condensation.md, "Measures"); for a two-layer
// network also the phase-diagram regime predicted from the first checkpoint's weight scales.

import { constantNumbers, type NeuronLayer } from '../analysis/find-layers.js';
import { inputWeightVectors } from '../analysis/input-weights.js';
import { resolveAnalysisOptions, type AnalysisOptions } from '../analysis/measure-condensation.js';
import { ModelFormatError, OptionError, joinProblems } from '../errors.js';
import type { SessionOptions } from '../runtime/model-session.js';
import { measureModel, type Measurement } from './measure-model.js';
import { isReadoutLayer } from './readout-layer.js';
import { phaseGamma, phaseGammaPrime, predictRegime, standardDeviation, type Regime } from './phase-diagram.js';

export interface SeriesOptions {
  analysis?: AnalysisOptions;
  /** The 1/alpha output scale of f(x) = (1/alpha) sum a_k s(w_k . x) (default 1). */
  alpha?: number;
  /** Distance from the phase boundary within which the regime reads as critical (default 0.05). */
  regimeTolerance?: number;
  /** Where wide layers' weight cosines run (onnxruntime's GEMM). */
  session?: SessionOptions;
}

export interface SeriesLayer {
  name: string;
  width: number;
  isReadout: boolean;
  /** One entry per checkpoint. */
  effectiveWidth: number[];
  static: number[];
  relativeDistance: number[];
}

export interface TwoLayerEstimate {
  /** The hidden layer. */
  layer: string;
  activation: string;
  width: number;
  alpha: number;
  /** std of the outgoing weights a at the first checkpoint. */
  beta1: number;
  /** std of the input weights w (with the bias) at the first checkpoint. */
  beta2: number;
  gamma: number;
  gammaPrime: number;
  regime: Regime;
  tolerance: number;
  /** RD of the hidden layer at the last checkpoint, and how it reads. */
  observedRelativeDistance: number;
  observed: 'small' | 'order one' | 'large';
}

export interface SeriesResult {
  checkpoints: { path: string; params: number }[];
  layers: SeriesLayer[];
  /** RD of all layers' input weights together, per checkpoint. */
  relativeDistance: number[];
  twoLayer: TwoLayerEstimate | null;
  similarityThreshold: number;
  staticThreshold: number;
  notes: string[];
}

function distance(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
}

function norm(a: Float64Array): number {
  let s = 0;
  for (const x of a) s += x * x;
  return Math.sqrt(s);
}

/** Two layers, the first read by the second, the second a linear read-out: f = A s(W x + b). */
function isTwoLayer(layers: NeuronLayer[]): boolean {
  return layers.length === 2 && layers[0]!.consumers.some((c) => c.node === layers[1]!.producer) && isReadoutLayer(layers[1]!);
}

/** RD read as the phase diagram reads its limits: near 0, order one, or far from the start. */
export function describeRelativeDistance(rd: number): TwoLayerEstimate['observed'] {
  return rd < 0.1 ? 'small' : rd > 1 ? 'large' : 'order one';
}

/** Measures a training series; every checkpoint must have the first one's layers, widths and weight shapes. */
export async function series(paths: string[], options: SeriesOptions = {}): Promise<SeriesResult> {
  if (paths.length === 0) throw new OptionError('paths', 'expected at least one model file');
  const alpha = options.alpha ?? 1;
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new OptionError('alpha', `expected a positive number, got "${alpha}"`);
  const tolerance = options.regimeTolerance ?? 0.05;
  const analysis = resolveAnalysisOptions(options.analysis);

  // Data-free measurements, one per checkpoint, on the path every command shares.
  const measurements: Measurement[] = [];
  for (const p of paths) measurements.push(await measureModel(p, { analysis, ...(options.session ? { session: options.session } : {}) }));
  const layerSets = measurements.map((m) => m.layers);
  const first = layerSets[0]!;
  const problems: string[] = [];
  const offenders = new Set<string>();
  layerSets.forEach((layers, t) => {
    if (t === 0) return;
    const file = paths[t]!;
    const names = layers.map((l) => l.name).join(', ');
    if (layers.length !== first.length || layers.some((l, i) => l.name !== first[i]!.name)) {
      problems.push(`${file} has layers [${names}], expected [${first.map((l) => l.name).join(', ')}] as in ${paths[0]}`);
      offenders.add(file);
      return;
    }
    layers.forEach((l, i) => {
      const f = first[i]!;
      if (l.width !== f.width || l.weight.dims.join('x') !== f.weight.dims.join('x') || !!l.bias !== !!f.bias) {
        problems.push(`${file}: layer "${l.name}" has width ${l.width} and weights [${l.weight.dims.join(', ')}]${l.bias ? '' : ' without bias'}, expected width ${f.width} and [${f.weight.dims.join(', ')}]${f.bias ? '' : ' without bias'} as in ${paths[0]}`);
        offenders.add(file);
      }
    });
  });
  if (problems.length) throw new ModelFormatError([...offenders].join(', '), `${joinProblems(problems)}: a series needs checkpoints of one architecture`);

  const initial = first.map((l) => inputWeightVectors(l).rows);
  const initialNorms = initial.map(norm);
  const initialTotal = Math.sqrt(initialNorms.reduce((s, x) => s + x * x, 0));
  const layers: SeriesLayer[] = first.map((l) => ({ name: l.name, width: l.width, isReadout: isReadoutLayer(l), effectiveWidth: [], static: [], relativeDistance: [] }));
  const total: number[] = [];
  layerSets.forEach((set, t) => {
    let moved = 0;
    set.forEach((l, i) => {
      const m = measurements[t]!.measured[i]!;
      const rows = inputWeightVectors(l).rows;
      const d = distance(rows, initial[i]!);
      moved += d * d;
      layers[i]!.effectiveWidth.push(m.weightClusters.count);
      layers[i]!.static.push(m.staticNeurons.length);
      layers[i]!.relativeDistance.push(initialNorms[i]! > 0 ? d / initialNorms[i]! : Number.NaN);
    });
    total.push(initialTotal > 0 ? Math.sqrt(moved) / initialTotal : Number.NaN);
  });

  const notes: string[] = [];
  let twoLayer: TwoLayerEstimate | null = null;
  if (isTwoLayer(first)) {
    const [hidden, readout] = first as [NeuronLayer, NeuronLayer];
    const a = constantNumbers(readout.weight.value)!.map((x) => x * readout.weight.scale);
    const beta1 = standardDeviation(a);
    const beta2 = standardDeviation(initial[0]!);
    const gamma = phaseGamma(beta1, beta2, alpha, hidden.width);
    const gammaPrime = phaseGammaPrime(beta1, beta2, hidden.width);
    const rd = layers[0]!.relativeDistance[layers[0]!.relativeDistance.length - 1]!;
    twoLayer = {
      layer: hidden.name, activation: hidden.activation.name, width: hidden.width, alpha, beta1, beta2, gamma, gammaPrime,
      regime: predictRegime(gamma, gammaPrime, tolerance), tolerance, observedRelativeDistance: rd, observed: describeRelativeDistance(rd),
    };
    notes.push(`beta1 and beta2 are estimated from ${paths[0]}, which should be the initialisation; beta2 counts the bias as a weight on a constant input`);
    if (hidden.activation.name !== 'Relu') notes.push(`the phase diagram was derived for ReLU; ${hidden.name} uses ${hidden.activation.name}, so the predicted regime is indicative`);
    if (!(beta1 > 0 && beta2 > 0)) notes.push('a weight scale is zero at the first checkpoint: gamma and gamma\' are undefined');
  } else {
    notes.push('the phase diagram applies to two-layer networks f(x) = (1/alpha) sum a_k s(w_k . x); this model has another shape, so no regime is predicted');
  }
  return {
    checkpoints: paths.map((p, t) => ({ path: p, params: measurements[t]!.original.parameterCount() })),
    layers,
    relativeDistance: total,
    twoLayer,
    similarityThreshold: analysis.similarityThreshold,
    staticThreshold: analysis.staticThreshold,
    notes,
  };
}
