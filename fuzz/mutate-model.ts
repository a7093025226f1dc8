// Structured mutations of ONNX models for the loader fuzzer: each case takes a seed model (a
// fixture or a backend-corpus model) and breaks it in one way a hostile or broken exporter could:
// bytes (truncation, bit flips, varint lengths) or structure (dims, data types, raw_data sizes,
// missing and duplicate names, cycles, nested subgraphs, attributes, external data, opsets,
// non-finite weights). Deterministic: case i of a seed gives the same files on every machine.

import * as fs from 'node:fs';
import * as path from 'node:path';
import onnxProto from 'onnx-proto';
import { SeededRandom } from '../src/numeric/seeded-random.js';
import { BACKEND_CORPUS_ROOT, backendCorpusModels } from '../tests/helpers/backend-corpus.js';

const { onnx } = onnxProto;
type ModelProto = onnxProto.onnx.ModelProto;

/** One fuzz case: the model bytes and any files to write beside it (external data, folders). */
export interface FuzzCase {
  index: number;
  seedModel: string;
  mutation: string;
  modelBytes: Uint8Array;
  /** Relative path -> bytes (a file) or null (a folder), written beside the model. */
  beside: Record<string, Uint8Array | null>;
}

/** Seed models: the repository's fixtures, then (when installed) a spread of the backend corpus. */
export function seedModels(repoRoot: string, corpusRoot = BACKEND_CORPUS_ROOT, corpusCount = 120): string[] {
  const fixtures = fs.readdirSync(path.join(repoRoot, 'fixtures')).filter((f) => f.endsWith('.onnx')).sort().map((f) => path.join(repoRoot, 'fixtures', f));
  const corpus = backendCorpusModels(corpusRoot).filter((file) => fs.statSync(file).size < 2_000_000);
  // An even spread over the corpus, so every suite and opset era is represented.
  const step = Math.max(1, Math.floor(corpus.length / corpusCount));
  return [...fixtures, ...corpus.filter((_, i) => i % step === 0).slice(0, corpusCount)];
}

type Mutation = (m: ModelProto, r: SeededRandom, c: FuzzCase) => void;

const pick = <T>(r: SeededRandom, items: readonly T[]): T => items[Math.floor(r.next() * items.length)]!;
const int = (r: SeededRandom, n: number): number => Math.floor(r.next() * n);

function allGraphs(m: ModelProto): onnxProto.onnx.IGraphProto[] {
  const graphs: onnxProto.onnx.IGraphProto[] = [];
  const stack = m.graph ? [m.graph] : [];
  while (stack.length) {
    const g = stack.pop()!;
    graphs.push(g);
    for (const n of g.node ?? []) for (const a of n.attribute ?? []) {
      if (a.g) stack.push(a.g);
      for (const sub of a.graphs ?? []) stack.push(sub);
    }
  }
  return graphs;
}

function someInitializer(m: ModelProto, r: SeededRandom): onnxProto.onnx.ITensorProto | undefined {
  const all = allGraphs(m).flatMap((g) => g.initializer ?? []);
  const constants = allGraphs(m).flatMap((g) => (g.node ?? []).flatMap((n) => (n.attribute ?? []).filter((a) => a.t).map((a) => a.t!)));
  const pool = [...all, ...constants];
  return pool.length ? pick(r, pool) : undefined;
}

function someNode(m: ModelProto, r: SeededRandom): onnxProto.onnx.INodeProto | undefined {
  const nodes = allGraphs(m).flatMap((g) => g.node ?? []);
  return nodes.length ? pick(r, nodes) : undefined;
}

const DIMS = [-1, -(2 ** 31), 0, 1, 3, 2 ** 31, 2 ** 40, 2 ** 53, 2 ** 62];

