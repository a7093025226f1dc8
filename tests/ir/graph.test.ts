import { describe, expect, it } from 'vitest';
import { DataType } from '../../src/ir/data-type.js';
import { Graph } from '../../src/ir/graph.js';
import type { Node } from '../../src/ir/node.js';
import { Tensor } from '../../src/ir/tensor.js';
import type { Value } from '../../src/ir/value.js';
import { decodeModel } from '../../src/onnx/decode-model.js';
import { encodeModel } from '../../src/onnx/encode-model.js';
import { float, floats, graph, GraphBuilder, int, ints } from '../helpers/graph-builder.js';

const { FLOAT, INT64 } = DataType;

/** Each use as "node label#input index", sorted, so assertions read plainly. */
function useLabels(value: Value): string[] {
  return value.uses().map((u) => `${u.node.label}#${u.inputIndex}`).sort();
}

function producerOf(value: Value): Node {
  if (!value.producer) throw new Error(`value "${value.name}" has no producer`);
  return value.producer;
}

function bytesOf(t: Tensor | undefined): number[] {
  if (!t) throw new Error('expected a constant tensor');
  return [...t.bytes()];
}

/** x -> Relu -> a -> Neg -> b, and Add(a, a) -> c; outputs b and c. */
function diamond(): { b: GraphBuilder; x: Value; a: Value; bOut: Value; c: Value } {
  const b = new GraphBuilder('g');
  const x = b.input('x', FLOAT, [2]);
  const [a] = b.node('Relu', [x], {}, { name: 'relu' });
  const [bOut] = b.node('Neg', [a!], {}, { name: 'neg' });
  const [c] = b.node('Add', [a!, a!], {}, { name: 'add' });
  b.output(bOut!, FLOAT, [2]);
  b.output(c!, FLOAT, [2]);
  return { b, x, a: a!, bOut: bOut!, c: c! };
}

describe('Graph edges', () => {
  it('records one use per node input, including a value read twice by one node', () => {
    const { a, x } = diamond();
    expect(useLabels(a)).toEqual(['add#0', 'add#1', 'neg#0']);
    expect(useLabels(x)).toEqual(['relu#0']);
  });

  it('moves the use from the old value to the new one when setInput repoints an input', () => {
    const { a, x, c } = diamond();
    const add = producerOf(c);
    add.setInput(1, x);
    expect(useLabels(a)).toEqual(['add#0', 'neg#0']);
    expect(useLabels(x)).toEqual(['add#1', 'relu#0']);
    add.setInput(0, null);
    expect(add.inputs[0]).toBeNull();
    expect(useLabels(a)).toEqual(['neg#0']);
  });

  it('pads with omitted inputs when setInput points past the end', () => {
    const { x, c } = diamond();
    const add = producerOf(c);
    add.setInput(4, x);
    expect(add.inputs).toHaveLength(5);
    expect(add.inputs.slice(2, 4)).toEqual([null, null]);
    expect(useLabels(x)).toEqual(['add#4', 'relu#0']);
  });

  it('makes every reader and graph output read the replacement in replaceAllUses', () => {
    const { b, x, a, bOut } = diamond();
    const [d] = b.node('Abs', [x], {}, { name: 'abs' });
    b.graph.outputs.push(a);
    b.graph.replaceAllUses(a, d!);
    expect(a.useCount).toBe(0);
    expect(useLabels(d!)).toEqual(['add#0', 'add#1', 'neg#0']);
    expect(producerOf(bOut).inputs[0]).toBe(d);
    expect(b.graph.outputs).toContain(d);
    expect(b.graph.outputs).not.toContain(a);
  });

  it('repoints readers inside subgraphs when replaceAllUses swaps an outer value', () => {
    const outer = new GraphBuilder('outer');
    const x = outer.input('x', FLOAT, [1]);
    const cond = outer.input('cond', DataType.BOOL, []);
    const [y] = outer.node('Relu', [x], {}, { name: 'relu' });
    const thenBranch = new GraphBuilder('then', outer);
    const [t] = thenBranch.node('Neg', [y!], {}, { name: 'inner_neg' });
    thenBranch.output(t!, FLOAT, [1]);
    const elseBranch = new GraphBuilder('else', outer);
    const [e] = elseBranch.node('Identity', [y!], {}, { name: 'inner_id' });
    elseBranch.output(e!, FLOAT, [1]);
    outer.node('If', [cond], { then_branch: graph(thenBranch), else_branch: graph(elseBranch) });
    outer.graph.replaceAllUses(y!, x);
    expect(y!.useCount).toBe(0);
    expect(useLabels(x)).toEqual(['inner_id#0', 'inner_neg#0', 'relu#0']);
  });

  it('hands out a copy from uses(), so editing the graph inside a loop over it is safe', () => {
    const { a, x } = diamond();
    const uses = a.uses();
    uses.pop();
    expect(a.useCount).toBe(3);
    for (const use of a.uses()) use.node.setInput(use.inputIndex, x);
    expect(a.useCount).toBe(0);
    expect(useLabels(x)).toEqual(['add#0', 'add#1', 'neg#0', 'relu#0']);
  });
});

