// Coupling rules: how one op ties the channels of the tensors around it, emitted as dependency-group
// members (tensor, channel axis, index map). A new kind of coupling (Concat offsets, Split/Slice,
// depthwise channel maps, attention heads) is one entry in `couplingRules`; the group search in
// channel-groups.ts and the group data model do not change.

import type { Node } from '../ir/node.js';
import type { Value } from '../ir/value.js';
import { isElementwiseOp } from './elementwise-function.js';
import { channelwiseOps, homogeneousElementwiseOps, ruleFor } from './layer-rules.js';
import type { Blocker } from './blocker.js';
import { residualStreamRules } from './residual-stream.js';

/**
 * How a member tensor's channels map onto the group's channel indices. Identity: channel c is
 * group channel c (Add, Relu). Offset: channel c is group channel c + offset (a Concat operand,
 * a Split/Slice part). Channel map: channel c is group channel groupChannelOf[c] (depthwise conv).
 * Head blocks: channels are `heads` blocks of `headSize`, and a merge moves whole blocks (attention).
 */
export type IndexMap =
  | { kind: 'identity' }
  | { kind: 'offset'; offset: number }
  | { kind: 'channel-map'; groupChannelOf: readonly number[] }
  | { kind: 'head-blocks'; heads: number; headSize: number };

export const IDENTITY: IndexMap = { kind: 'identity' };

/** One tensor whose channels change with the group. */
export interface GroupMember {
  value: Value;
  /** Axis of `value` that holds the channels, counted from the last (1 = last axis). */
  axisFromEnd: number;
  indexMap: IndexMap;
}

/** What a rule sees: the node, and the channel axis (from the end) of the group it is reached from. */
export interface CouplingContext {
  node: Node;
  axisFromEnd: number;
}

export interface CouplingRule {
  /** A name for docs and errors ('residual-add', 'pass-through', ...). */
  name: string;
  /**
   * 'tie' rules join tensors written by different layers (a tie starts a group); 'pass-through'
   * rules only carry a group's channels from one tensor to the next (Relu, pooling).
   */
  kind: 'tie' | 'pass-through';
  /** The members the node couples (its inputs and outputs), or undefined when the rule does not apply. */
  couple(context: CouplingContext): GroupMember[] | undefined;
  /**
   * Why a group this node couples can never merge exactly, when it cannot (a normalisation mixes
   * the channels; an embedding table would have to merge too): carried into the group's blockers.
   */
  exactBlocker?(context: CouplingContext): Blocker | undefined;
}

function isStandard(node: Node): boolean {
  return node.domain === '' || node.domain === 'ai.onnx';
}

function dataInputs(node: Node): Value[] {
  return node.inputs.filter((v): v is Value => !!v && !v.constantTensor());
}

/** Residual Add / Sum: (t a) + (t b) = t (a + b), channel c of every operand is one channel. */
const residualAdd: CouplingRule = {
  name: 'residual-add',
  kind: 'tie',
  couple({ node, axisFromEnd }) {
    if (!isStandard(node) || (node.opType !== 'Add' && node.opType !== 'Sum')) return undefined;
    const inputs = dataInputs(node);
    if (inputs.length < 2) return undefined;
    return [...inputs, node.outputs[0]!].map((value) => ({ value, axisFromEnd, indexMap: IDENTITY }));
  },
};

/** An op that keeps channels apart and positive scales intact (Relu, pooling): input 0 and output are one. */
const passThrough: CouplingRule = {
  name: 'pass-through',
  kind: 'pass-through',
  couple({ node, axisFromEnd }) {
    if (!isStandard(node)) return undefined;
    let passes = false;
    if (homogeneousElementwiseOps.has(node.opType) && isElementwiseOp(node)) passes = node.inputs.slice(1).every((v) => !v || v.constantTensor());
    else {
      const op = ruleFor(channelwiseOps, node);
      passes = !!op && !op.check?.(node);
    }
    if (!passes) return undefined;
    return [...dataInputs(node), node.outputs[0]!].map((value) => ({ value, axisFromEnd, indexMap: IDENTITY }));
  },
};

/**
 * The coupling rules, tried in order (put a specific rule before a general one). Adding a kind of
 * coupling is adding an entry here (or passing a list to findChannelGroups).
 */
export const couplingRules: readonly CouplingRule[] = [residualAdd, passThrough, ...residualStreamRules];

/** The first rule of `rules` that couples `node`'s channels, with the members it emits. */
export function coupleAt(node: Node, axisFromEnd: number, rules: readonly CouplingRule[] = couplingRules): { rule: CouplingRule; members: GroupMember[] } | undefined {
  for (const rule of rules) {
    const members = rule.couple({ node, axisFromEnd });
    if (members) return { rule, members };
  }
  return undefined;
}
