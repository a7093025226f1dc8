// Probe data: the samples fed through the model to collect output statistics and to verify a
// rewrite. From .npy/.npz files or a seeded Gaussian; checked against the model's declared inputs.
// A probe set is lazy: files are read and random samples drawn a batch at a time, so memory is
// bounded by the batch, not by the number of samples.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileNotFoundError, joinProblems, OptionError, ProbeDataError } from '../errors.js';
import { DataType, dataTypeName, isFloatType } from '../ir/data-type.js';
import type { Model } from '../ir/model.js';
import type { Dim } from '../ir/value.js';
import { SeededRandom } from '../numeric/seeded-random.js';
import { hasHostArray, hostArrayFor, type HostData, type HostTensor } from './host-tensor.js';
import type { NpyArray } from './npy.js';
import { openNpyFile, openNpzFile, type NpyRows } from './npy-file.js';

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
  count: number;
  /** Samples per session run the model allows (its first dimension when that is fixed). */
  fixedBatch?: number;
  /** Samples [from, to) of every input, read or drawn on demand: the same samples whatever the ranges. */
  read(from: number, to: number): Record<string, HostTensor>;
  /**
   * Every sample of every input at once. Reads the whole set into memory (once, then kept): for
   * callers that index it directly; collection and verification read batches instead.
   */
  readonly inputs: Record<string, HostTensor>;
}

/** A probe set of `count` samples whose ranges come from `read`. */
export function lazyProbeSet(count: number, fixedBatch: number | undefined, read: (from: number, to: number) => Record<string, HostTensor>): ProbeSet {
  let whole: Record<string, HostTensor> | undefined;
  return {
    count,
    ...(fixedBatch !== undefined ? { fixedBatch } : {}),
    read(from: number, to: number): Record<string, HostTensor> {
      if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to <= count)) {
        throw new RangeError(`probe samples [${from}, ${to}) are outside [0, ${count})`);
      }
      return read(from, to);
    },
    get inputs(): Record<string, HostTensor> {
      whole ??= read(0, count);
      return whole;
    },
  };
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

/** Opens probe files and checks them against the model's inputs; rows are read batch by batch later. */
export function loadProbeFiles(model: Model, specs: string[]): ProbeSet {
  const inputs = modelInputs(model);
  const arrays = new Map<string, { array: NpyRows; subject: string }>();
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const named = eq > 0 && !fs.existsSync(spec);
    const name = named ? spec.slice(0, eq) : undefined;
    const file = named ? spec.slice(eq + 1) : spec;
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new FileNotFoundError(file);
    if (file.endsWith('.npz')) {
      const entries = openNpzFile(file);
      for (const [key, array] of entries) arrays.set(name && entries.size === 1 ? name : key, { array, subject: `${file}:${key}` });
    } else {
      const target = name ?? (inputs.length === 1 ? inputs[0]!.name : undefined);
      if (!target) throw new OptionError('--probe', `"${file}" does not say which input it feeds; the model has inputs ${inputs.map((i) => `"${i.name}"`).join(', ')}: expected name=${path.basename(file)}`);
      arrays.set(target, { array: openNpyFile(file), subject: file });
    }
  }
  const problems: ProbeProblem[] = [];
  for (const [name, { subject }] of arrays) {
    if (!inputs.some((i) => i.name === name)) problems.push({ subject, problem: `feeds "${name}", which is not a model input; expected one of ${inputs.map((i) => `"${i.name}"`).join(', ')}` });
  }
  const readers: { name: string; array: NpyRows; input: ModelInput; subject: string }[] = [];
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
    const unconvertible = conversionProblem(array.dtype, input);
    if (unconvertible) problems.push({ subject, problem: unconvertible });
    else readers.push({ name: input.name, array, input, subject });
  }
  throwProbeProblems(problems, '--probe');
  if (count === 0) throw new ProbeDataError(readers[0]?.subject ?? '--probe', 'has 0 samples; expected at least one');
  if (fixedBatch !== undefined && count! % fixedBatch !== 0) {
    throw new ProbeDataError('--probe', `the model takes batches of exactly ${fixedBatch} samples; ${count} samples is not a multiple`);
  }
  return lazyProbeSet(count ?? 0, fixedBatch, (from, to) => {
    const tensors: Record<string, HostTensor> = {};
    for (const { name, array, input, subject } of readers) {
      const rows = array.readRows(from, to);
      checkFiniteRows(rows, from, subject);
      tensors[name] = { dataType: input.elemType, dims: rows.shape.length ? [...rows.shape] : [1], data: convertArray(rows, input) as HostData };
    }
    return tensors;
  });
}

