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
import { imageReader, type ImageProbeOptions } from './image-probes.js';
import { dimsWithBatch, integerFill, looksLikeRecurrentState, moveSampleAxis, pinnedTensor, type InputFeedOptions, type IntegerFill } from './input-feeds.js';

export interface ProbeOptions {
  /** Probe files: "file.npy" (single-input models), "name=file.npy", or "file.npz" keyed by input name. */
  files?: string[];
  /** Number of seeded Gaussian samples to draw when no files are given. */
  random?: number;
  /** Full shapes for inputs with dynamic dimensions, e.g. { x: [1, 3, 32, 32] }. */
  shapes?: Record<string, number[]>;
  seed?: number;
  batchSize?: number;
  /** Inputs fed the same value every run (`--input sr=16000`). */
  pinned?: InputFeedOptions['pinned'];
  /** The axis holding the samples per input, when not the first (`--batch-axis state=1`). */
  batchAxes?: InputFeedOptions['batchAxes'];
  /** Image folder probes (`--images DIR`). */
  images?: ImageProbeOptions;
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
  /** How inputs that are not plain samples are fed (pinned, zero state, token ids), for reports. */
  notes?: string[];
  /** Random probes: the inputs drawn as Gaussian floats and those drawn as token ids (embedding rows). */
  drawn?: { gaussian: string[]; tokenIds: string[] };
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

/** Where each input's samples sit and what fills the inputs no file or draw feeds. */
interface FeedPlan {
  /** Inputs fed the same tensor every run (pinned values). */
  fixed: Map<string, HostTensor>;
  /** Inputs fed zeros with `n` samples on their batch axis (recurrent state). */
  zeros: Map<string, { input: ModelInput; sample: number[]; axis: number }>;
  notes: string[];
}

function batchAxisOf(input: ModelInput, options: InputFeedOptions, problems: ProbeProblem[]): number | undefined {
  const axis = options.batchAxes?.[input.name] ?? 0;
  const rank = input.dims?.length;
  if (rank !== undefined && (axis < 0 || axis >= Math.max(rank, 1))) {
    problems.push({ subject: '--batch-axis', problem: `input "${input.name}" has rank ${rank} ([${input.dims!.map(dimText).join(', ')}]), got axis ${axis}` });
    return undefined;
  }
  return axis;
}

/** Checks the names in pinned values and batch axes, and pins what is pinned. */
function planFeeds(model: Model, options: InputFeedOptions, problems: ProbeProblem[]): FeedPlan {
  const inputs = modelInputs(model);
  const plan: FeedPlan = { fixed: new Map(), zeros: new Map(), notes: [] };
  for (const [option, names] of [['--input', Object.keys(options.pinned ?? {})], ['--batch-axis', Object.keys(options.batchAxes ?? {})]] as const) {
    for (const name of names) {
      if (!inputs.some((i) => i.name === name)) problems.push({ subject: option, problem: `"${name}" is not a model input; expected one of ${inputs.map((i) => `"${i.name}"`).join(', ')}` });
    }
  }
  for (const input of inputs) {
    const pin = options.pinned?.[input.name];
    if (!pin) continue;
    try {
      plan.fixed.set(input.name, pinnedTensor(input.name, input.elemType, input.dims, pin));
      plan.notes.push(`input "${input.name}" is pinned to ${pin.dims.length ? `a [${pin.dims.join(', ')}] tensor` : pin.values[0]} in every run (--input)`);
    } catch (e) {
      if (e instanceof OptionError) problems.push({ subject: '--input', problem: e.message.replace(/^--input: /, '') });
      else throw e;
    }
  }
  return plan;
}

/** Adds a zero-filled recurrent-state input to the plan when its shape is known; true when it did. */
function planZeroState(plan: FeedPlan, input: ModelInput, axis: number, shapes: Record<string, number[]> | undefined, problems: ProbeProblem[]): boolean {
  const full = shapes?.[input.name];
  const dims = input.dims;
  const sampleDims = full ? full.filter((_, i) => i !== axis) : dims?.filter((_, i) => i !== axis).map((d) => d.value);
  if (!sampleDims || sampleDims.some((d) => d === undefined)) {
    problems.push({ subject: '--batch-axis', problem: `input "${input.name}" looks like recurrent state (fed zeros) but its shape [${dims?.map(dimText).join(', ') ?? '?'}] has a dynamic dimension besides the batch axis ${axis}; name the batch axis with --batch-axis ${input.name}=K or give --shape` });
    return false;
  }
  plan.zeros.set(input.name, { input, sample: sampleDims as number[], axis });
  plan.notes.push(`input "${input.name}" reads like recurrent state and is fed zeros (batch on axis ${axis}); give it data with --probe ${input.name}=file.npy or pin it with --input`);
  return true;
}

/** The plan's fixed and zero tensors for `n` samples, after the data inputs. */
function addPlanned(tensors: Record<string, HostTensor>, plan: FeedPlan, n: number): Record<string, HostTensor> {
  for (const [name, { input, sample, axis }] of plan.zeros) {
    const dims = dimsWithBatch(sample, n, axis);
    tensors[name] = { dataType: input.elemType, dims, data: hostArrayFor(input.elemType, dims.reduce((a, b) => a * b, 1)) };
  }
  for (const [name, t] of plan.fixed) tensors[name] = t;
  return tensors;
}

/**
 * Opens probe files and checks them against the model's inputs; rows are read batch by batch
 * later. Files hold samples along their first axis; an input with another batch axis
 * (`batchAxes`) gets them moved there. Pinned inputs need no file; recurrent-state inputs without
 * one are fed zeros.
 */
export function loadProbeFiles(model: Model, specs: string[], feedOptions: InputFeedOptions & { shapes?: Record<string, number[]> } = {}): ProbeSet {
  const inputs = modelInputs(model);
  const arrays = new Map<string, { array: NpyRows; subject: string }>();
  const dataInputs = inputs.filter((i) => !feedOptions.pinned?.[i.name]);
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
      const target = name ?? (dataInputs.length === 1 ? dataInputs[0]!.name : undefined);
      if (!target) throw new OptionError('--probe', `"${file}" does not say which input it feeds; the model has inputs ${inputs.map((i) => `"${i.name}"`).join(', ')}: expected name=${path.basename(file)}`);
      arrays.set(target, { array: openNpyFile(file), subject: file });
    }
  }
  const problems: ProbeProblem[] = [];
  const plan = planFeeds(model, feedOptions, problems);
  for (const [name, { subject }] of arrays) {
    if (!inputs.some((i) => i.name === name)) problems.push({ subject, problem: `feeds "${name}", which is not a model input; expected one of ${inputs.map((i) => `"${i.name}"`).join(', ')}` });
    else if (plan.fixed.has(name)) problems.push({ subject, problem: `feeds "${name}", which --input pins; give one or the other` });
  }
  const readers: { name: string; array: NpyRows; input: ModelInput; subject: string; axis: number }[] = [];
  let count: number | undefined;
  let fixedBatch: number | undefined;
  for (const input of inputs) {
    if (plan.fixed.has(input.name)) continue;
    const axis = batchAxisOf(input, feedOptions, problems);
    if (axis === undefined) continue;
    const entry = arrays.get(input.name);
    if (!entry) {
      if (looksLikeRecurrentState(input.name, input.elemType)) {
        if (planZeroState(plan, input, axis, feedOptions.shapes, problems) && input.dims?.[axis]?.value !== undefined) fixedBatch = input.dims[axis].value;
        continue;
      }
      problems.push({ subject: '--probe', problem: input.dims?.length === 0
        ? `model input "${input.name}" is a scalar; pin it with --input ${input.name}=VALUE`
        : `model input "${input.name}" has no probe data; expected --probe ${input.name}=file.npy (or --input ${input.name}=VALUE to pin it)` });
      continue;
    }
    const { array, subject } = entry;
    const shape = array.shape;
    const dims = input.dims;
    if (dims) {
      // The file holds samples first; the model wants them on `axis`.
      const asFed = shape.length ? dimsWithBatch(shape.slice(1), shape[0]!, Math.min(axis, shape.length - 1)) : shape;
      const expected = `[${dims.map(dimText).join(', ')}]`;
      const axisNote = axis ? ` (the file holds samples first; they go to axis ${axis})` : '';
      if (asFed.length !== dims.length || dims.some((d, i) => i !== axis && d.value !== undefined && d.value !== asFed[i])) {
        problems.push({ subject, problem: `input "${input.name}" expects shape ${expected}, got [${shape.join(', ')}]${axisNote}` });
        continue;
      }
      if (dims[axis]?.value !== undefined) fixedBatch = dims[axis].value;
    }
    const n = shape[0] ?? 1;
    if (count !== undefined && n !== count) problems.push({ subject, problem: `has ${n} samples, other probe inputs have ${count}` });
    count = n;
    const unconvertible = conversionProblem(array.dtype, input);
    if (unconvertible) problems.push({ subject, problem: unconvertible });
    else readers.push({ name: input.name, array, input, subject, axis });
  }
  throwProbeProblems(problems, '--probe');
  if (count === 0) throw new ProbeDataError(readers[0]?.subject ?? '--probe', 'has 0 samples; expected at least one');
  if (fixedBatch !== undefined && count! % fixedBatch !== 0) {
    throw new ProbeDataError('--probe', `the model takes batches of exactly ${fixedBatch} samples; ${count} samples is not a multiple`);
  }
  const set = lazyProbeSet(count ?? 0, fixedBatch, (from, to) => {
    const tensors: Record<string, HostTensor> = {};
    for (const { name, array, input, subject, axis } of readers) {
      const rows = array.readRows(from, to);
      checkFiniteRows(rows, from, subject);
      const converted = convertArray(rows, input) as HostData;
      const sample = rows.shape.slice(1);
      tensors[name] = axis === 0 || Array.isArray(converted)
        ? { dataType: input.elemType, dims: rows.shape.length ? [...rows.shape] : [1], data: converted }
        : { dataType: input.elemType, dims: dimsWithBatch(sample, to - from, axis), data: moveSampleAxis(converted, to - from, sample, axis) };
    }
    return addPlanned(tensors, plan, to - from);
  });
  return Object.assign(set, { notes: plan.notes });
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
 * `count` seeded samples, drawn a batch at a time: Gaussian for float inputs; for integer inputs
 * token ids below the embedding table they index, masks of ones, type ids of zeros, position ids
 * (see integerFill); recurrent-state inputs zeros; pinned inputs their value. Sample i of each
 * input is the same whatever ranges it is read in: each drawn input takes its own stretch of one
 * seeded stream (inputs in model order, samples in order), and a range starts by jumping straight
 * to its place in the stream.
 */
