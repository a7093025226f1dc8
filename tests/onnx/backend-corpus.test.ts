// The ONNX backend test suite (Debian's libonnx-testdata) as a corpus for the codec: every model
// that onnxruntime runs as shipped must run identically after decode -> encode, and match the
// outputs stored beside it within the ONNX backend tolerance.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataType, isFloatType } from '../../src/ir/data-type.js';
import type { Model } from '../../src/ir/model.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { decodeTensorFile } from '../../src/onnx/decode-model.js';
import { encodeModel } from '../../src/onnx/encode-model.js';
import { loadModel } from '../../src/onnx/model-file.js';
import type { HostTensor } from '../../src/runtime/host-tensor.js';
import { ModelSession } from '../../src/runtime/model-session.js';
import { hostToTensor, isHostType, tensorToHost } from './tensor-to-host.js';

// ONNX_TESTDATA points elsewhere (another install, or a missing folder to try the skip).
const ROOT = process.env.ONNX_TESTDATA ?? '/usr/share/libonnx-testdata/data';
const INSTALL_HINT = 'apt-get install libonnx-testdata';
// The ONNX backend test runner's tolerance (onnx/backend/test/runner: rtol 1e-3, atol 1e-7 by
// default, loosened per test); 1e-4 absolute covers the float16 and transcendental cases.
const RTOL = 1e-3;
const ATOL = 1e-4;

/** Suites and the fewest models each must check, a little under what onnxruntime 1.30 runs. */
const SUITES: { name: string; minimumChecked: number; maximumStoredMismatches: number }[] = [
  // node: 880 run; the 18 mismatches are random ops (Bernoulli, training Dropout), float-to-string
  // formatting, DFT rounding near zero, MaxUnpool with output_shape and align_corners Resize.
  { name: 'node', minimumChecked: 860, maximumStoredMismatches: 20 },
  // The rest: most of what onnxruntime skips here is opset 6, whose kernels it no longer has.
  { name: 'pytorch-converted', minimumChecked: 55, maximumStoredMismatches: 1 },
  { name: 'pytorch-operator', minimumChecked: 22, maximumStoredMismatches: 1 },
  { name: 'simple', minimumChecked: 15, maximumStoredMismatches: 1 },
];

interface DataSet {
  name: string;
  inputs: Tensor[];
  outputs: Tensor[];
}

interface SuiteResult {
  checked: number;
  dataSets: number;
  notLoadable: string[];
  nonTensor: string[];
  notRunnable: string[];
  /** Models where onnxruntime's outputs differ from the stored ones (compared to the original run only). */
  storedMismatches: string[];
  /** Models whose original gives other outputs in a second session (unseeded random ops). */
  nondeterministic: string[];
  failures: string[];
}

/** Files named `<prefix><n>.pb` in numeric order. */
function numbered(dir: string, prefix: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.pb'))
    .sort((a, b) => Number(a.slice(prefix.length, -3)) - Number(b.slice(prefix.length, -3)))
    .map((f) => path.join(dir, f));
}

function readDataSets(modelDir: string): DataSet[] {
  return fs
    .readdirSync(modelDir)
    .filter((d) => d.startsWith('test_data_set_'))
    .sort((a, b) => Number(a.slice(14)) - Number(b.slice(14)))
    .map((d) => {
      const dir = path.join(modelDir, d);
      const read = (file: string): Tensor => decodeTensorFile(fs.readFileSync(file), file);
      return { name: d, inputs: numbered(dir, 'input_').map(read), outputs: numbered(dir, 'output_').map(read) };
    });
}

/**
 * Why the model's graph inputs or outputs cannot travel as tensors through onnxruntime-node
 * (sequences, optionals, maps, bfloat16, ...), or undefined when they all can. The test data of
 * such inputs are SequenceProto / OptionalProto files, which are not TensorProtos.
 */
function nonTensorReason(model: Model): string | undefined {
  const initializers = new Set(model.graph.initializers);
  const values = [...model.graph.inputs.filter((v) => !initializers.has(v)), ...model.graph.outputs];
  for (const v of values) {
    if (v.type?.kind === 'other') return `"${v.name}" is not a tensor`;
    if (v.type?.kind === 'tensor' && !isHostType(v.type.elemType)) return `"${v.name}" has element type ${v.type.elemType}`;
  }
  return undefined;
}

