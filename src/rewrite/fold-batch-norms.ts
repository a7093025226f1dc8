// Pass: fold each inference-mode BatchNormalization that directly follows a Conv (or a Gemm)
// into that node's weights and bias, so a conv's channels are neurons with u_k = [w_k; b_k].

import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import { isFloatType } from '../ir/data-type.js';
import type { Value } from '../ir/value.js';
import { axisToRows, rowsToAxis } from '../numeric/axis-slices.js';
import { foldBatchNorm } from '../numeric/fold-batch-norm.js';

function floats(v: Value | null | undefined): Float64Array | undefined {
  const t = v?.constantTensor();
  return t && isFloatType(t.dataType) ? t.toFloat64() : undefined;
}

/** Folds every foldable Conv -> BatchNormalization pair of the main graph; returns how many. */
export function foldBatchNorms(model: Model): number {
  const g = model.graph;
  let folded = 0;
  for (const bn of [...g.nodes]) {
    if (!bn.is('BatchNormalization') || bn.getInt('training_mode', 0) !== 0) continue;
    if (bn.outputs.slice(1).some((o) => o.useCount > 0 || o.isGraphOutput)) continue;
    const x = bn.inputs[0];
    const producer = x?.producer;
    if (!x || !producer || x.useCount !== 1 || x.isGraphOutput) continue;
    const isConv = producer.is('Conv') || (producer.is('Gemm') && !producer.getInt('transA', 0));
    if (!isConv) continue;
    const wValue = producer.inputs[1];
    const wTensor = wValue?.constantTensor();
    const [scale, shift, mean, variance] = [1, 2, 3, 4].map((i) => floats(bn.inputs[i]));
    if (!wValue || !wTensor || !isFloatType(wTensor.dataType) || !scale || !shift || !mean || !variance) continue;
    if (wValue.useCount !== 1) continue;
    const biasValue = producer.inputs[2] ?? undefined;
    if (biasValue && (biasValue.useCount !== 1 || !floats(biasValue))) continue;
    const outAxis = producer.is('Conv') ? 0 : producer.getInt('transB', 0) ? 0 : 1;
    const channels = wTensor.dims[outAxis]!;
    if (scale.length !== channels) continue;
    const alpha = producer.is('Gemm') ? producer.getFloat('alpha', 1) : 1;
    const beta = producer.is('Gemm') ? producer.getFloat('beta', 1) : 1;
    if (producer.is('Gemm') && (floats(biasValue)?.length ?? channels) !== channels) continue;
    const rows = axisToRows(wTensor.toFloat64(), wTensor.dims, outAxis).map((w) => w * alpha);
    const bias = floats(biasValue)?.map((b) => b * beta);
    const result = foldBatchNorm(rows, bias, { scale, shift, mean, variance, epsilon: bn.getFloat('epsilon', 1e-5) });
    g.setConstant(wValue, Tensor.fromNumbers(wTensor.dataType, wTensor.dims, rowsToAxis(result.weights, channels, wTensor.dims, outAxis), wTensor.name));
    if (producer.is('Gemm')) {
      producer.setAttribute({ name: 'alpha', type: 'float', value: 1 });
      producer.setAttribute({ name: 'beta', type: 'float', value: 1 });
    }
    if (biasValue) g.setConstant(biasValue, Tensor.fromNumbers(wTensor.dataType, [channels], result.bias, biasValue.name));
    else producer.setInput(2, g.addInitializer(`${producer.name || 'conv'}_folded_bias`, Tensor.fromNumbers(wTensor.dataType, [channels], result.bias)));
    // The BN output keeps its name (readers and graph outputs refer to it); the conv takes it over.
    const y = bn.outputs[0]!;
    for (const use of y.uses()) use.node.setInput(use.inputIndex, x);
    g.outputs = g.outputs.map((v) => (v === y ? x : v));
    g.removeNodes([bn]);
    const name = y.name;
    y.name = `${name}_removed_bn`;
    x.name = name;
    if (y.type) x.type = y.type;
    folded++;
  }
  if (folded) g.removeUnusedInitializers();
  return folded;
}