/** Structured mutations, applied to the decoded ModelProto. */
const STRUCTURED: Record<string, Mutation> = {
  dims: (m, r) => {
    const t = someInitializer(m, r);
    if (!t) return;
    const dims = [...(t.dims ?? [])];
    if (dims.length === 0 || r.next() < 0.3) dims.push(pick(r, DIMS));
    else dims[int(r, dims.length)] = pick(r, DIMS);
    t.dims = dims;
  },
  'data-type': (m, r) => {
    const t = someInitializer(m, r);
    if (t) t.dataType = pick(r, [0, 2, 7, 8, 9, 10, 11, 14, 16, 17, 21, 22, 23, 24, 25, 99, -5]);
  },
  'raw-data-size': (m, r) => {
    const t = someInitializer(m, r);
    if (!t) return;
    const raw = t.rawData && t.rawData.length ? t.rawData : new Uint8Array(16);
    const length = pick(r, [0, 1, Math.max(0, raw.length - 1), raw.length + 1, raw.length * 2 + 3]);
    const out = new Uint8Array(length);
    out.set(raw.subarray(0, Math.min(length, raw.length)));
    t.rawData = out;
    t.floatData = [];
    t.int64Data = [];
  },
  'typed-field-size': (m, r) => {
    const t = someInitializer(m, r);
    if (!t) return;
    t.rawData = new Uint8Array(0);
    t.floatData = Array.from({ length: int(r, 5) }, () => r.gaussian());
    t.int64Data = [];
    t.int32Data = [];
  },
  'non-finite-weight': (m, r) => {
    const t = someInitializer(m, r);
    if (!t || t.dataType !== 1 || !t.rawData || t.rawData.length < 4) return;
    const raw = Uint8Array.from(t.rawData);
    new DataView(raw.buffer).setFloat32(4 * int(r, raw.length / 4), pick(r, [NaN, Infinity, -Infinity, 1e38, -3.4e38]), true);
    t.rawData = raw;
  },
  'missing-name': (m, r) => {
    const n = someNode(m, r);
    if (!n || !(n.input ?? []).length) return;
    const input = [...n.input!];
    input[int(r, input.length)] = pick(r, ['does_not_exist', ' ', 'x\n\u001b[31mred']);
    n.input = input;
  },
  'duplicate-name': (m, r) => {
    const nodes = allGraphs(m).flatMap((g) => g.node ?? []);
    if (nodes.length < 2) return;
    const a = pick(r, nodes);
    const b = pick(r, nodes);
    if (!(a.output ?? []).length || !(b.output ?? []).length) return;
    const outputs = [...b.output!];
    outputs[0] = a.output![0]!;
    b.output = outputs;
  },
  'duplicate-initializer': (m) => {
    const g = m.graph;
    if (g?.initializer?.length) g.initializer = [...g.initializer, g.initializer[0]!];
  },
  cycle: (m, r) => {
    const g = m.graph;
    const nodes = g?.node ?? [];
    if (!nodes.length) return;
    const k = int(r, nodes.length);
    const later = nodes[k + int(r, nodes.length - k)]!;
    const n = nodes[k]!;
    if (!(n.input ?? []).length || !(later.output ?? []).length) return;
    const input = [...n.input!];
    input[int(r, input.length)] = later.output![0]!;
    n.input = input;
  },
  'nested-subgraph': (m, r) => {
    if (!m.graph) return;
    const depth = pick(r, [1, 3, 20, 63, 64, 65, 200]);
    let inner: onnxProto.onnx.IGraphProto = m.graph;
    for (let i = 0; i < depth; i++) {
      const out = (inner.output ?? [])[0];
      if (!out) return;
      const leaf: onnxProto.onnx.IGraphProto = { name: `else${i}`, output: [out], node: [{ opType: 'Identity', input: [(inner.input ?? [])[0]?.name ?? 'x'], output: [out.name ?? ''] }] };
      inner = {
        name: `level${i}`,
        input: [...(m.graph.input ?? []), { name: `cond${i}`, type: { tensorType: { elemType: 9, shape: { dim: [] } } } }],
        output: [out],
        node: [{ opType: 'If', input: [`cond${i}`], output: [out.name ?? ''], attribute: [{ name: 'then_branch', type: 5, g: { ...inner, input: [] } }, { name: 'else_branch', type: 5, g: { ...leaf, input: [] } }] }],
        initializer: [],
      };
    }
    m.graph = onnx.GraphProto.create(inner);
  },
  'attribute-without-value': (m, r) => {
    const n = someNode(m, r);
    if (!n) return;
    const type = pick(r, [4, 5, 9, 10, 1, 2, 3]);
    n.attribute = [...(n.attribute ?? []), { name: pick(r, ['value', 'then_branch', 'body', 'perm', 'axis']), type: type as onnxProto.onnx.AttributeProto.AttributeType }];
  },
  'attribute-type': (m, r) => {
    const n = someNode(m, r);
    if (!n || !(n.attribute ?? []).length) return;
    const a = pick(r, n.attribute!);
    a.type = pick(r, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 99]) as onnxProto.onnx.AttributeProto.AttributeType;
  },
  'external-data': (m, r, c) => {
    const t = someInitializer(m, r);
    if (!t) return;
    const location = pick(r, ['weights.bin', 'folder', '../outside.bin', '/etc/hostname', 'missing.bin', '', 'a\u0000b']);
    if (location === 'weights.bin') c.beside['weights.bin'] = new Uint8Array(int(r, 64));
    if (location === 'folder') c.beside.folder = null;
    t.dataLocation = 1;
    t.externalData = [{ key: 'location', value: location }, { key: 'offset', value: pick(r, ['0', '8', '-1', '1e300', 'abc', String(2 ** 62)]) }, ...(r.next() < 0.5 ? [{ key: 'length', value: pick(r, ['4', '0', '999999999999', '-4']) }] : [])];
    t.rawData = new Uint8Array(0);
  },
  opset: (m, r) => {
    m.opsetImport = [{ domain: '', version: pick(r, [0, 1, 6, 7, 9, 11, 24, 99, -1, 2 ** 40]) }];
  },
  'ir-version': (m, r) => {
    m.irVersion = pick(r, [0, 1, 3, 11, 101, -1]);
  },
  'drop-io': (m, r) => {
    const g = m.graph;
    if (!g) return;
    if (r.next() < 0.5) g.output = (g.output ?? []).slice(1);
    else g.input = (g.input ?? []).slice(1);
  },
  'value-type': (m, r) => {
    const g = m.graph;
    const v = g && [...(g.input ?? []), ...(g.output ?? [])];
    if (!v?.length) return;
    const info = pick(r, v);
    info.type = pick(r, [{}, { tensorType: { elemType: pick(r, [0, 8, 99]) } }, { tensorType: { elemType: 1, shape: { dim: [{ dimValue: -3 }, { dimParam: '' }] } } }, { sequenceType: { elemType: { tensorType: { elemType: 1 } } } }]);
  },
  'names-with-controls': (m, r) => {
    const n = someNode(m, r);
    if (n) n.name = 'n\n\u001b[32mFAKE: all checks passed\u001b[0m\r\u202e';
    const v = m.graph?.output?.[0];
    if (v && r.next() < 0.5) v.docString = '\u0000\u0007';
  },
};

