// inspect: what is in a model file, and which layers the tool can work on (and why not).

import { findChannelGroups, type DependencyGroup } from '../analysis/channel-groups.js';
import { measureCoverage, type Coverage } from '../analysis/coverage.js';
import { findLayers, type NeuronLayer } from '../analysis/find-layers.js';
import { findAttention, markAttentionLayers } from '../analysis/attention.js';
import { findUnsupportedLayers, type UnsupportedLayer } from '../analysis/unsupported-layers.js';
import { dataTypeName } from '../ir/data-type.js';
import type { Model } from '../ir/model.js';
import { loadModel } from '../onnx/model-file.js';
import { cloneModel } from '../ir/clone-model.js';
import { dequantizeConstantWeights } from '../rewrite/dequantize-weights.js';
import { foldBatchNorms } from '../rewrite/fold-batch-norms.js';

export interface InspectResult {
  path: string;
  irVersion: number;
  opsetImports: { domain: string; version: number }[];
  producer: string;
  parameterCount: number;
  nodeCount: number;
  /** Node count per op type (subgraphs included), most frequent first. */
  opCounts: { opType: string; count: number }[];
  inputs: { name: string; type: string }[];
  outputs: { name: string; type: string }[];
  layers: NeuronLayer[];
  /** Channels tied across layers (residual Adds): merged together or not at all, as audit sees them. */
  groups: DependencyGroup[];
  /** Weight-bearing ops the tool names but cannot measure or rewrite (integer ops of quantized models). */
  unsupportedLayers: UnsupportedLayer[];
  /** The share of hidden neurons prune can rewrite, and what blocks the rest. */
  coverage: Coverage;
}

function describeType(v: { elemType: number | undefined; shape: { value?: number; param?: string }[] | undefined }): string {
  const elem = v.elemType === undefined ? '?' : dataTypeName(v.elemType);
  const shape = v.shape ? `[${v.shape.map((d) => d.value ?? (d.param || '?')).join(', ')}]` : '[?]';
  return `${elem}${shape}`;
}

/** Layers are shown as audit and prune see them: with each BatchNorm folded into its conv. */
function foldedCopy(model: Model): Model {
  const copy = cloneModel(model);
  dequantizeConstantWeights(copy);
  foldBatchNorms(copy);
  return copy;
}

export function inspect(model: string | Model): InspectResult {
  const path = typeof model === 'string' ? model : 'model';
  const m = typeof model === 'string' ? loadModel(model) : model;
  const counts = new Map<string, number>();
  let nodeCount = 0;
  for (const n of m.graph.walk()) {
    nodeCount++;
    const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const folded = foldedCopy(m);
  const layers = findLayers(folded);
  // As audit sees them: projections of recognised attention blocks merge as head blocks.
  const attention = findAttention(folded, layers);
  markAttentionLayers(attention);
  const groups = findChannelGroups(layers);
  const unsupportedLayers = findUnsupportedLayers(m);
  return {
    path,
    irVersion: m.irVersion,
    opsetImports: m.opsetImports,
    producer: [m.producerName, m.producerVersion].filter(Boolean).join(' '),
    parameterCount: m.parameterCount(),
    nodeCount,
    opCounts: [...counts].map(([opType, count]) => ({ opType, count })).sort((a, b) => b.count - a.count || a.opType.localeCompare(b.opType)),
    inputs: m.graph.inputs.filter((v) => !v.initializer).map((v) => ({ name: v.name, type: describeType(v) })),
    outputs: m.graph.outputs.map((v) => ({ name: v.name, type: describeType(v) })),
    layers,
    groups,
    unsupportedLayers,
    coverage: measureCoverage(layers, groups, unsupportedLayers, attention),
  };
}
