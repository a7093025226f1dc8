// Probe data: the samples fed through the model to collect output statistics and to verify a
// rewrite. From .npy/.npz files or a seeded Gaussian; checked against the model's declared inputs.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileNotFoundError, joinProblems, OptionError, ProbeDataError } from '../errors.js';
import { DataType, dataTypeName, isFloatType } from '../ir/data-type.js';
import type { Model } from '../ir/model.js';
import type { Dim } from '../ir/value.js';
import { SeededRandom } from '../numeric/seeded-random.js';
import { hostArrayFor, sliceRows, type HostData, type HostTensor } from './host-tensor.js';
import { decodeNpy, decodeNpz, type NpyArray } from './npy.js';

export interface ProbeOptions {
  /** Probe files: "file.npy" (single-input models), "name=file.npy", or "file.npz" keyed by input name. */
  files?: string[];
  /** Number of seeded Gaussian samples to draw when no files are given. */
  random?: number;
  /** Full shapes for inputs with dynamic dimensions, e.g. { x: [1, 3, 32, 32] }. */
  shapes?: Record<string, number[]>;
  seed?: number;
  batchSize?: number;
}

/** A model input the probes must feed. */
export interface ModelInput {
  name: string;
  elemType: number;
  dims: Dim[] | undefined;
}

/** Probe samples: each input's tensor has the samples along its first axis. */
export interface ProbeSet {
  inputs: Record<string, HostTensor>;
  count: number;
  /** Samples per session run the model allows (its first dimension when that is fixed). */
  fixedBatch?: number;
}

/** The graph inputs a caller must feed (initializer-backed inputs have defaults and are skipped). */
export function modelInputs(model: Model): ModelInput[] {
  return model.graph.inputs
    .filter((v) => !v.initializer)
    .map((v) => ({ name: v.name, elemType: v.type?.kind === 'tensor' ? v.type.elemType : DataType.UNDEFINED, dims: v.type?.kind === 'tensor' ? v.type.shape : undefined }));
}

/** One thing wrong with the probes: what it is about (a file, an option) and what is wrong. */
interface ProbeProblem {
  subject: string;
  problem: string;
}

/** Throws all problems at once; one problem keeps its own subject, several go under `subject`. */
function throwProbeProblems(problems: ProbeProblem[], subject: string): void {
  if (problems.length === 0) return;
  if (problems.length === 1) throw new ProbeDataError(problems[0]!.subject, problems[0]!.problem);
  throw new ProbeDataError(subject, joinProblems(problems.map((p) => (p.subject === subject ? p.problem : `${p.subject}: ${p.problem}`))));
}

function dimText(d: Dim | undefined): string {
  return d?.value !== undefined ? String(d.value) : d?.param || '?';
}