/** Probe values must be finite: a NaN or infinity would poison every statistic it reaches. */
function checkFiniteRows(rows: NpyArray, firstSample: number, subject: string): void {
  if (rows.dtype !== 'float32' && rows.dtype !== 'float64') return;
  const data = rows.data;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) {
      const perSample = rows.shape.length === 0 ? data.length : data.length / rows.shape[0]!;
      throw new ProbeDataError(subject, `sample ${firstSample + Math.floor(i / perSample)} holds ${data[i]} (element ${i % perSample}); expected finite numbers`);
    }
  }
}

/** What is wrong with feeding `dtype` arrays to the input (without the subject), or undefined. */
function conversionProblem(dtype: NpyArray['dtype'], input: ModelInput): string | undefined {
  const converted = convertArray({ dtype, shape: [0], data: emptyOf(dtype) } as NpyArray, input);
  return typeof converted === 'string' ? converted : undefined;
}

function emptyOf(dtype: NpyArray['dtype']): NpyArray['data'] {
  switch (dtype) {
    case 'float32': return new Float32Array(0);
    case 'float64': return new Float64Array(0);
    case 'int64': return new BigInt64Array(0);
    case 'int32': return new Int32Array(0);
    default: return new Uint8Array(0);
  }
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

/** One random sample may hold at most this many elements (256 Mi): more is a broken shape. */
const MAX_SAMPLE_ELEMENTS = 2 ** 28;

/**
 * `count` seeded Gaussian samples (small non-negative integers for integer inputs), drawn a batch
 * at a time. Sample i of each input is the same whatever ranges it is read in: each input takes its
 * own stretch of one seeded stream (inputs in model order, samples in order), and a range starts by
 * jumping straight to its place in the stream.
 */
export function randomProbes(model: Model, count: number, options: { seed?: number; shapes?: Record<string, number[]> } = {}): ProbeSet {
  if (!Number.isInteger(count) || count < 1) throw new OptionError('--random', `expected a positive whole number of samples, got "${count}"`);
  const seed = options.seed ?? 0;
  const streams: { input: ModelInput; sample: number[]; per: number; kind: 'gaussian' | 'bigint' | 'integer'; range: number; firstDraw: number }[] = [];
  let nextDraw = 0;
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
    if (!sample.every((d) => Number.isSafeInteger(d) && d >= 1) || per > MAX_SAMPLE_ELEMENTS) {
      problems.push({ subject: '--shape', problem: `input "${input.name}" has sample shape [${sample.join(', ')}]; expected dims >= 1 and at most ${MAX_SAMPLE_ELEMENTS} elements per sample` });
      continue;
    }
    if (!hasHostArray(input.elemType)) {
      problems.push({ subject: '--random', problem: `input "${input.name}" has element type ${dataTypeName(input.elemType)}, which random probes cannot draw; expected a numeric tensor input` });
      continue;
    }
    const probe = hostArrayFor(input.elemType, 0);
    let kind: 'gaussian' | 'bigint' | 'integer';
    if (isFloatType(input.elemType) && (probe instanceof Float32Array || probe instanceof Float64Array)) kind = 'gaussian';
    else if (probe instanceof BigInt64Array) kind = 'bigint';
    else if (input.elemType === DataType.BOOL || !(probe instanceof Array)) kind = 'integer';
    else {
      problems.push({ subject: '--random', problem: `input "${input.name}" has element type ${dataTypeName(input.elemType)}; random probes cannot make it, give --probe files` });
      continue;
    }
    streams.push({ input, sample, per, kind, range: input.elemType === DataType.BOOL ? 2 : 8, firstDraw: nextDraw });
    nextDraw += count * per * (kind === 'gaussian' ? 2 : 1);
  }
  throwProbeProblems(problems, '--random');
  if (fixedBatch !== undefined && count % fixedBatch !== 0) {
    throw new OptionError('--random', `the model takes batches of exactly ${fixedBatch} samples; ${count} is not a multiple`);
  }
  return lazyProbeSet(count, fixedBatch, (from, to) => {
    const inputs: Record<string, HostTensor> = {};
    for (const { input, sample, per, kind, range, firstDraw } of streams) {
      const data = hostArrayFor(input.elemType, (to - from) * per);
      if (kind === 'gaussian') {
        const rng = seededRandomAt(seed, firstDraw + 2 * from * per);
        const d = data as Float32Array | Float64Array;
        for (let i = 0; i < d.length; i++) d[i] = gaussianOfTwoDraws(rng);
      } else {
        const rng = seededRandomAt(seed, firstDraw + from * per);
        if (kind === 'bigint') {
          const d = data as BigInt64Array;
          for (let i = 0; i < d.length; i++) d[i] = BigInt(rng.integer(range));
        } else {
          const d = data as Uint8Array | Int32Array;
          for (let i = 0; i < d.length; i++) d[i] = rng.integer(range);
        }
      }
      inputs[input.name] = { dataType: input.elemType, dims: [to - from, ...sample], data };
    }
    return inputs;
  });
}

