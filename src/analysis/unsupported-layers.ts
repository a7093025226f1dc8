// Weight-bearing ops the tool can name but not measure or rewrite: the integer ops of quantized
// models (ConvInteger, MatMulInteger, QLinearConv, QLinearMatMul, and onnxruntime's MatMulNBits,
// QGemm, DynamicQuantizeMatMul, MatMulIntegerToFloat). Each is listed by name and op with a blocker
// (code 'quantized'), so a report never says "no weight-bearing layers" about a quantized model.
// Which ops, where their weight lives and which axis counts the outputs is data (the table below).
// Reads the IR only.

import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { blocker, type Blocker } from './blocker.js';

export interface UnsupportedLayer {
  /** The node's name (or opType(output) when unnamed). */
  name: string;
  /** The op, with its domain when not the default one: "ConvInteger", "com.microsoft.MatMulNBits". */
  op: string;
  node: Node;
  /** Output channels or units, from the weight's shape or the op's attributes (0 when unknown). */
  width: number;
  blocker: Blocker;
}

interface IntegerOpRule {
  domain: '' | 'com.microsoft';
  /** The output width: from the weight's dims (a constant input) or the node's attributes. */
  width: (node: Node) => number | undefined;
  /** What the op computes, for the message. */
  computes: string;
}

const dims = (node: Node, input: number): readonly number[] | undefined => node.inputs[input]?.constantTensor()?.dims;
const first = (input: number) => (node: Node): number | undefined => dims(node, input)?.[0];
const last = (input: number) => (node: Node): number | undefined => {
  const d = dims(node, input);
  return d ? d[d.length - 1] : undefined;
};

/** The integer ops, by op type. */
export const integerOps: Readonly<Record<string, IntegerOpRule>> = {
  ConvInteger: { domain: '', width: first(1), computes: 'an integer convolution of quantized inputs and weights' },
  MatMulInteger: { domain: '', width: last(1), computes: 'an integer matrix product' },
  QLinearConv: { domain: '', width: first(3), computes: 'a convolution on quantized tensors' },
  QLinearMatMul: { domain: '', width: last(3), computes: 'a matrix product on quantized tensors' },
  MatMulNBits: { domain: 'com.microsoft', width: (n) => n.getInt('N', 0) || undefined, computes: 'a matrix product with block-quantized (n-bit) weights' },
  QGemm: { domain: 'com.microsoft', width: (n) => (n.getInt('transB', 0) ? first(3)(n) : last(3)(n)), computes: 'a Gemm on quantized tensors' },
  DynamicQuantizeMatMul: { domain: 'com.microsoft', width: last(1), computes: 'a matrix product with dynamically quantized inputs' },
  MatMulIntegerToFloat: { domain: 'com.microsoft', width: last(1), computes: 'an integer matrix product scaled to float' },
};

function ruleOf(node: Node): IntegerOpRule | undefined {
  const rule = Object.hasOwn(integerOps, node.opType) ? integerOps[node.opType] : undefined;
  if (!rule) return undefined;
  const domain = node.domain === 'ai.onnx' ? '' : node.domain;
  return domain === rule.domain ? rule : undefined;
}

/** The integer-op layers of a model (subgraphs included), in graph order. */
export function findUnsupportedLayers(model: Model): UnsupportedLayer[] {
  const found: UnsupportedLayer[] = [];
  for (const node of model.graph.walk()) {
    const rule = ruleOf(node);
    if (!rule) continue;
    const op = node.domain && node.domain !== 'ai.onnx' ? `${node.domain}.${node.opType}` : node.opType;
    found.push({
      name: node.label,
      op,
      node,
      width: rule.width(node) ?? 0,
      blocker: blocker('quantized', `computes in integers (${op}: ${rule.computes}); the tool cannot measure or rewrite integer weights: audit the float model, or a QDQ export whose weights are DequantizeLinear of int8 (measured dequantized)`, node),
    });
  }
  return found;
}
