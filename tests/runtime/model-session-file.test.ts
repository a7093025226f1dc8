// Sessions from files: onnxruntime reads a model and its external data from a path, and the
// pipeline stages a model past its in-memory limit in a temporary folder that it removes again.
// The real case (a model over 2 GB) runs in the benchmark; here the limits are set low.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findLayers } from '../../src/analysis/find-layers.js';
import { DataType } from '../../src/ir/data-type.js';
import type { Model } from '../../src/ir/model.js';
import { Tensor } from '../../src/ir/tensor.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { encodeModel } from '../../src/onnx/encode-model.js';
import { saveModel } from '../../src/onnx/model-file.js';
import { collectLayerStatistics } from '../../src/pipeline/collect-layer-statistics.js';
import { openModelSession, tensorByteLength } from '../../src/runtime/open-model-session.js';
import type { HostTensor } from '../../src/runtime/host-tensor.js';
import { ModelSession } from '../../src/runtime/model-session.js';
import { randomProbes } from '../../src/runtime/probe-data.js';
import { GraphBuilder, int } from '../helpers/graph-builder.js';

/** x[N, 8] -> Gemm 8 -> 32 -> Relu -> Gemm 32 -> 3. */
function mlp(): Model {
  const random = new SeededRandom(11);
  const weights = (n: number): Float32Array => Float32Array.from({ length: n }, () => random.gaussian() * 0.4);
  const b = new GraphBuilder('mlp');
  const x = b.input('x', DataType.FLOAT, ['N', 8]);
  const [z] = b.node('Gemm', [x, b.initializer('w1', Tensor.fromFloat32([32, 8], weights(256))), b.initializer('b1', Tensor.fromFloat32([32], weights(32)))], { transB: int(1) }, { name: 'fc1' });
  const [h] = b.node('Relu', [z!], {}, { name: 'relu' });
  const [y] = b.node('Gemm', [h!, b.initializer('w2', Tensor.fromFloat32([3, 32], weights(96))), b.initializer('b2', Tensor.fromFloat32([3], weights(3)))], { transB: int(1) }, { name: 'fc2' });
  b.output(y!, DataType.FLOAT, ['N', 3]);
  return b.build(13);
}

const feeds: Record<string, HostTensor> = {
  x: { dataType: DataType.FLOAT, dims: [4, 8], data: Float32Array.from({ length: 32 }, (_, k) => Math.cos(k)) },
};

async function outputOf(session: ModelSession): Promise<number[]> {
  try {
    const out = await session.run(feeds);
    return Array.from(out[session.outputNames[0]!]!.data as Float32Array);
  } finally {
    await session.release();
  }
}

function stagingFolders(): string[] {
  return fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith('onnx-condense-'));
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-file-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('ModelSession from a file', () => {
  it('loads a model whose tensors live in an external data file beside it', async () => {
    const model = mlp();
    const file = path.join(dir, 'mlp.onnx');
    saveModel(model, file, { externalDataThresholdBytes: 64 });
    expect(fs.statSync(`${file}.data`).size).toBeGreaterThan(1000);
    const expected = await outputOf(await ModelSession.create(encodeModel(model).modelBytes, 'in memory'));
    expect(await outputOf(await ModelSession.create(file, file))).toEqual(expected);
  });

  it('names the file when onnxruntime cannot load it', async () => {
    const missing = path.join(dir, 'missing.onnx');
    await expect(ModelSession.create(missing, missing)).rejects.toThrow(/missing\.onnx: onnxruntime cannot load the model/);
  });
});

describe('openModelSession', () => {
  it('stages a model past its in-memory limit in a temporary folder, runs it the same, and removes the folder', async () => {
    const model = mlp();
    expect(tensorByteLength(model)).toBe(4 * (256 + 32 + 96 + 3));
    const before = new Set(stagingFolders());
    const inMemory = await outputOf(await openModelSession(model, 'mlp'));
    const staged = await outputOf(await openModelSession(model, 'mlp', {}, { inMemoryLimitBytes: 0 }));
    expect(staged).toEqual(inMemory);
    expect(stagingFolders().filter((f) => !before.has(f))).toEqual([]);
  });

  it('collects the same statistics from a staged statistics model', async () => {
    const model = mlp();
    const layers = findLayers(model);
    const probes = randomProbes(model, 40, { seed: 2 });
    const inMemory = await collectLayerStatistics(model, 'mlp', layers, probes);
    const staged = await collectLayerStatistics(model, 'mlp', layers, probes, { staging: { inMemoryLimitBytes: 0 } });
    for (const layer of layers) {
      expect(Array.from(staged.get(layer.name)!.scatter)).toEqual(Array.from(inMemory.get(layer.name)!.scatter));
      expect(staged.get(layer.name)!.count).toBe(40);
    }
  });
});