/** Reads probe files and checks them against the model's inputs. */
export function loadProbeFiles(model: Model, specs: string[]): ProbeSet {
  const inputs = modelInputs(model);
  const arrays = new Map<string, { array: NpyArray; subject: string }>();
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const named = eq > 0 && !fs.existsSync(spec);
    const name = named ? spec.slice(0, eq) : undefined;
    const file = named ? spec.slice(eq + 1) : spec;
    let bytes: Uint8Array;
    try {
      bytes = fs.readFileSync(file);
    } catch (cause) {
      throw new FileNotFoundError(file, { cause });
    }
    if (file.endsWith('.npz')) {
      for (const [key, array] of decodeNpz(bytes, file)) arrays.set(name && decodeNpzKeyCount(bytes) === 1 ? name : key, { array, subject: `${file}:${key}` });
    } else {
      const target = name ?? (inputs.length === 1 ? inputs[0]!.name : undefined);
      if (!target) throw new OptionError('--probe', `"${file}" does not say which input it feeds; the model has inputs ${inputs.map((i) => `"${i.name}"`).join(', ')}: expected name=${path.basename(file)}`);
      arrays.set(target, { array: decodeNpy(bytes, file), subject: file });
    }
  }
  const problems: ProbeProblem[] = [];
  for (const [name, { subject }] of arrays) {
    if (!inputs.some((i) => i.name === name)) problems.push({ subject, problem: `feeds "${name}", which is not a model input; expected one of ${inputs.map((i) => `"${i.name}"`).join(', ')}` });
  }
  const tensors: Record<string, HostTensor> = {};
  let count: number | undefined;
  let fixedBatch: number | undefined;
  for (const input of inputs) {
    const entry = arrays.get(input.name);
    if (!entry) {
      problems.push({ subject: '--probe', problem: `model input "${input.name}" has no probe data; expected --probe ${input.name}=file.npy` });
      continue;
    }
    const { array, subject } = entry;
    const shape = array.shape;
    const dims = input.dims;
    if (dims) {
      const expected = `[${dims.map(dimText).join(', ')}]`;
      if (shape.length !== dims.length) {
        problems.push({ subject, problem: `input "${input.name}" expects shape ${expected}, got [${shape.join(', ')}]` });
        continue;
      }
      const bad = dims.findIndex((d, i) => i > 0 && d.value !== undefined && d.value !== shape[i]);
      if (bad >= 0) {
        problems.push({ subject, problem: `input "${input.name}" expects shape ${expected}, got [${shape.join(', ')}]` });
        continue;
      }
      if (dims[0]?.value !== undefined) fixedBatch = dims[0].value;
    }
    const n = shape[0] ?? 1;
    if (count !== undefined && n !== count) problems.push({ subject, problem: `has ${n} samples, other probe inputs have ${count}` });
    count = n;
    const converted = convertArray(array, input);
    if (typeof converted === 'string') problems.push({ subject, problem: converted });
    else tensors[input.name] = { dataType: input.elemType, dims: shape.length ? [...shape] : [1], data: converted };
  }
  throwProbeProblems(problems, '--probe');
  if (fixedBatch !== undefined && count! % fixedBatch !== 0) {
    throw new ProbeDataError('--probe', `the model takes batches of exactly ${fixedBatch} samples; ${count} samples is not a multiple`);
  }
  return { inputs: tensors, count: count ?? 0, ...(fixedBatch !== undefined ? { fixedBatch } : {}) };
}

function decodeNpzKeyCount(bytes: Uint8Array): number {
  return decodeNpz(bytes, 'npz').size;
}

/** The array as the input's element type, or what is wrong (without the subject). */
function convertArray(array: NpyArray, input: ModelInput): HostData | string {
  const want = input.elemType;
  const given = array.dtype;
  if (want === DataType.FLOAT) {
    if (given === 'float32') return array.data;
    if (given === 'float64') return Float32Array.from(array.data);
  } else if (want === DataType.DOUBLE) {
    if (given === 'float64') return array.data;
    if (given === 'float32') return Float64Array.from(array.data);
  } else if (want === DataType.INT64) {
    if (given === 'int64') return array.data;
    if (given === 'int32' || given === 'uint8') return BigInt64Array.from(array.data as Int32Array, (x) => BigInt(x));
  } else if (want === DataType.INT32) {
    if (given === 'int32') return array.data;
    if (given === 'int64') return Int32Array.from(array.data as BigInt64Array, (x) => Number(x));
  } else if (want === DataType.BOOL || want === DataType.UINT8) {
    if (given === 'bool' || given === 'uint8') return array.data;
  }
  return `input "${input.name}" expects ${dataTypeName(want)} data, got ${given}`;
}