describe('Graph.removeNodes', () => {
  it('removes a set of nodes and the uses they held', () => {
    const { b, x, a, bOut, c } = diamond();
    b.graph.outputs = [x];
    b.graph.removeNodes([producerOf(bOut), producerOf(c), producerOf(a)]);
    expect(b.graph.nodes).toHaveLength(0);
    expect(x.useCount).toBe(0);
  });

  it('leaves the graph unchanged when one node of the set still has an outside reader', () => {
    const { b, x, a, bOut, c } = diamond();
    b.graph.outputs = [c];
    const before = [...b.graph.nodes];
    const relu = producerOf(a);
    // neg may go, but relu's output is still read by add, which is not in the set.
    expect(() => b.graph.removeNodes([producerOf(bOut), relu])).toThrow(/read by "add"/);
    expect(b.graph.nodes).toEqual(before);
    expect(useLabels(a)).toEqual(['add#0', 'add#1', 'neg#0']);
    expect(useLabels(x)).toEqual(['relu#0']);
  });

  it('refuses to remove a node whose output is a graph output, changing nothing', () => {
    const { b, a, bOut } = diamond();
    const before = [...b.graph.nodes];
    expect(() => b.graph.removeNodes([producerOf(bOut)])).toThrow(/graph output/);
    expect(b.graph.nodes).toEqual(before);
    expect(useLabels(a)).toEqual(['add#0', 'add#1', 'neg#0']);
  });

  it('refuses a node from another graph before removing any of the others', () => {
    const { b, bOut } = diamond();
    const other = diamond();
    b.graph.outputs = [];
    const before = [...b.graph.nodes];
    expect(() => b.graph.removeNodes([producerOf(bOut), producerOf(other.bOut)])).toThrow(/does not belong/);
    expect(b.graph.nodes).toEqual(before);
    expect(other.a.useCount).toBe(3);
  });

  it('drops value_info entries of the values the removed nodes produced', () => {
    const { b, x, a, bOut } = diamond();
    b.graph.valueInfos = [a, bOut];
    b.graph.outputs = [a];
    b.graph.removeNodes([producerOf(bOut), ...b.graph.nodes.filter((n) => n.opType === 'Add')]);
    expect(b.graph.valueInfos).toEqual([a]);
    expect(x.useCount).toBe(1);
  });
});