function feedsFor(session: ModelSession, dataSet: DataSet): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  dataSet.inputs.forEach((t, i) => {
    const name = session.inputNames[i];
    if (name === undefined) throw new Error(`${dataSet.name} has input_${i}.pb but the model has ${session.inputNames.length} inputs`);
    feeds[name] = tensorToHost(t);
  });
  return feeds;
}

/** Where two runs of the same runtime differ (type, dims or any bit), or undefined when identical. */
function exactDifference(name: string, expected: HostTensor, actual: HostTensor | undefined): string | undefined {
  if (!actual) return `output "${name}" is missing`;
  if (actual.dataType !== expected.dataType) return `output "${name}" has type ${actual.dataType}, expected ${expected.dataType}`;
  if (actual.dims.join() !== expected.dims.join()) return `output "${name}" has dims [${actual.dims}], expected [${expected.dims}]`;
  const [a, e] = [hostToTensor(actual), hostToTensor(expected)];
  const same = actual.dataType === DataType.STRING
    ? a.strings().every((s, i) => Buffer.compare(s, e.strings()[i]!) === 0)
    : Buffer.compare(a.bytes(), e.bytes()) === 0;
  return same ? undefined : `output "${name}" differs from the original model's`;
}

/** Where onnxruntime's output is outside the backend tolerance of the stored one, or undefined. */
function storedDifference(name: string, stored: Tensor, actual: HostTensor): string | undefined {
  const got = hostToTensor(actual);
  if (got.dataType !== stored.dataType) return `output "${name}" has type ${got.dataType}, stored ${stored.dataType}`;
  if (got.dims.join() !== stored.dims.join()) return `output "${name}" has dims [${got.dims}], stored [${stored.dims}]`;
  if (stored.dataType === DataType.STRING) {
    const equal = got.strings().every((s, i) => Buffer.compare(s, stored.strings()[i]!) === 0);
    return equal ? undefined : `output "${name}" strings differ from the stored ones`;
  }
  if (!isFloatType(stored.dataType)) {
    return Buffer.compare(got.bytes(), stored.bytes()) === 0 ? undefined : `output "${name}" differs from the stored integers`;
  }
  const [g, s] = [got.toFloat64(), stored.toFloat64()];
  for (let i = 0; i < s.length; i++) {
    const [x, y] = [g[i]!, s[i]!];
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (x === y) continue;
    if (!(Math.abs(x - y) <= ATOL + RTOL * Math.abs(y))) return `output "${name}"[${i}] is ${x}, stored ${y}`;
  }
  return undefined;
}

/** True when a fresh session of the original model gives outputs other than `expected`. */
async function isNondeterministic(bytes: Uint8Array, file: string, dataSets: DataSet[], expected: Record<string, HostTensor>[]): Promise<boolean> {
  const again = await ModelSession.create(bytes, file, { threads: 1 });
  try {
    for (const [i, dataSet] of dataSets.entries()) {
      const outputs = await again.run(feedsFor(again, dataSet));
      if (Object.entries(expected[i]!).some(([name, t]) => exactDifference(name, t, outputs[name]) !== undefined)) return true;
    }
    return false;
  } finally {
    await again.release();
  }
}

async function tryCreate(bytes: Uint8Array, subject: string): Promise<ModelSession | undefined> {
  try {
    return await ModelSession.create(bytes, subject, { threads: 1 });
  } catch {
    return undefined;
  }
}

