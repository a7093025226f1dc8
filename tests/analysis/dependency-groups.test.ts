// The dependency-group data model: groups list their member tensors (channel axis, index map),
// blockers are structured values that code switches on by code, and a new kind of coupling is a
// rule handed to findChannelGroups, not a change to the search.

import { describe, expect, it } from 'vitest';
import { blockerMessages } from '../../src/analysis/blocker.js';
import { findChannelGroups } from '../../src/analysis/channel-groups.js';
import { couplingRules, IDENTITY, type CouplingRule } from '../../src/analysis/coupling-rules.js';
import { findLayers } from '../../src/analysis/find-layers.js';
import { isReadoutLayer } from '../../src/analysis/readout-layer.js';
import { DataType } from '../../src/ir/data-type.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { Value } from '../../src/ir/value.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { loadModel } from '../../src/onnx/model-file.js';
import { foldBatchNorms } from '../../src/rewrite/fold-batch-norms.js';
import { fixturePath } from '../helpers/cli-runner.js';
import { GraphBuilder, int } from '../helpers/graph-builder.js';

describe('dependency groups on the residual fixture', () => {
  const model = loadModel(fixturePath('resnet-planted.onnx'));
  foldBatchNorms(model);
  const layers = findLayers(model);
  const groups = findChannelGroups(layers);

  it('list every tensor of the stream as a member with the channel axis and an identity map', () => {
    expect(groups.length).toBeGreaterThan(0);
    for (const g of groups) {
      expect(g.members.length).toBe(g.values.size);
      expect(g.members.map((m) => m.value)).toEqual([...g.values]);
      for (const m of g.members) {
        expect(m.indexMap).toEqual(IDENTITY);
        expect(m.axisFromEnd).toBe(3);
      }
      // Every producer's output and every tie's output is a member.
      for (const p of g.producers) expect(g.values.has(p.activation.output)).toBe(true);
      for (const t of g.ties) expect(g.values.has(t.outputs[0]!)).toBe(true);
    }
  });

  it('mark the producers blocked by their residual Add with code residual-add and the Add as the node', () => {
    const producers = groups.flatMap((g) => g.producers);
    const tied = producers.filter((p) => p.blockers.some((b) => b.code === 'residual-add'));
    expect(tied.length).toBeGreaterThan(0);
    for (const p of tied) {
      const b = p.blockers.find((x) => x.code === 'residual-add')!;
      expect(b.node?.opType).toMatch(/^(Add|Sum)$/);
      expect(b.message).toContain(`"${b.node!.label}"`);
      expect(groups.some((g) => g.ties.includes(b.node!))).toBe(true);
    }
    // The group is not blocked by the ties that make it.
    for (const g of groups) expect(g.blockers.filter((b) => b.code === 'residual-add')).toEqual([]);
  });
});

/** Two 4-channel convs concatenated into 8 channels, read by a 1x1 conv. */
function concatModel() {
  const rng = new SeededRandom(3);
  const f = (dims: number[]): Tensor => Tensor.fromNumbers(DataType.FLOAT, dims, Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rng.gaussian()));
  const b = new GraphBuilder('concat');
  const x = b.input('x', DataType.FLOAT, ['N', 2, 5, 5]);
  const [za] = b.node('Conv', [x, b.initializer('wa', f([4, 2, 1, 1])), b.initializer('ba', f([4]))], {}, { name: 'a' });
  const [ha] = b.node('Relu', [za!], {}, { name: 'relu_a' });
  const [zb] = b.node('Conv', [x, b.initializer('wb', f([4, 2, 1, 1])), b.initializer('bb', f([4]))], {}, { name: 'b' });
  const [hb] = b.node('Relu', [zb!], {}, { name: 'relu_b' });
  const [cat] = b.node('Concat', [ha!, hb!], { axis: int(1) }, { name: 'cat' });
  const [y] = b.node('Conv', [cat!, b.initializer('wc', f([3, 8, 1, 1]))], {}, { name: 'c', outputs: ['y'] });
  b.output(y!, DataType.FLOAT, ['N', 3, 5, 5]);
  return b.build(13);
}