describe('Graph.topologicalSort', () => {
  it('moves a producer ahead of its reader and reports that it changed the order', () => {
    const b = new GraphBuilder('g');
    const x = b.input('x', FLOAT, [2]);
    const [a] = b.node('Relu', [x], {}, { name: 'relu' });
    const [n] = b.node('Neg', [a!], {}, { name: 'neg' });
    const [abs] = b.node('Abs', [x], {}, { name: 'abs' });
    // neg now reads abs, which comes after it.
    producerOf(n!).setInput(0, abs!);
    b.output(n!, FLOAT, [2]);
    expect(b.graph.nodes.map((node) => node.name)).toEqual(['relu', 'neg', 'abs']);
    expect(b.graph.topologicalSort()).toBe(true);
    expect(b.graph.nodes.map((node) => node.name)).toEqual(['relu', 'abs', 'neg']);
    expect(b.graph.topologicalSort()).toBe(false);
  });

  it('keeps an order that already holds and reports no change', () => {
    const { b } = diamond();
    const before = [...b.graph.nodes];
    expect(b.graph.topologicalSort()).toBe(false);
    expect(b.graph.nodes).toEqual(before);
  });

  it('places the producer of a value a subgraph reads before the node holding the subgraph', () => {
    const outer = new GraphBuilder('outer');
    const x = outer.input('x', FLOAT, [1]);
    const cond = outer.input('cond', DataType.BOOL, []);
    const branch = new GraphBuilder('then', outer);
    const [late] = outer.node('Relu', [x], {}, { name: 'late' });
    const [t] = branch.node('Neg', [late!]);
    branch.output(t!, FLOAT, [1]);
    outer.node('If', [cond], { then_branch: graph(branch) }, { name: 'if' });
    // Move the Relu after the If by rebuilding the order through a later node.
    const [moved] = outer.node('Relu', [x], {}, { name: 'moved' });
    outer.graph.replaceAllUses(late!, moved!);
    outer.graph.removeNodes([producerOf(late!)]);
    expect(outer.graph.nodes.map((n) => n.name)).toEqual(['if', 'moved']);
    expect(outer.graph.topologicalSort()).toBe(true);
    expect(outer.graph.nodes.map((n) => n.name)).toEqual(['moved', 'if']);
  });

  it('names a node on a cycle instead of looping forever', () => {
    const b = new GraphBuilder('g');
    const x = b.input('x', FLOAT, [2]);
    const [a] = b.node('Relu', [x], {}, { name: 'first' });
    const [c] = b.node('Neg', [a!], {}, { name: 'second' });
    producerOf(a!).setInput(0, c!);
    expect(() => b.graph.topologicalSort()).toThrow(/cycle through node "(first|second)"/);
  });
});

describe('Value.constantTensor', () => {
  const floatsTensor = Tensor.fromNumbers(FLOAT, [3], [1.5, -2, 0.25]);

  it('reads an initializer and a Constant node "value" holding the same tensor the same way', () => {
    const b = new GraphBuilder('g');
    const w = b.initializer('w', floatsTensor);
    const k = b.constant('k', floatsTensor);
    expect(bytesOf(w.constantTensor())).toEqual([...floatsTensor.bytes()]);
    expect(bytesOf(k.constantTensor())).toEqual([...floatsTensor.bytes()]);
    expect(k.constantTensor()!.dims).toEqual([3]);
    expect(w.constantTensor()!.dataType).toBe(FLOAT);
  });

  it.each([
    ['value_float', float(1.5), Tensor.fromNumbers(FLOAT, [], [1.5])],
    ['value_floats', floats([1.5, -2, 0.25]), floatsTensor],
    ['value_int', int(-7), Tensor.fromInt64([], [-7])],
    ['value_ints', ints([3n, -(2n ** 63n), 2n ** 63n - 1n]), Tensor.fromInt64([3], [3n, -(2n ** 63n), 2n ** 63n - 1n])],
  ] as const)('reads a Constant node\'s %s attribute as the equivalent tensor', (name, attribute, expected) => {
    const b = new GraphBuilder('g');
    const [k] = b.node('Constant', [], { [name]: attribute });
    const t = k!.constantTensor();
    expect(t?.dataType).toBe(expected.dataType);
    expect(t?.dims).toEqual(expected.dims);
    expect(bytesOf(t)).toEqual([...expected.bytes()]);
    expect(k!.elemType).toBe(expected.dataType);
    expect(k!.shape).toEqual(expected.dims.map((value) => ({ value })));
  });

  it('reads a Constant node of the explicit "ai.onnx" domain too', () => {
    const b = new GraphBuilder('g');
    const [k] = b.node('Constant', [], { value_int: int(4) }, { domain: 'ai.onnx' });
    expect(k!.constantTensor()?.toBigInt64()).toEqual(BigInt64Array.from([4n]));
  });

  it('reads an initializer that is also a graph input as a constant, as IR < 4 files list every initializer as an input', () => {
    const b = new GraphBuilder('g');
    const w = b.initializer('w', floatsTensor);
    b.graph.inputs.push(w);
    expect(w.constantTensor()).toBe(w.initializer);
  });

  it('gives nothing for graph inputs, ordinary node outputs and Constants of other domains', () => {
    const b = new GraphBuilder('g');
    const x = b.input('x', FLOAT, [3]);
    const [r] = b.node('Relu', [x]);
    const [custom] = b.node('Constant', [], { value_int: int(1) }, { domain: 'com.example' });
    expect(x.constantTensor()).toBeUndefined();
    expect(r!.constantTensor()).toBeUndefined();
    expect(custom!.constantTensor()).toBeUndefined();
  });
});

