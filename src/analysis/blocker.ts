// Why a layer or a dependency group cannot be merged, as data: a stable code that code branches
// on (never the English message), the node at fault when there is one, and the message users read.

import type { Node } from '../ir/node.js';

/**
 * Stable blocker codes. Reports print `message`; code (and tests) switch on `code`, so a reworded
 * message never changes behaviour.
 */
export type BlockerCode =
  /** The layer sits in the body of an If/Loop/Scan. */
  | 'subgraph'
  /** A convolution with group != 1 (depthwise, grouped): channels follow their input channels. */
  | 'grouped-conv'
  /** The op is known but merging its channels is not supported (ConvTranspose). */
  | 'unsupported-op'
  /** The node reads its data input transposed (Gemm transA=1). */
  | 'transposed-input'
  /** A weight or bias tensor is read by another node too. */
  | 'shared-weights'
  /** A bias that is not a constant, or not one value per neuron/output. */
  | 'bias'
  /** The activation's pre-activation or an inner value is read outside the chain, or never read. */
  | 'activation-exit'
  /** The activation is not positively homogeneous (where a group needs it). */
  | 'not-homogeneous'
  /** The layer (or a group tensor) is a graph output. */
  | 'graph-output'
  /** No linear consumer reads the layer. */
  | 'no-consumer'
  /** A residual Add/Sub/Sum ties the channels to other layers. */
  | 'residual-add'
  /** A Concat ties the channels to other tensors. */
  | 'concat'
  /** A Mul by data (a gate) scales each channel by something computed. */
  | 'gate'
  /** A normalisation or reduction mixes the neurons. */
  | 'normaliser'
  /** Any other non-linear or non-constant consumer. */
  | 'nonlinear-consumer'
  /** A channel-wise op on the path that breaks exactness (MaxPool indices, non-zero padding). */
  | 'channelwise-op'
  /** A consumer whose weights do not match the layer's width or view (flattened conv, 3-D weights). */
  | 'consumer-shape'
  /** A dependency group's members disagree on width. */
  | 'width-mismatch'
  /** A group's channels also come from a node or a graph input outside it. */
  | 'foreign-source'
  /** A member's own blocker, carried into its group. */
  | 'member'
  /** A group member's index map the rewrite cannot apply yet (offsets, channel maps, heads). */
  | 'index-map'
  /** The channels belong to an attention block's heads (they merge as head blocks), or a block's heads cannot be merged. */
  | 'attention'
  /** A normalisation (LayerNorm, RMSNorm) inside a group mixes its channels: merges there are approximate only. */
  | 'normalisation'
  /** An embedding table writes a group's channels; its columns are not merged. */
  | 'embedding'
  /** Weights stored as integers: a QDQ weight (audited dequantized) or an integer op (ConvInteger, MatMulNBits...). */
  | 'quantized';

export interface Blocker {
  code: BlockerCode;
  /** The node at fault (the consumer, the Add, the op on the path), when there is one. */
  node?: Node;
  /** One line for users: what blocks and why. */
  message: string;
}

export function blocker(code: BlockerCode, message: string, node?: Node): Blocker {
  return node ? { code, node, message } : { code, message };
}

/** The blockers' messages, each once, in order (what reports print). */
export function blockerMessages(blockers: readonly Blocker[]): string[] {
  return [...new Set(blockers.map((b) => b.message))];
}

/** The blockers with duplicate messages dropped (the first of each kept). */
export function uniqueBlockers(blockers: readonly Blocker[]): Blocker[] {
  const seen = new Set<string>();
  return blockers.filter((b) => (seen.has(b.message) ? false : (seen.add(b.message), true)));
}
