// Applying a residual stream's approximate merge (plan-stream-merges.ts), the part the group path
// of apply-merge-plan.ts does not know: the embedding tables lose the removed columns, and every
// normalisation's per-channel gain and bias lose the removed channels. With `rescaled` (an RMSNorm
// stream), kept channel r is written s_r = sqrt(1 + sum_j t_j^2) larger by every writer, so the
// sum of squares a norm sees stays what it was when x_j = t_j x_r; the mean over d' = d - removed
// channels is then d / d' times larger, so eps becomes eps d / d' and gain g_c becomes
// g_c sqrt(d / d') / s_c, and y_r stays y_r exactly. Producers (the writers' output channels) and
// readers (least-squares refit) are the group path's.

import type { DependencyGroup } from '../analysis/channel-groups.js';
import { constantThroughIdentity, streamParts, type StreamNormalisation } from '../analysis/residual-stream.js';
import type { Model } from '../ir/model.js';
import type { Node } from '../ir/node.js';
import { Tensor } from '../ir/tensor.js';
import { axisToRows, rowsToAxis } from '../numeric/axis-slices.js';
import type { GroupMergePlan } from './plan-merges.js';

/** Default epsilon of the fused normalisations (LayerNormalization, RMSNormalization, SimplifiedLayerNormalization). */
const FUSED_EPSILON = 1e-5;

/** s_r per kept channel that others fold into (absent: 1), for plans that rescale. */
export function streamChannelScales(gp: GroupMergePlan): Map<number, number> {
  const scales = new Map<number, number>();
  if (!gp.stream?.rescaled) return scales;
  for (const f of gp.stream.folds) scales.set(f.into, (scales.get(f.into) ?? 1) + f.scale ** 2);
  for (const [r, sum] of scales) scales.set(r, Math.sqrt(sum));
  return scales;
}

/** `t` with only channels `kept` of `axis`, channel c multiplied by scale(c), in its own element type. */
function keepChannels(t: Tensor, axis: number, kept: readonly number[], scale: (c: number) => number = () => 1): Tensor {
  const rows = axisToRows(t.toFloat64(), t.dims, axis);
  const len = rows.length / t.dims[axis]!;
  const out = new Float64Array(kept.length * len);
  kept.forEach((k, i) => {
    const s = scale(k);
    for (let x = 0; x < len; x++) out[i * len + x] = s * rows[k * len + x]!;
  });
  const dims = t.dims.map((d, i) => (i === axis ? kept.length : d));
  return Tensor.fromNumbers(t.dataType, dims, rowsToAxis(out, kept.length, dims, axis));
}

/**
 * Gives `node` `tensor` at `inputIndex`: in place when the constant is read there only (its name
 * stays), else as a constant of its own (torch shares one initializer among norms through Identity).
 */
function setOwnInput(model: Model, node: Node, inputIndex: number, tensor: Tensor): void {
  const g = model.graph;
  const old = node.inputs[inputIndex];
  if (old?.constantTensor() && old.useCount === 1 && !old.isGraphOutput && !old.isGraphInput) g.setConstant(old, tensor);
  else node.setInput(inputIndex, g.addInitializer(g.uniqueName(`${old?.name ?? node.name}_stream`), tensor));
}

/**
 * Scales the writers' kept channels (rescaled plans), and cuts and rescales the embedding tables
 * and the normalisations' constants. Run before the group path cuts producers and refits readers.
 */
export function rewriteStreamConstants(model: Model, group: DependencyGroup, gp: GroupMergePlan): void {
  const kept = gp.refit!.kept;
  const width = group.width;
  const scales = streamChannelScales(gp);
  const s = (c: number): number => scales.get(c) ?? 1;
  const parts = streamParts(group);
  if (parts.blockers.length) throw new Error(`merge plan names residual stream "${gp.group}", which the stream rewrite cannot handle: ${parts.blockers.map((b) => b.message).join('; ')}`);
  for (const e of parts.embeddings) setOwnInput(model, e.node, 0, keepChannels(constantThroughIdentity(e.table)!, 1, kept, s));
  const rescaled = gp.stream?.rescaled ?? false;
  if (scales.size) {
    for (const p of group.producers) {
      const w = p.weight.value.constantTensor()!;
      model.graph.setConstant(p.weight.value, keepChannels(w, p.outAxis, [...Array(width).keys()], s));
      if (p.bias?.perNeuron) {
        const b = p.bias.value.constantTensor()!;
        model.graph.setConstant(p.bias.value, keepChannels(b, b.dims.length - 1, [...Array(width).keys()], s));
      }
    }
  }
  for (const norm of parts.normalisations) rewriteNormalisation(model, norm, kept, width, rescaled ? s : undefined);
}

function rewriteNormalisation(model: Model, norm: StreamNormalisation, kept: readonly number[], width: number, s: ((c: number) => number) | undefined): void {
  const widen = Math.sqrt(width / kept.length);
  let gainRescaled = false;
  for (const p of norm.parameters) {
    const t = constantThroughIdentity(p.node.inputs[p.inputIndex])!;
    const rescale = s && p.role === 'gain' && !gainRescaled;
    if (rescale) gainRescaled = true;
    // An input bias writes the stream, as the producers do: its kept channel r is s_r larger.
    const scale = rescale ? (c: number) => widen / s(c) : s && p.role === 'input-bias' ? s : undefined;
    setOwnInput(model, p.node, p.inputIndex, keepChannels(t, t.dims.length - 1, kept, scale));
  }
  if (!s || !norm.epsilon) return;
  const ratio = width / kept.length;
  if ('attribute' in norm.epsilon) {
    const { node, attribute } = norm.epsilon;
    node.setAttribute({ name: attribute, type: 'float', value: node.getFloat(attribute, FUSED_EPSILON) * ratio });
  } else {
    const { node, inputIndex } = norm.epsilon;
    const t = constantThroughIdentity(node.inputs[inputIndex])!;
    setOwnInput(model, node, inputIndex, Tensor.fromNumbers(t.dataType, t.dims, t.toFloat64().map((x) => x * ratio)));
  }
}
