// The residual stream of the exported transformers is one dependency group: every output
// projection writes it, the embeddings are its sources, the normalisations (decomposed RMSNorm,
// fused LayerNormalization, com.microsoft SkipLayerNormalization) carry it to every input
// projection, and the group says, by blocker code, that it merges only approximately.

import { describe, expect, it } from 'vitest';
import { findChannelGroups, type DependencyGroup } from '../../src/analysis/channel-groups.js';
import { findLayers } from '../../src/analysis/find-layers.js';
import { inferRank, matchDecomposedNormalisation } from '../../src/analysis/residual-stream.js';
import { DataType } from '../../src/ir/data-type.js';
import { Tensor } from '../../src/ir/tensor.js';
import { loadModel } from '../../src/onnx/model-file.js';
import { fixturePath } from '../helpers/cli-runner.js';
import { GraphBuilder, float, ints } from '../helpers/graph-builder.js';

const transformer = (file: string): string => fixturePath(`transformers/${file}`);

function groupsOf(file: string): DependencyGroup[] {
  return findChannelGroups(findLayers(loadModel(file)));
}

const codes = (g: DependencyGroup): string[] => [...new Set(g.blockers.map((b) => b.code))].sort();
const consumerNames = (g: DependencyGroup): string[] => g.consumers.map((c) => c.node.name).sort();

describe('the residual stream of the exported LLaMA decoders', () => {
  it.each(['llama-tiny-planted.onnx', 'llama-gqa-planted.onnx', 'llama-trained-small-init.onnx'])('%s: one group written by every o_proj and down_proj, read by every q/k/v/gate/up and lm_head, approximate only', (file) => {
    const groups = groupsOf(transformer(file));
    expect(groups).toHaveLength(1);
    const [stream] = groups;
    const layerCount = file.includes('trained') ? 1 : 2;
    const blocks = [...Array(layerCount).keys()];
    expect(stream!.producers.map((p) => p.name)).toEqual(blocks.flatMap((i) => [`/layers.${i}/attn/o_proj/MatMul`, `/layers.${i}/mlp/down_proj/MatMul`]));
    expect(stream!.width).toBe(16);
    const readers = blocks.flatMap((i) => [...['q', 'k', 'v'].map((p) => `/layers.${i}/attn/${p}_proj/MatMul`), `/layers.${i}/mlp/gate_proj/MatMul`, `/layers.${i}/mlp/up_proj/MatMul`]);
    expect(consumerNames(stream!)).toEqual([...readers, '/lm_head/MatMul'].sort());
    expect(stream!.mergeable).toBe(false);
    expect(codes(stream!)).toEqual(['embedding', 'normalisation']);
    const norm = stream!.blockers.find((b) => b.code === 'normalisation')!;
    expect(norm.message).toMatch(/approximately .*never exactly/);
  });

  it('matches each decomposed RMSNorm from its input to the gain Mul', () => {
    const model = loadModel(transformer('llama-tiny-planted.onnx'));
    const add = model.graph.nodes.find((n) => n.name === '/layers.0/Add')!;
    const match = matchDecomposedNormalisation(add.outputs[0]!, 1)!;
    expect(match.nodes.map((n) => n.opType)).toEqual(['Pow', 'ReduceMean', 'Add', 'Sqrt', 'Div', 'Mul']);
    expect(match.output.producer!.name).toBe('/layers.0/post_attention_norm/Mul');
    expect(inferRank(add.outputs[0]!)).toBe(3);
  });
});

