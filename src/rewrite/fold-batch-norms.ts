// Pass: fold each inference-mode BatchNormalization that directly follows an op whose rule says it
// folds (Conv, Gemm; analysis/layer-rules.ts) into that node's weights and bias, so a conv's channels are neurons with u_k = [w_k; b_k].

import type { Model } from '../ir/model.js';
import { Tensor } from '../ir/tensor.js';
import { isFloatType } from '../ir/data-type.js';
import type { Value } from '../ir/value.js';
import { axisToRows, rowsToAxis } from '../numeric/axis-slices.js';
import { foldBatchNorm } from '../numeric/fold-batch-norm.js';
import { producerRules, ruleFor } from '../analysis/layer-rules.js';

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
    const rule = ruleFor(producerRules, producer);
    if (!rule || !rule.foldsBatchNorm(producer)) continue;
    const wValue = producer.inputs[rule.weightInput];
    const wTensor = wValue?.constantTensor();
    const [scale, shift, mean, variance] = [1, 2, 3, 4].map((i) => floats(bn.inputs[i]));
    if (!wValue || !wTensor || !isFloatType(wTensor.dataType) || !scale || !shift || !mean || !variance) continue;
    if (wValue.useCount !== 1 || rule.biasInput === undefined) continue;
    const biasValue = producer.inputs[rule.biasInput] ?? undefined;
    if (biasValue && (biasValue.useCount !== 1 || !floats(biasValue))) continue;
    const outAxis = rule.outAxis(producer);
    const channels = wTensor.dims[outAxis]!;
    if (scale.length !== channels) continue;
    const alpha = rule.weightScale(producer);
    const beta = rule.biasScale(producer);
    if ((floats(biasValue)?.length ?? channels) !== channels) continue;
    const rows = axisToRows(wTensor.toFloat64(), wTensor.dims, outAxis).map((w) => w * alpha);
    const bias = floats(biasValue)?.map((b) => b * beta);
    const result = foldBatchNorm(rows, bias, { scale, shift, mean, variance, epsilon: bn.getFloat('epsilon', 1e-5) });
    g.setConstant(wValue, Tensor.fromNumbers(wTensor.dataType, wTensor.dims, rowsToAxis(result.weights, channels, wTensor.dims, outAxis), wTensor.name));
    if (rule.scaleAttributes) {
      producer.setAttribute({ name: rule.scaleAttributes.weight, type: 'float', value: 1 });
      producer.setAttribute({ name: rule.scaleAttributes.bias, type: 'float', value: 1 });
    }
    if (biasValue) g.setConstant(biasValue, Tensor.fromNumbers(wTensor.dataType, [channels], result.bias, biasValue.name));
    else producer.setInput(rule.biasInput, g.addInitializer(`${producer.name || 'conv'}_folded_bias`, Tensor.fromNumbers(wTensor.dataType, [channels], result.bias)));
    // The BN output keeps its name (readers and graph outputs refer to it); the conv takes it over.
    const y = bn.outputs[0]!;
    g.replaceAllUses(y, x);
    g.removeNodes([bn]);
    g.handOverName(y, x, `${y.name}_removed_bn`);
    folded++;
  }
  if (folded) g.removeUnusedInitializers();
  return folded;
}
