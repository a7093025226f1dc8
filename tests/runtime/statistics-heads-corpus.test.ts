// Statistics heads are written in the model's own opset: on every model of the ONNX backend test
// suite whose inputs are float tensors and which onnxruntime runs, heads on its float outputs
// (neurons last, and channels first with a position stride where the rank allows) must run and
// give the mean that the plain outputs give. Opset 7 to the newest are all in the corpus, so this
// is what `condense audit --random` does on models of every opset, not only a codec round trip.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataType, isFloatType } from '../../src/ir/data-type.js';
import { CondenseError } from '../../src/errors.js';
import { decodeTensorFile, encodeModel, loadModel } from '../../src/index.js';
import { cloneModel } from '../../src/ir/clone-model.js';
import { collectStatistics } from '../../src/runtime/collect-statistics.js';
import { hostToFloat64, type HostTensor } from '../../src/runtime/host-tensor.js';
import { ModelSession } from '../../src/runtime/model-session.js';
import { addStatisticsHeads, OLDEST_HEADS_OPSET, type WatchedValue } from '../../src/runtime/statistics-heads.js';
import { tensorToHost } from '../onnx/tensor-to-host.js';

import { backendCorpusModels, isBackendCorpusPresent } from '../helpers/backend-corpus.js';

const present = isBackendCorpusPresent();

/** The corpus's test folders (model.onnx with its test_data_set_* beside it). */
function corpusDirs(): string[] {
  return backendCorpusModels().map((file) => path.dirname(file));
}

const FLOATS = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16]);

/** The first data set's inputs, when every graph input is a float tensor with a stored value. */
function floatFeeds(dir: string, inputNames: string[]): Record<string, HostTensor> | undefined {
  const set = path.join(dir, 'test_data_set_0');
  if (!fs.existsSync(set)) return undefined;
  const feeds: Record<string, HostTensor> = {};
  for (let i = 0; i < inputNames.length; i++) {
    const file = path.join(set, `input_${i}.pb`);
    if (!fs.existsSync(file)) return undefined;
    let tensor;
    try {
      tensor = decodeTensorFile(fs.readFileSync(file), file);
    } catch {
      return undefined;
    }
    if (!FLOATS.has(tensor.dataType)) return undefined;
    feeds[inputNames[i]!] = tensorToHost(tensor);
  }
  return feeds;
}

/** Element-wise mean of the watched value's observations (neurons on `axis`), computed directly. */
function directMean(t: HostTensor, axis: number): Float64Array {
  const v = hostToFloat64(t);
  const m = t.dims[axis]!;
  const inner = t.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const sums = new Float64Array(m);
  for (let i = 0; i < v.length; i++) {
    const k = Math.floor(i / inner) % m;
    sums[k] = sums[k]! + v[i]!;
  }
  return sums.map((s) => s / (v.length / m));
}

describe.skipIf(!present)('statistics heads on the ONNX backend test suite', () => {
  it('run in every model\'s own opset and give the outputs\' mean, on every model with float inputs that onnxruntime runs', async () => {
    const opsets = new Set<number>();
    const failures: string[] = [];
    let checked = 0;
    for (const dir of corpusDirs()) {
      const file = path.join(dir, 'model.onnx');
      let model;
      try {
        model = loadModel(file);
      } catch (error) {
        if (error instanceof CondenseError) continue;
        throw error;
      }
      if (model.graph.inputs.some((v) => v.type?.kind !== 'tensor' || !FLOATS.has(v.elemType!)) || model.graph.inputs.length === 0) continue;
      const feeds = floatFeeds(dir, model.graph.inputs.map((v) => v.name));
      if (!feeds) continue;
      let plain: ModelSession;
      try {
        plain = await ModelSession.create(encodeModel(model).modelBytes, file, { threads: 1 });
      } catch {
        continue; // onnxruntime does not run this model as shipped (an old opset, a missing kernel)
      }
      let outputs: Record<string, HostTensor>;
      try {
        outputs = await plain.run(feeds);
      } catch {
        continue;
      } finally {
        await plain.release();
      }
      const copy = cloneModel(model);
      const watched: WatchedValue[] = [];
      const expected = new Map<string, Float64Array>();
      for (const v of copy.graph.outputs) {
        const out = outputs[v.name];
        if (!out || !isFloatType(out.dataType) || out.dims.length < 2 || out.data.length === 0 || out.dims.some((d) => d === 0)) continue;
        const rank = out.dims.length;
        if (out.dims[rank - 1]! <= 256) {
          watched.push({ key: `${v.name}#last`, value: v, width: out.dims[rank - 1]!, neuronAxisFromEnd: 1, rank });
          expected.set(`${v.name}#last`, directMean(out, rank - 1));
        }
        if (rank >= 3 && out.dims[1]! <= 256) {
          watched.push({ key: `${v.name}#channels`, value: v, width: out.dims[1]!, neuronAxisFromEnd: rank - 1, rank, positionStride: 1 });
          expected.set(`${v.name}#channels`, directMean(out, 1));
          // A strided twin (Slice with steps, and the calibration If from opset 11) must run too.
          const positions = out.data.length / out.dims[0]! / out.dims[1]!;
          if (positions >= 4) watched.push({ key: `${v.name}#strided`, value: v, width: out.dims[1]!, neuronAxisFromEnd: rank - 1, rank, positionStride: 2 });
        }
      }
      if (watched.length === 0) continue;
      const opset = model.opsetVersion('') ?? 0;
      if (opset < OLDEST_HEADS_OPSET) {
        // Older models are refused as unsupported, by name, never with an invalid graph.
        expect(() => addStatisticsHeads(copy, watched)).toThrow(/imports ai.onnx opset \d; statistics need opset 7 or newer/);
        continue;
      }
      try {
        const heads = addStatisticsHeads(copy, watched);
        const session = await ModelSession.create(encodeModel(copy).modelBytes, `${file} (heads)`, { threads: 1 });
        try {
          const collected = await collectStatistics(session, heads, [feeds]);
          for (const h of heads) if (!collected.get(h.key)) failures.push(`${file}: no statistics for ${h.key}`);
          for (const [key, mean] of expected) {
            const got = collected.get(key)!.mean;
            const scale = Math.max(1, ...Array.from(mean, Math.abs));
            const worst = Math.max(...Array.from(mean, (x, k) => (Number.isFinite(x) ? Math.abs(x - got[k]!) : 0)));
            if (!(worst <= 1e-3 * scale)) failures.push(`${file} (opset ${opset}) ${key}: mean differs by ${worst}`);
          }
        } finally {
          await session.release();
        }
        checked++;
        opsets.add(opset);
      } catch (error) {
        failures.push(`${file} (opset ${opset}): ${(error as Error).message.split('\n')[0]}`);
      }
    }
    if (process.env.CONDENSE_VERBOSE) console.log(`checked ${checked} models, opsets ${[...opsets].sort((a, b) => a - b).join(' ')}`);
    expect(failures).toEqual([]);
    // 2026-12, onnxruntime 1.30, Debian libonnx-testdata: 356 models checked, opsets 7 to 17.
    expect(checked).toBeGreaterThan(340);
    for (const opset of [7, 8, 9, 10, 11, 13]) expect(opsets).toContain(opset);
  }, 300_000);
});
