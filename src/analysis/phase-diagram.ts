// The phase diagram of two-layer ReLU networks (condensation.md, after Luo, Xu, Ma, Zhang, JMLR
// 2021): f(x) = (1/alpha) sum_k a_k s(w_k . x) with a_k ~ N(0, beta1^2), w_k ~ N(0, beta2^2 I).

export type Regime = 'linear' | 'critical' | 'condensed';

/** gamma = -log(beta1 beta2 / alpha) / log m. */
export function phaseGamma(beta1: number, beta2: number, alpha: number, width: number): number {
  return -Math.log((beta1 * beta2) / alpha) / Math.log(width);
}

/** gamma' = -log(beta1 / beta2) / log m. */
export function phaseGammaPrime(beta1: number, beta2: number, width: number): number {
  return -Math.log(beta1 / beta2) / Math.log(width);
}

/**
 * The regime the phase diagram predicts: linear when gamma < 1 or gamma' > gamma - 1, condensed
 * when gamma > 1 and gamma' < gamma - 1, critical on the boundary between them. The exponents are
 * limits as m grows; estimated at one width they are read with `tolerance` around the boundary
 * (the segment gamma = 1, gamma' <= 0 and the ray gamma' = gamma - 1, gamma >= 1).
 */
export function predictRegime(gamma: number, gammaPrime: number, tolerance = 0.05): Regime {
  const onVertical = Math.abs(gamma - 1) <= tolerance && gammaPrime <= tolerance;
  const onDiagonal = Math.abs(gammaPrime - (gamma - 1)) <= tolerance && gamma >= 1 - tolerance;
  if (onVertical || onDiagonal) return 'critical';
  return gamma > 1 && gammaPrime < gamma - 1 ? 'condensed' : 'linear';
}

/** Population standard deviation. */
export function standardDeviation(values: ArrayLike<number>): number {
  const n = values.length;
  if (n === 0) return 0;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += values[i]!;
  mean /= n;
  let s = 0;
  for (let i = 0; i < n; i++) s += (values[i]! - mean) ** 2;
  return Math.sqrt(s / n);
}
