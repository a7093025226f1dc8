// Per-op knowledge as data: for each weight-bearing op, which input holds the weights, which
// weight axis is the output neuron (producer side) and which reads an input neuron (consumer side).
// An op missing from these tables is reported by name, never handled by a fallback.

import type { Node } from '../ir/node.js';

export interface ProducerRule {
  /** Input index of the weight tensor. */
  weightInput: number;
  /** Input index of the bias, when the op carries one. */
  biasInput?: number;
  /** Weight axis along which neuron k's input weights lie (the output-channel axis). */
  outAxis: (node: Node) => number;
  /** Axis of the activation tensor that indexes neurons, counted from the last (1 = last axis). */
  neuronAxisFromEnd: (node: Node, rank: number) => number;
  /** Scale applied to the weights and bias by attributes (Gemm's alpha and beta). */
  weightScale: (node: Node) => number;
  biasScale: (node: Node) => number;
  /** Why this node cannot be treated as a neuron layer, if it cannot. */
  unsupported?: (node: Node) => string | undefined;
}

export interface ConsumerRule {
  /** The only input through which the consumer may read the layer. */
  dataInput: number;
  weightInput: number;
  biasInput?: number;
  /** Weight axis whose slice k multiplies input neuron k. */
  inAxis: (node: Node) => number;
  weightScale: (node: Node) => number;
  biasScale: (node: Node) => number;
  unsupported?: (node: Node) => string | undefined;
}

export const producerRules: Record<string, ProducerRule> = {
  Gemm: {
    weightInput: 1,
    biasInput: 2,
    outAxis: (n) => (n.getInt('transB', 0) ? 0 : 1),
    neuronAxisFromEnd: () => 1,
    weightScale: (n) => n.getFloat('alpha', 1),
    biasScale: (n) => n.getFloat('beta', 1),
  },
  MatMul: {
    weightInput: 1,
    outAxis: () => 1,
    neuronAxisFromEnd: () => 1,
    weightScale: () => 1,
    biasScale: () => 1,
  },
  Conv: {
    weightInput: 1,
    biasInput: 2,
    outAxis: () => 0,
    neuronAxisFromEnd: (_n, rank) => rank - 1,
    weightScale: () => 1,
    biasScale: () => 1,
    unsupported: (n) => (n.getInt('group', 1) !== 1 ? `is a grouped convolution (group=${n.getInt('group', 1)}): each channel follows its own input channels` : undefined),
  },
  ConvTranspose: {
    weightInput: 1,
    biasInput: 2,
    outAxis: () => 1,
    neuronAxisFromEnd: (_n, rank) => rank - 1,
    weightScale: () => 1,
    biasScale: () => 1,
    unsupported: () => 'merging ConvTranspose channels is not supported (audited only)',
  },
};

export const consumerRules: Record<string, ConsumerRule> = {
  Gemm: {
    dataInput: 0,
    weightInput: 1,
    biasInput: 2,
    inAxis: (n) => (n.getInt('transB', 0) ? 1 : 0),
    weightScale: (n) => n.getFloat('alpha', 1),
    biasScale: (n) => n.getFloat('beta', 1),
    unsupported: (n) => (n.getInt('transA', 0) ? 'reads the layer transposed (transA=1)' : undefined),
  },
  MatMul: {
    dataInput: 0,
    weightInput: 1,
    inAxis: () => 0,
    weightScale: () => 1,
    biasScale: () => 1,
  },
  Conv: {
    dataInput: 0,
    weightInput: 1,
    biasInput: 2,
    inAxis: () => 1,
    weightScale: () => 1,
    biasScale: () => 1,
    unsupported: (n) => (n.getInt('group', 1) !== 1 ? `is a grouped convolution (group=${n.getInt('group', 1)}), whose channels follow their input channels` : undefined),
  },
};

/** Consumer weight axis that indexes the consumer's own outputs (where a bias adds). */
export function consumerOutputAxis(node: Node, inAxis: number): number {
  if (node.is('Conv')) return 0;
  return inAxis === 0 ? 1 : 0;
}

/**
 * Ops between a layer and its consumers that act on each channel separately, so a merge passes
 * through them. `allowsNegativeScale`: max(-h) != -max(h). `keepsConstants`: a constant channel
 * stays the same constant (not so where padding brings in zeros).
 */
export const channelwiseOps: Record<string, { allowsNegativeScale: boolean; keepsConstants: (n: Node) => boolean; check?: (n: Node) => string | undefined }> = {
  Identity: { allowsNegativeScale: true, keepsConstants: () => true },
  Dropout: { allowsNegativeScale: true, keepsConstants: () => true },
  MaxPool: { allowsNegativeScale: false, keepsConstants: () => true, check: (n) => (n.outputs.length > 1 && n.outputs[1]!.useCount > 0 ? 'uses MaxPool indices' : undefined) },
  GlobalMaxPool: { allowsNegativeScale: false, keepsConstants: () => true },
  AveragePool: { allowsNegativeScale: true, keepsConstants: (n) => !n.getInt('count_include_pad', 0) || !(n.getInts('pads') ?? []).some((p) => p !== 0) },
  GlobalAveragePool: { allowsNegativeScale: true, keepsConstants: () => true },
  Resize: { allowsNegativeScale: true, keepsConstants: () => true },
  Upsample: { allowsNegativeScale: true, keepsConstants: () => true },
  Pad: {
    allowsNegativeScale: true,
    keepsConstants: () => false,
    check: (n) => (n.getString('mode', 'constant') !== 'constant' ? `pads with mode "${n.getString('mode', 'constant')}"` : n.inputs[2] ? 'pads with a non-zero constant value' : undefined),
  },
};

/** Why a consumer op that is not linear-with-constant-weights blocks merging, in a user's words. */
export function consumerBlockReason(node: Node): string {
  const normalisers: Record<string, string> = {
    LayerNormalization: 'a LayerNormalization, which normalises across neurons',
    GroupNormalization: 'a GroupNormalization, which normalises across neurons',
    InstanceNormalization: 'an InstanceNormalization, which normalises across positions',
    BatchNormalization: 'a BatchNormalization (fold it into the layer first)',
    Softmax: 'a Softmax, which normalises across neurons',
    LogSoftmax: 'a LogSoftmax, which normalises across neurons',
    ReduceMean: 'a ReduceMean, which mixes neurons (a decomposed LayerNorm?)',
    ReduceSum: 'a ReduceSum, which mixes neurons',
    LpNormalization: 'an LpNormalization, which normalises across neurons',
    Concat: 'a Concat, which ties its channels to other tensors',
    Add: 'an Add with a non-constant operand (a residual connection), which ties its channels to other layers',
    Sub: 'a Sub with a non-constant operand, which ties its channels to other layers',
    Sum: 'a Sum, which ties its channels to other layers',
    Mul: 'a Mul with a non-constant operand (a gate), which scales each channel by data',
  };
  const what = normalisers[node.opType];
  return what ? `feeds ${what} ("${node.label}")` : `consumer "${node.label}" (${node.opType}) is not a linear layer with constant weights`;
}