describe('Graph.setConstant', () => {
  const next = Tensor.fromNumbers(FLOAT, [2, 2], [1, 2, 3, 4]);

  it('replaces an initializer\'s tensor under the value\'s name and updates its declared shape', () => {
    const b = new GraphBuilder('g');
    const w = b.initializer('w', Tensor.fromNumbers(FLOAT, [3], [0, 0, 0]));
    b.graph.setConstant(w, next);
    expect(w.initializer?.name).toBe('w');
    expect(bytesOf(w.constantTensor())).toEqual([...next.bytes()]);
    expect(w.shape).toEqual([{ value: 2 }, { value: 2 }]);
  });

  it.each([
    ['value', { type: 'tensor', value: Tensor.fromNumbers(FLOAT, [1], [9]) }],
    ['value_floats', floats([1, 2])],
    ['value_ints', ints([1, 2])],
    ['value_float', float(3)],
  ] as const)('rewrites a Constant node given by %s into a single "value" attribute', (name, attribute) => {
    const b = new GraphBuilder('g');
    const [k] = b.node('Constant', [], { [name]: attribute }, { name: 'k' });
    b.graph.setConstant(k!, next);
    const node = producerOf(k!);
    expect([...node.attributes.keys()]).toEqual(['value']);
    expect(bytesOf(k!.constantTensor())).toEqual([...next.bytes()]);
    expect(k!.constantTensor()!.dims).toEqual([2, 2]);
  });

  it('keeps the new contents through an encode and decode round trip', () => {
    const b = new GraphBuilder('g');
    const w = b.initializer('w', Tensor.fromNumbers(FLOAT, [2, 2], [0, 0, 0, 0]));
    const [k] = b.node('Constant', [], { value_floats: floats([0, 0, 0, 0]) });
    const [s] = b.node('Add', [w, k!]);
    b.output(s!, FLOAT, [2, 2]);
    b.graph.setConstant(w, next);
    b.graph.setConstant(k!, next);
    const decoded = decodeModel(encodeModel(b.build()).modelBytes);
    const add = decoded.graph.nodes.find((n) => n.opType === 'Add')!;
    for (const input of add.inputs) expect(bytesOf(input!.constantTensor())).toEqual([...next.bytes()]);
  });

  it('refuses a value that is not a constant', () => {
    const b = new GraphBuilder('g');
    const x = b.input('x', FLOAT, [3]);
    expect(() => b.graph.setConstant(x, next)).toThrow(/"x" is not a constant/);
  });
});