/** Two 4-channel convs combined by Max (no built-in rule): max(t a, t b) = t max(a, b). */
function maxModel() {
  const rng = new SeededRandom(4);
  const f = (dims: number[]): Tensor => Tensor.fromNumbers(DataType.FLOAT, dims, Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rng.gaussian()));
  const b = new GraphBuilder('max');
  const x = b.input('x', DataType.FLOAT, ['N', 2, 5, 5]);
  const [za] = b.node('Conv', [x, b.initializer('wa', f([4, 2, 1, 1]))], {}, { name: 'a' });
  const [zb] = b.node('Conv', [x, b.initializer('wb', f([4, 2, 1, 1]))], {}, { name: 'b' });
  const [m] = b.node('Max', [za!, zb!], {}, { name: 'max' });
  const [y] = b.node('Conv', [m!, b.initializer('wc', f([3, 4, 1, 1]))], {}, { name: 'c', outputs: ['y'] });
  b.output(y!, DataType.FLOAT, ['N', 3, 5, 5]);
  return b.build(13);
}

describe('Concat on the channel axis', () => {
  it('joins both operands into one group with offset members, which merges can apply', () => {
    const layers = findLayers(concatModel());
    const [group, ...others] = findChannelGroups(layers);
    expect(others).toEqual([]);
    expect(group!.producers.map((p) => p.name).sort()).toEqual(['a', 'b']);
    expect(group!.ties.map((t) => t.label)).toEqual(['cat']);
    expect(group!.width).toBe(8);
    const offsets = group!.members.filter((m) => m.indexMap.kind === 'offset').map((m) => [m.value.producer!.label, (m.indexMap as { offset: number }).offset]);
    expect(offsets.sort()).toEqual([['relu_a', 0], ['relu_b', 4]]);
    expect(group!.mergeable).toBe(true);
    expect(group!.blockers).toEqual([]);
  });
});

describe('a new coupling rule', () => {
  const maxTie: CouplingRule = {
    name: 'max-tie',
    kind: 'tie',
    couple({ node, axisFromEnd }) {
      if (node.opType !== 'Max') return undefined;
      const out = node.outputs[0]!;
      const inputs = node.inputs.filter((v): v is Value => !!v);
      return { members: [...inputs, out].map((value) => ({ value, axisFromEnd })), links: inputs.map((from) => ({ from, fromStart: 0, to: out, toStart: 0, count: 4 })), ratio: 'same' };
    },
  };

  it('is needed for an op the built-in rules do not know: Max is a blocker by default', () => {
    const layers = findLayers(maxModel());
    expect(findChannelGroups(layers)).toEqual([]);
    for (const name of ['a', 'b']) expect(layers.find((l) => l.name === name)!.blockers.map((x) => x.code)).toEqual(['nonlinear-consumer']);
  });

  it('joins both operands into one group when handed to findChannelGroups', () => {
    const layers = findLayers(maxModel());
    const [group, ...others] = findChannelGroups(layers, [maxTie, ...couplingRules]);
    expect(others).toEqual([]);
    expect(group!.producers.map((p) => p.name).sort()).toEqual(['a', 'b']);
    expect(group!.ties.map((t) => t.label)).toEqual(['max']);
    expect(group!.members.every((m) => m.indexMap.kind === 'identity')).toBe(true);
    expect(group!.consumers.map((c) => c.node.label)).toEqual(['c']);
    expect(blockerMessages(group!.blockers)).toEqual([]);
  });
});

describe('read-out layers', () => {
  it('are the layers with nothing weight-bearing downstream, not the residual-branch convs that feed an Add', () => {
    const model = loadModel(fixturePath('resnet-planted.onnx'));
    foldBatchNorms(model);
    const layers = findLayers(model);
    const linearEnds = layers.filter((l) => l.activation.name === 'Identity' && l.consumers.length === 0);
    expect(linearEnds.map((l) => l.name).sort()).toEqual(['block1_conv2', 'block2_conv2', 'fc']);
    expect(linearEnds.filter(isReadoutLayer).map((l) => l.name)).toEqual(['fc']);
  });
});