// SeededRandom (mulberry32) adds this to its state before every draw, so its state before draw d
// is the seed's state plus d times this step: a stream can be entered anywhere in O(1).
const MULBERRY_STEP = 0x6d2b79f5;

/** A generator whose next draw is draw number `draw` (from 0) of `new SeededRandom(seed)`. */
function seededRandomAt(seed: number, draw: number): SeededRandom {
  const start = seed >>> 0 || 0x9e3779b9;
  const state = (start + Math.imul(draw % 2 ** 32 | 0, MULBERRY_STEP)) >>> 0;
  if (state !== 0) return new SeededRandom(state);
  // SeededRandom treats a zero seed as "default": start one step earlier and take that step.
  const rng = new SeededRandom((state - MULBERRY_STEP) >>> 0);
  rng.next();
  return rng;
}

/**
 * SeededRandom.gaussian (Box–Muller), except that it always takes exactly two draws: where a
 * first draw of exactly 0 (a 2^-32 chance) would make gaussian() draw again, this uses 2^-33,
 * so every element keeps a fixed place in the stream.
 */
function gaussianOfTwoDraws(rng: SeededRandom): number {
  let u = rng.next();
  if (u === 0) u = 2 ** -33;
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** Samples [from, to) of a probe set (read lazily from the set it views). */
export function sliceProbes(set: ProbeSet, from: number, to: number): ProbeSet {
  if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to <= set.count)) {
    throw new RangeError(`probe samples [${from}, ${to}) are outside [0, ${set.count})`);
  }
  return lazyProbeSet(to - from, set.fixedBatch, (a, b) => set.read(from + a, from + b));
}

/** Feeds of at most `batchSize` samples (exactly the model's fixed batch when it has one), read one at a time. */
export function* probeBatches(set: ProbeSet, batchSize: number): Generator<Record<string, HostTensor>> {
  const size = set.fixedBatch ?? Math.max(1, batchSize);
  for (let from = 0; from < set.count; from += size) {
    yield set.read(from, Math.min(set.count, from + size));
  }
}