/** Draws `count` seeded Gaussian samples (small non-negative integers for integer inputs). */
export function randomProbes(model: Model, count: number, options: { seed?: number; shapes?: Record<string, number[]> } = {}): ProbeSet {
  if (!Number.isInteger(count) || count < 1) throw new OptionError('--random', `expected a positive whole number of samples, got "${count}"`);
  const rng = new SeededRandom(options.seed ?? 0);
  const inputs: Record<string, HostTensor> = {};
  let fixedBatch: number | undefined;
  const problems: ProbeProblem[] = [];
  for (const name of Object.keys(options.shapes ?? {})) {
    if (!modelInputs(model).some((i) => i.name === name)) problems.push({ subject: '--shape', problem: `"${name}" is not a model input` });
  }
  for (const input of modelInputs(model)) {
    const given = options.shapes?.[input.name];
    const dims = input.dims;
    if (!dims && !given) {
      problems.push({ subject: '--shape', problem: `input "${input.name}" declares no shape; give it as --shape ${input.name}=1x...` });
      continue;
    }
    let sample: number[];
    if (given) {
      if (dims && given.length !== dims.length) {
        problems.push({ subject: '--shape', problem: `input "${input.name}" has rank ${dims.length} ([${dims.map(dimText).join(', ')}]), got ${given.join('x')}` });
        continue;
      }
      const clash = dims?.findIndex((d, i) => i > 0 && d.value !== undefined && d.value !== given[i]) ?? -1;
      if (clash >= 0) {
        problems.push({ subject: '--shape', problem: `input "${input.name}" has dimension ${clash} fixed at ${dims![clash]!.value}, got ${given[clash]}` });
        continue;
      }
      sample = given.slice(1);
    } else {
      const unknown = dims!.findIndex((d, i) => i > 0 && d.value === undefined);
      if (unknown >= 0) {
        problems.push({ subject: '--shape', problem: `input "${input.name}" has dynamic dimension ${unknown} ("${dimText(dims![unknown])}"); give a full shape with --shape ${input.name}=${dims!.map((d) => d.value ?? 'N').join('x')}` });
        continue;
      }
      sample = dims!.slice(1).map((d) => d.value!);
    }
    if (dims?.[0]?.value !== undefined) fixedBatch = dims[0].value;
    if (dims && dims.length === 0) {
      problems.push({ subject: '--random', problem: `input "${input.name}" is a scalar; probes need a batch axis` });
      continue;
    }
    const per = sample.reduce((a, b) => a * b, 1);
    const data = hostArrayFor(input.elemType, count * per);
    if (isFloatType(input.elemType) && (data instanceof Float32Array || data instanceof Float64Array)) {
      for (let i = 0; i < data.length; i++) data[i] = rng.gaussian();
    } else if (data instanceof BigInt64Array) {
      for (let i = 0; i < data.length; i++) data[i] = BigInt(rng.integer(8));
    } else if (input.elemType === DataType.BOOL || !(data instanceof Array)) {
      const d = data as Uint8Array | Int32Array;
      const range = input.elemType === DataType.BOOL ? 2 : 8;
      for (let i = 0; i < d.length; i++) d[i] = rng.integer(range);
    } else {
      problems.push({ subject: '--random', problem: `input "${input.name}" has element type ${dataTypeName(input.elemType)}; random probes cannot make it, give --probe files` });
      continue;
    }
    inputs[input.name] = { dataType: input.elemType, dims: [count, ...sample], data };
  }
  throwProbeProblems(problems, '--random');
  if (fixedBatch !== undefined && count % fixedBatch !== 0) {
    throw new OptionError('--random', `the model takes batches of exactly ${fixedBatch} samples; ${count} is not a multiple`);
  }
  return { inputs, count, ...(fixedBatch !== undefined ? { fixedBatch } : {}) };
}

/** Samples [from, to) of a probe set. */
export function sliceProbes(set: ProbeSet, from: number, to: number): ProbeSet {
  const inputs: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(set.inputs)) inputs[name] = sliceRows(t, from, to);
  return { inputs, count: to - from, ...(set.fixedBatch !== undefined ? { fixedBatch: set.fixedBatch } : {}) };
}

/** Feeds of at most `batchSize` samples (exactly the model's fixed batch when it has one). */
export function* probeBatches(set: ProbeSet, batchSize: number): Generator<Record<string, HostTensor>> {
  const size = set.fixedBatch ?? Math.max(1, batchSize);
  for (let from = 0; from < set.count; from += size) {
    yield sliceProbes(set, from, Math.min(set.count, from + size)).inputs;
  }
}