export function randomProbes(model: Model, count: number, options: { seed?: number; shapes?: Record<string, number[]> } & InputFeedOptions = {}): ProbeSet {
  if (!Number.isInteger(count) || count < 1) throw new OptionError('--random', `expected a positive whole number of samples, got "${count}"`);
  const seed = options.seed ?? 0;
  type Kind = 'gaussian' | 'bigint' | 'integer';
  const streams: { input: ModelInput; sample: number[]; per: number; kind: Kind; fill: IntegerFill | undefined; axis: number; firstDraw: number }[] = [];
  let nextDraw = 0;
  let fixedBatch: number | undefined;
  const problems: ProbeProblem[] = [];
  const plan = planFeeds(model, options, problems);
  for (const name of Object.keys(options.shapes ?? {})) {
    if (!modelInputs(model).some((i) => i.name === name)) problems.push({ subject: '--shape', problem: `"${name}" is not a model input` });
  }
  for (const input of modelInputs(model)) {
    if (plan.fixed.has(input.name)) continue;
    const given = options.shapes?.[input.name];
    const dims = input.dims;
    if (dims && dims.length === 0) {
      problems.push({ subject: '--random', problem: `input "${input.name}" is a scalar (no batch axis); pin it with --input ${input.name}=VALUE` });
      continue;
    }
    const axis = batchAxisOf(input, options, problems);
    if (axis === undefined) continue;
    if (!given && looksLikeRecurrentState(input.name, input.elemType)) {
      if (planZeroState(plan, input, axis, undefined, problems) && dims?.[axis]?.value !== undefined) fixedBatch = dims[axis].value;
      continue;
    }
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
      const clash = dims?.findIndex((d, i) => i !== axis && d.value !== undefined && d.value !== given[i]) ?? -1;
      if (clash >= 0) {
        problems.push({ subject: '--shape', problem: `input "${input.name}" has dimension ${clash} fixed at ${dims![clash]!.value}, got ${given[clash]}` });
        continue;
      }
      sample = given.filter((_, i) => i !== axis);
    } else {
      const unknown = dims!.findIndex((d, i) => i !== axis && d.value === undefined);
      if (unknown >= 0) {
        problems.push({ subject: '--shape', problem: `input "${input.name}" has dynamic dimension ${unknown} ("${dimText(dims![unknown])}"); give a full shape with --shape ${input.name}=${dims!.map((d) => d.value ?? 'N').join('x')}${axis === 0 && unknown > 0 ? ` (or, if that axis holds the samples, --batch-axis ${input.name}=${unknown})` : ''}` });
        continue;
      }
      sample = dims!.filter((_, i) => i !== axis).map((d) => d.value!);
    }
    if (dims?.[axis]?.value !== undefined) fixedBatch = dims[axis].value;
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
    let kind: Kind;
    let fill: IntegerFill | undefined;
    if (isFloatType(input.elemType) && (probe instanceof Float32Array || probe instanceof Float64Array)) kind = 'gaussian';
    else if (probe instanceof BigInt64Array) kind = 'bigint';
    else if (input.elemType === DataType.BOOL || !(probe instanceof Array)) kind = 'integer';
    else {
      problems.push({ subject: '--random', problem: `input "${input.name}" has element type ${dataTypeName(input.elemType)}; random probes cannot make it, give --probe files` });
      continue;
    }
    if (kind !== 'gaussian') {
      fill = integerFill(model, input.name, input.elemType);
      plan.notes.push(`input "${input.name}": ${fill.why}`);
    }
    streams.push({ input, sample, per, kind, fill, axis, firstDraw: nextDraw });
    nextDraw += count * per * (kind === 'gaussian' ? 2 : 1);
  }
  throwProbeProblems(problems, '--random');
  if (fixedBatch !== undefined && count % fixedBatch !== 0) {
    throw new OptionError('--random', `the model takes batches of exactly ${fixedBatch} samples; ${count} is not a multiple`);
  }
  const set = lazyProbeSet(count, fixedBatch, (from, to) => {
    const inputs: Record<string, HostTensor> = {};
    const n = to - from;
    for (const { input, sample, per, kind, fill, axis, firstDraw } of streams) {
      const data = hostArrayFor(input.elemType, n * per) as Exclude<HostData, string[]>;
      if (kind === 'gaussian') {
        const rng = seededRandomAt(seed, firstDraw + 2 * from * per);
        const d = data as Float32Array | Float64Array;
        for (let i = 0; i < d.length; i++) d[i] = gaussianOfTwoDraws(rng);
      } else {
        const rng = seededRandomAt(seed, firstDraw + from * per);
        const last = sample[sample.length - 1] ?? 1;
        const value = (i: number): number => {
          switch (fill!.kind) {
            case 'ones': return 1;
            case 'zeros': return 0;
            case 'positions': return i % last;
            case 'ids': return rng.integer(fill!.below);
          }
        };
        if (kind === 'bigint') {
          const d = data as BigInt64Array;
          for (let i = 0; i < d.length; i++) d[i] = BigInt(value(i));
        } else {
          const d = data as Uint8Array | Int32Array;
          for (let i = 0; i < d.length; i++) d[i] = value(i);
        }
      }
      inputs[input.name] = { dataType: input.elemType, dims: dimsWithBatch(sample, n, axis), data: moveSampleAxis(data, n, sample, axis) };
    }
    return addPlanned(inputs, plan, n);
  });
  const drawn = { gaussian: streams.filter((st) => st.kind === 'gaussian').map((st) => st.input.name), tokenIds: streams.filter((st) => st.fill?.kind === 'ids').map((st) => st.input.name) };
  return Object.assign(set, { notes: plan.notes, drawn });
}