/** Byte-level mutations, applied to the encoded model. */
const BYTES: Record<string, (bytes: Uint8Array, r: SeededRandom) => Uint8Array> = {
  truncate: (b, r) => b.slice(0, int(r, b.length)),
  'bit-flip': (b, r) => {
    const out = Uint8Array.from(b);
    const flips = 1 + int(r, 8);
    for (let i = 0; i < flips; i++) out[int(r, out.length)]! ^= 1 << int(r, 8);
    return out;
  },
  'varint-length': (b, r) => {
    // A byte after a length-delimited tag (wire type 2) is a length: make it lie.
    const out = Uint8Array.from(b);
    const candidates: number[] = [];
    for (let i = 0; i + 1 < out.length && candidates.length < 4096; i++) if ((out[i]! & 7) === 2 && out[i]! < 0x80) candidates.push(i + 1);
    if (!candidates.length) return out;
    const at = pick(r, candidates);
    out[at] = pick(r, [0x00, 0x7f, 0xff, out[at]! + 1, Math.max(0, out[at]! - 1)]) & 0xff;
    return out;
  },
  'varint-overlong': (b, r) => {
    const at = int(r, b.length);
    return Uint8Array.from([...b.subarray(0, at), ...Array.from({ length: 11 }, () => 0xff), ...b.subarray(at)]);
  },
};

export const MUTATIONS = [...Object.keys(STRUCTURED), ...Object.keys(BYTES)];

/** Case `index` of the run seeded with `seed`, over `seeds` (paths of seed models). */
export function makeCase(seeds: readonly string[], seed: number, index: number): FuzzCase {
  const r = new SeededRandom(seed * 1_000_003 + index);
  // Every mutation in turn; the seed model hashed from the index, so a short run sees many seeds.
  const mutation = MUTATIONS[index % MUTATIONS.length]!;
  const seedModel = seeds[(Math.imul(index, 2654435761) >>> 0) % seeds.length]!;
  const original = fs.readFileSync(seedModel);
  const c: FuzzCase = { index, seedModel, mutation, modelBytes: original, beside: {} };
  if (BYTES[mutation]) {
    c.modelBytes = BYTES[mutation](original, r);
    return c;
  }
  const proto = onnx.ModelProto.decode(original);
  // Two mutations in one case, now and then: bugs hide where two problems meet.
  STRUCTURED[mutation]!(proto, r, c);
  if (r.next() < 0.15) STRUCTURED[pick(r, Object.keys(STRUCTURED))]!(proto, r, c);
  try {
    c.modelBytes = onnx.ModelProto.encode(proto).finish();
  } catch {
    c.modelBytes = BYTES.truncate!(original, r);
  }
  return c;
}

/** Writes the case into `folder` (model.onnx and what lies beside it); returns the model path. */
export function writeCase(c: FuzzCase, folder: string): string {
  fs.mkdirSync(folder, { recursive: true });
  for (const [name, bytes] of Object.entries(c.beside)) {
    const target = path.join(folder, name);
    if (bytes === null) fs.mkdirSync(target, { recursive: true });
    else fs.writeFileSync(target, bytes);
  }
  const file = path.join(folder, 'model.onnx');
  fs.writeFileSync(file, c.modelBytes);
  return file;
}

/** The commands each case runs: the loader and the data-free audit, and now and then random probes. */
export function commandsFor(c: FuzzCase, file: string): string[][] {
  // --quiet: progress lines would otherwise share stderr with the one-line error under test.
  const commands = [['inspect', file], ['audit', file, '--json', '--quiet']];
  if (c.index % 5 === 0) commands.push(['audit', file, '--random', '4', '--json', '--quiet']);
  return commands;
}