describe('Value identity', () => {
  it('gives a subgraph input that reuses an outer name its own Value, and resolves reads by scope', () => {
    // A Loop body whose third input is named "x", like the outer graph's input.
    const outer = new GraphBuilder('outer');
    const x = outer.input('x', FLOAT, [2]);
    const [t] = outer.node('Relu', [x], {}, { outputs: ['t'] });
    const trip = outer.initializer('trip', Tensor.fromInt64([], [2]));
    const body = new Graph('body', outer.graph);
    const declare = (name: string, elemType: number, shape: number[]): Value => {
      const v = body.createValueExact(name, { kind: 'tensor', elemType, shape: shape.map((value) => ({ value })) });
      body.inputs.push(v);
      return v;
    };
    declare('i', INT64, []);
    const cond = declare('cond', DataType.BOOL, []);
    const innerX = declare('x', FLOAT, [2]);
    const add = body.addNode({ opType: 'Add', inputs: [innerX, t!], outputs: ['x_next'] });
    const condOut = body.addNode({ opType: 'Identity', inputs: [cond], outputs: ['cond_out'] });
    body.outputs.push(condOut.outputs[0]!, add.outputs[0]!);
    const [final] = outer.node('Loop', [trip, null, x], { body: graph(body) }, { outputs: ['final'] });
    outer.output(final!, FLOAT, [2]);

    const decoded = decodeModel(encodeModel(outer.build()).modelBytes).graph;
    const outerX = decoded.inputs[0]!;
    const loop = decoded.nodes.find((n) => n.opType === 'Loop')!;
    const decodedBody = loop.subgraphs()[0]!;
    const bodyX = decodedBody.inputs[2]!;
    expect(bodyX.name).toBe(outerX.name);
    expect(bodyX).not.toBe(outerX);
    expect(bodyX.graph).toBe(decodedBody);
    const innerAdd = decodedBody.nodes.find((n) => n.opType === 'Add')!;
    expect(innerAdd.inputs[0]).toBe(bodyX);
    // The body's read of "t" reaches the outer value, and is recorded among its uses.
    const outerT = decoded.nodes.find((n) => n.opType === 'Relu')!.outputs[0]!;
    expect(innerAdd.inputs[1]).toBe(outerT);
    expect(outerT.uses().map((u) => u.node)).toEqual([innerAdd]);
    expect(outerX.uses().map((u) => u.node.opType).sort()).toEqual(['Loop', 'Relu']);
  });

  it('tells two values with the same name apart', () => {
    const g = new Graph('g');
    const first = g.createValueExact('same');
    const second = g.createValueExact('same');
    expect(first.name).toBe(second.name);
    expect(first).not.toBe(second);
    expect(first === second).toBe(false);
  });
});

describe('Graph.uniqueName', () => {
  it('never returns a name already used by a value or node anywhere in the model', () => {
    const b = new GraphBuilder('g');
    const x = b.input('x', FLOAT, [2]);
    b.node('Relu', [x], {}, { name: 'x_1', outputs: ['x_2'] });
    const sub = new GraphBuilder('sub', b);
    sub.node('Neg', [x], {}, { outputs: ['x_3'] });
    b.node('If', [x], { then_branch: graph(sub) });
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const name = b.graph.uniqueName('x');
      expect(['x', 'x_1', 'x_2', 'x_3']).not.toContain(name);
      expect(seen.has(name)).toBe(false);
      seen.add(name);
    }
    expect(sub.graph.uniqueName('x')).toBe('x_24');
  });

  it('keeps new values unique when graph inputs and initializers are given a taken name', () => {
    const b = new GraphBuilder('g');
    const x1 = b.input('w', FLOAT, [1]);
    const w = b.initializer('w', Tensor.fromNumbers(FLOAT, [1], [1]));
    const [n] = b.node('Neg', [x1], {}, { outputs: ['w'] });
    const k = b.constant('w', Tensor.fromNumbers(FLOAT, [1], [2]));
    const names = [x1.name, w.name, n!.name, k.name];
    expect(new Set(names).size).toBe(4);
    expect(w.initializer?.name).toBe(w.name);
  });

  it('counts names the codec created after the name table was first built, in subgraphs too', () => {
    const b = new GraphBuilder('g');
    b.input('x', FLOAT, [1]);
    expect(b.graph.uniqueName('y')).toBe('y');
    const sub = new Graph('sub', b.graph);
    sub.createValueExact('z');
    b.graph.createValueExact('q');
    expect(b.graph.uniqueName('z')).toBe('z_1');
    expect(b.graph.uniqueName('q')).toBe('q_1');
  });
});