/**
 * Probes from a folder of images for the model's one image input (rank 4, float); other inputs
 * must be pinned or recurrent state. See image-probes.ts for decoding, crop and normalisation.
 */
export function imageProbes(model: Model, options: ImageProbeOptions, feedOptions: InputFeedOptions & { shapes?: Record<string, number[]> } = {}): ProbeSet {
  const problems: ProbeProblem[] = [];
  const plan = planFeeds(model, feedOptions, problems);
  const candidates: ModelInput[] = [];
  for (const input of modelInputs(model)) {
    if (plan.fixed.has(input.name)) continue;
    if (looksLikeRecurrentState(input.name, input.elemType)) {
      const axis = batchAxisOf(input, feedOptions, problems);
      if (axis !== undefined) planZeroState(plan, input, axis, feedOptions.shapes, problems);
    } else candidates.push(input);
  }
  if (candidates.length !== 1) {
    problems.push({ subject: '--images', problem: candidates.length === 0
      ? 'the model has no input left for images (all are pinned or state)'
      : `the model has ${candidates.length} inputs to feed (${candidates.map((c) => `"${c.name}"`).join(', ')}); images feed one, pin the others with --input name=VALUE` });
  }
  throwProbeProblems(problems, '--images');
  const input = candidates[0]!;
  const declared = feedOptions.shapes?.[input.name] ?? input.dims?.map((d) => d.value);
  if (!declared) throw new OptionError('--shape', `input "${input.name}" declares no shape; give it as --shape ${input.name}=1x3x224x224`);
  const reader = imageReader(input.name, input.elemType, declared, options);
  const fixedBatch = input.dims?.[0]?.value;
  if (fixedBatch !== undefined && reader.count % fixedBatch !== 0) {
    throw new OptionError('--images', `the model takes batches of exactly ${fixedBatch} samples; ${reader.count} images is not a multiple (choose a multiple with --count)`);
  }
  const set = lazyProbeSet(reader.count, fixedBatch, (from, to) => addPlanned({ [input.name]: reader.read(from, to) }, plan, to - from));
  return Object.assign(set, { notes: plan.notes, describe: reader.describe });
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