describe('the residual stream of the exported BERT encoder', () => {
  it('is one group through the fused LayerNormalizations, with word and position embeddings as sources and the pooler among its readers', () => {
    const groups = groupsOf(transformer('bert-tiny-planted.onnx'));
    expect(groups).toHaveLength(1);
    const [stream] = groups;
    expect(stream!.producers.map((p) => p.name)).toEqual(['/layers.0/attn/out_proj/MatMul', '/layers.0/fc2/MatMul', '/layers.1/attn/out_proj/MatMul', '/layers.1/fc2/MatMul']);
    expect(consumerNames(stream!)).toEqual(['/layers.0/attn/in_proj/MatMul', '/layers.0/fc1/MatMul', '/layers.1/attn/in_proj/MatMul', '/layers.1/fc1/MatMul', '/pooler/Gemm'].sort());
    expect(codes(stream!)).toEqual(['embedding', 'normalisation']);
    expect(stream!.blockers.filter((b) => b.code === 'embedding').map((b) => b.node!.name).sort()).toEqual(['/position/Gather', '/word/Gather']);
  });
});

describe('normalisations built here', () => {
  it('find a decomposed LayerNorm (mean, centre, variance) in the TS-generated mlp-layernorm fixture', () => {
    const model = loadModel(fixturePath('mlp-layernorm.onnx'));
    const relu = model.graph.nodes.find((n) => n.opType === 'Relu')!;
    const match = matchDecomposedNormalisation(relu.outputs[0]!, 1)!;
    expect(match.nodes.filter((n) => n.opType === 'ReduceMean')).toHaveLength(2);
    expect(match.nodes[match.nodes.length - 1]!.opType).toBe('Add');
  });

  it('do not take a mean over the sequence axis for a normalisation of the channels', () => {
    const b = new GraphBuilder();
    const x = b.input('x', DataType.FLOAT, ['batch', 'sequence', 8]);
    const [mean] = b.node('ReduceMean', [x], { axes: ints([1]), keepdims: { type: 'int', value: 1n } });
    const [centred] = b.node('Sub', [x, mean!]);
    b.output(centred!, DataType.FLOAT, ['batch', 'sequence', 8]);
    expect(matchDecomposedNormalisation(x, 1)).toBeUndefined();
  });

  it('tie the two inputs of a com.microsoft SkipLayerNormalization and carry them to its reader, blocked as a normalisation', () => {
    const b = new GraphBuilder();
    const x = b.input('x', DataType.FLOAT, ['batch', 4, 8]);
    const weight = (name: string, seed: number): ReturnType<GraphBuilder['initializer']> => b.initializer(name, Tensor.fromFloat32([8, 8], Float32Array.from({ length: 64 }, (_, i) => Math.sin(seed + i))));
    const [a] = b.node('MatMul', [x, weight('wa', 1)], {}, { name: 'fc_a' });
    const [c] = b.node('MatMul', [x, weight('wc', 2)], {}, { name: 'fc_c' });
    const gamma = b.initializer('gamma', Tensor.fromFloat32([8], new Float32Array(8).fill(1)));
    const beta = b.initializer('beta', Tensor.fromFloat32([8], new Float32Array(8)));
    const [y] = b.node('SkipLayerNormalization', [a!, c!, gamma, beta], { epsilon: float(1e-5) }, { domain: 'com.microsoft', name: 'skip_ln' });
    const [out] = b.node('MatMul', [y!, b.initializer('wo', Tensor.fromFloat32([8, 3], new Float32Array(24).fill(0.5)))], {}, { name: 'head' });
    b.output(out!, DataType.FLOAT, ['batch', 4, 3]);
    const groups = findChannelGroups(findLayers(b.build(17, { otherOpsets: { 'com.microsoft': 1 } })));
    expect(groups).toHaveLength(1);
    expect(groups[0]!.producers.map((p) => p.name)).toEqual(['fc_a', 'fc_c']);
    expect(groups[0]!.ties.map((t) => t.name)).toEqual(['skip_ln']);
    expect(groups[0]!.consumers.map((c) => c.node.name)).toEqual(['head']);
    expect(codes(groups[0]!)).toEqual(['normalisation']);
    // prune --approximate can merge it (rewrite/merge-stream.ts cuts gamma and beta).
    expect(groups[0]!.approximateOnly).toBe(true);
  });
});
