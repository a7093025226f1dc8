// BatchNorm folding, written once: the folded weights that analysis measures are the ones the
// fold-batch-norms pass writes. y = gamma (x - mean) / sqrt(var + eps) + beta after x = W * in + b
// is x' = W' * in + b' with s = gamma / sqrt(var + eps), W'_k = s_k W_k, b'_k = s_k (b_k - mean_k) + beta_k.

export interface BatchNormParams {
  scale: Float64Array;
  shift: Float64Array;
  mean: Float64Array;
  variance: Float64Array;
  epsilon: number;
}

/** Folds BN into weights whose rows (output channels) are contiguous: weights is channels x rowLength. */
export function foldBatchNorm(weights: Float64Array, bias: Float64Array | undefined, bn: BatchNormParams): { weights: Float64Array; bias: Float64Array } {
  const channels = bn.scale.length;
  const rowLength = weights.length / channels;
  const w = new Float64Array(weights.length);
  const b = new Float64Array(channels);
  for (let k = 0; k < channels; k++) {
    const s = bn.scale[k]! / Math.sqrt(bn.variance[k]! + bn.epsilon);
    for (let i = 0; i < rowLength; i++) w[k * rowLength + i] = s * weights[k * rowLength + i]!;
    b[k] = s * ((bias ? bias[k]! : 0) - bn.mean[k]!) + bn.shift[k]!;
  }
  return { weights: w, bias: b };
}