/** Checks one model; records it under one of the result's lists (or counts it as checked). */
async function checkModel(modelDir: string, result: SuiteResult): Promise<void> {
  const label = path.basename(modelDir);
  const file = path.join(modelDir, 'model.onnx');
  const bytes = fs.readFileSync(file);
  const original = await tryCreate(bytes, file);
  if (!original) {
    result.notLoadable.push(label);
    return;
  }
  let reencoded: ModelSession | undefined;
  try {
    let model: Model;
    try {
      model = loadModel(file);
    } catch (error) {
      result.failures.push(`${label}: decode failed: ${(error as Error).message}`);
      return;
    }
    const reason = nonTensorReason(model);
    if (reason) {
      result.nonTensor.push(`${label} (${reason})`);
      return;
    }
    let dataSets: DataSet[];
    try {
      dataSets = readDataSets(modelDir);
    } catch (error) {
      result.failures.push(`${label}: test data: ${(error as Error).message}`);
      return;
    }
    if (dataSets.length === 0) {
      result.failures.push(`${label}: has no test_data_set_* folder`);
      return;
    }
    // "Runs as shipped": the original model with its first data set.
    const expected: Record<string, HostTensor>[] = [];
    try {
      expected.push(await original.run(feedsFor(original, dataSets[0]!)));
    } catch {
      result.notRunnable.push(label);
      return;
    }
    for (const dataSet of dataSets.slice(1)) expected.push(await original.run(feedsFor(original, dataSet)));

    reencoded = await ModelSession.create(encodeModel(model).modelBytes, `${file} (re-encoded)`, { threads: 1 });
    const names = (session: ModelSession): string => `inputs [${session.inputNames}], outputs [${session.outputNames}]`;
    if (names(reencoded) !== names(original)) {
      result.failures.push(`${label}: re-encoded model has ${names(reencoded)}; the original has ${names(original)}`);
      return;
    }
    const problems: string[] = [];
    let storedMismatch: string | undefined;
    for (const [i, dataSet] of dataSets.entries()) {
      const actual = await reencoded.run(feedsFor(reencoded, dataSet));
      for (const [k, name] of reencoded.outputNames.entries()) {
        const problem = exactDifference(name, expected[i]![name]!, actual[name]);
        if (problem) problems.push(`${label}/${dataSet.name}: ${problem}`);
        const stored = dataSet.outputs[k];
        if (!problem && stored) storedMismatch ??= storedDifference(name, stored, actual[name]!);
      }
    }
    if (problems.length > 0) {
      // Blame the codec only when the original agrees with itself in a fresh session.
      if (await isNondeterministic(bytes, file, dataSets, expected)) {
        result.nondeterministic.push(label);
        return;
      }
      result.failures.push(...problems);
      return;
    }
    if (storedMismatch) result.storedMismatches.push(`${label} (${storedMismatch})`);
    result.checked++;
    result.dataSets += dataSets.length;
  } catch (error) {
    result.failures.push(`${label}: ${(error as Error).message}`);
  } finally {
    await original.release();
    await reencoded?.release();
  }
}

const available = fs.existsSync(ROOT);

describe('ONNX backend test corpus', () => {
  for (const suite of SUITES) {
    it(`runs every ${suite.name} model identically after decode and re-encode, within tolerance of the stored outputs`, async (ctx) => {
      if (!available) {
        if (process.env.CI) throw new Error(`${ROOT} is missing; ${INSTALL_HINT}`);
        ctx.skip(`${ROOT} is missing; ${INSTALL_HINT}`);
      }
      const result: SuiteResult = { checked: 0, dataSets: 0, notLoadable: [], nonTensor: [], notRunnable: [], storedMismatches: [], nondeterministic: [], failures: [] };
      const dir = path.join(ROOT, suite.name);
      const models = fs.readdirSync(dir).sort().map((d) => path.join(dir, d)).filter((d) => fs.existsSync(path.join(d, 'model.onnx')));
      for (const modelDir of models) await checkModel(modelDir, result);
      console.log(
        `${suite.name}: ${models.length} models, checked ${result.checked} (${result.dataSets} data sets); ` +
          `skipped ${result.notLoadable.length} not loadable by onnxruntime, ${result.nonTensor.length} with non-tensor inputs or outputs, ` +
          `${result.notRunnable.length} not runnable as shipped; ${result.storedMismatches.length} differ from the stored outputs ` +
          `(compared to the original run only); ${result.nondeterministic.length} nondeterministic; ${result.failures.length} failures`,
      );
      if (process.env.CORPUS_DETAILS) console.log(JSON.stringify({ ...result, checked: undefined }, null, 1));
      expect(result.failures).toEqual([]);
      // A model whose two runs differ is its own finding, not one of the stored-output mismatches.
      expect(result.nondeterministic).toEqual([]);
      expect(result.checked).toBeGreaterThanOrEqual(suite.minimumChecked);
      expect(result.storedMismatches.length).toBeLessThanOrEqual(suite.maximumStoredMismatches);
    }, 110_000);
  }
});
