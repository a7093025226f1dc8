// Lazy probe sets: random samples are the same whatever ranges they are read in (and the same as
// drawing them in one go), files are read by row ranges, and nothing is made before it is read.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zipSync } from 'fflate';
import { ProbeDataError } from '../../src/errors.js';
import { DataType } from '../../src/ir/data-type.js';
import type { Model } from '../../src/ir/model.js';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { float32ToFloat16Bits } from '../../src/numeric/float16.js';
import { encodeNpy, encodeNpz, type NpyArray } from '../../src/runtime/npy.js';
import { openNpyFile, openNpzFile } from '../../src/runtime/npy-file.js';
import { loadProbeFiles, probeBatches, randomProbes, sliceProbes } from '../../src/runtime/probe-data.js';
import { GraphBuilder } from '../helpers/graph-builder.js';

/** A model with a float input x[N, 3, 4] and an int64 input ids[N, 5]. */
function twoInputModel(batch: number | string = 'N'): Model {
  const b = new GraphBuilder('two_inputs');
  const x = b.input('x', DataType.FLOAT, [batch, 3, 4]);
  const ids = b.input('ids', DataType.INT64, [batch, 5]);
  const [y] = b.node('Identity', [x]);
  const [z] = b.node('Identity', [ids]);
  b.output(y!, DataType.FLOAT);
  b.output(z!, DataType.INT64);
  return b.build(13);
}

function singleInputModel(shape: (number | string)[]): Model {
  const b = new GraphBuilder('single');
  const x = b.input('x', DataType.FLOAT, shape);
  const [y] = b.node('Identity', [x]);
  b.output(y!, DataType.FLOAT);
  return b.build(13);
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'probe-data-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('randomProbes', () => {
  it('draws the same samples in any batches as in one sequential draw of the seeded stream', () => {
    const count = 23;
    for (const seed of [0, 1, 987654]) {
      const set = randomProbes(twoInputModel(), count, { seed });
      // The stream: every float of x in order (two draws each), then every id of ids.
      const rng = new SeededRandom(seed);
      const x = Float32Array.from({ length: count * 12 }, () => rng.gaussian());
      const ids = BigInt64Array.from({ length: count * 5 }, () => BigInt(rng.integer(8)));
      for (const batchSize of [1, 4, 7, 23, 100]) {
        const xs: number[] = [];
        const idList: bigint[] = [];
        for (const feeds of probeBatches(set, batchSize)) {
          expect(feeds.x!.dims.slice(1)).toEqual([3, 4]);
          xs.push(...(feeds.x!.data as Float32Array));
          idList.push(...(feeds.ids!.data as BigInt64Array));
        }
        expect(xs).toEqual(Array.from(x));
        expect(idList).toEqual(Array.from(ids));
      }
      expect(Array.from(set.inputs.x!.data as Float32Array)).toEqual(Array.from(x));
    }
  });

  it('makes nothing until a range is read, so a set far larger than memory costs nothing', () => {
    // 10^9 samples of 4096 floats would be 16 TB drawn up front.
    const set = randomProbes(singleInputModel(['N', 4096]), 1e9, { seed: 3 });
    expect(set.count).toBe(1e9);
    const last = set.read(1e9 - 2, 1e9);
    expect(last.x!.dims).toEqual([2, 4096]);
    // Far into the stream, the draw is still the one sequential generation would make.
    const again = sliceProbes(set, 1e9 - 4, 1e9).read(2, 4);
    expect(Array.from(again.x!.data as Float32Array)).toEqual(Array.from(last.x!.data as Float32Array));
  });

  it('keeps the model\'s fixed batch and refuses a count that is not a multiple of it', () => {
    const set = randomProbes(twoInputModel(4), 8);
    expect(set.fixedBatch).toBe(4);
    expect([...probeBatches(set, 3)].map((f) => f.x!.dims[0])).toEqual([4, 4]);
    expect(() => randomProbes(twoInputModel(4), 6)).toThrow(/exactly 4 samples; 6 is not a multiple/);
  });
});

describe('sliceProbes', () => {
  it('views a range of the set and refuses ranges outside it', () => {
    const set = randomProbes(twoInputModel(), 10, { seed: 5 });
    const tail = sliceProbes(set, 6, 10);
    expect(tail.count).toBe(4);
    expect(Array.from(tail.read(1, 3).x!.data as Float32Array)).toEqual(Array.from(set.read(7, 9).x!.data as Float32Array));
    expect(() => sliceProbes(set, 6, 11)).toThrow(RangeError);
    expect(() => tail.read(3, 5)).toThrow(RangeError);
  });
});

describe('probe files read by rows', () => {
  const rows = (n: number, per: number): Float32Array => Float32Array.from({ length: n * per }, (_, k) => Math.sin(k) * 10);

  it('reads any row range of a .npy file as decoding the whole file would', () => {
    const array: NpyArray = { dtype: 'float32', shape: [9, 3, 4], data: rows(9, 12) };
    const file = path.join(dir, 'x.npy');
    fs.writeFileSync(file, encodeNpy(array));
    const opened = openNpyFile(file);
    expect(opened).toMatchObject({ dtype: 'float32', shape: [9, 3, 4], rowCount: 9 });
    const part = opened.readRows(2, 5);
    expect(part.shape).toEqual([3, 3, 4]);
    expect(Array.from(part.data as Float32Array)).toEqual(Array.from(array.data.subarray(24, 60)));
    expect(() => opened.readRows(5, 10)).toThrow(RangeError);
  });

  it('reads float16 rows as float32, and 0-d arrays as one row', () => {
    const halves = Uint16Array.from([1, -2, 0.5, 4, 8, 16], (v) => float32ToFloat16Bits(v));
    const file = path.join(dir, 'half.npy');
    // encodeNpy writes no '<f2': a version 1.0 header by hand, padded to 128 bytes as numpy does.
    const header = `{'descr': '<f2', 'fortran_order': False, 'shape': (3, 2), }`.padEnd(117, ' ') + '\n';
    const out = new Uint8Array(10 + header.length + halves.byteLength);
    out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    new DataView(out.buffer).setUint16(8, header.length, true);
    for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
    out.set(new Uint8Array(halves.buffer), 10 + header.length);
    fs.writeFileSync(file, out);
    const opened = openNpyFile(file);
    expect(opened.dtype).toBe('float32');
    expect(Array.from(opened.readRows(1, 3).data as Float32Array)).toEqual([0.5, 4, 8, 16]);

    const scalar = path.join(dir, 'scalar.npy');
    fs.writeFileSync(scalar, encodeNpy({ dtype: 'float64', shape: [], data: Float64Array.from([2.5]) }));
    const s = openNpyFile(scalar);
    expect(s.rowCount).toBe(1);
    expect(Array.from(s.readRows(0, 1).data as Float64Array)).toEqual([2.5]);
  });

  it('reads stored .npz entries by rows and deflated ones whole, with the same contents', () => {
    const entries = new Map<string, NpyArray>([
      ['a', { dtype: 'float32', shape: [5, 2], data: rows(5, 2) }],
      ['b', { dtype: 'int64', shape: [5], data: BigInt64Array.from([1n, 2n, 3n, 4n, 5n]) }],
    ]);
    for (const compressed of [false, true]) {
      const file = path.join(dir, `ab-${compressed}.npz`);
      fs.writeFileSync(file, encodeNpz(entries, { compressed }));
      const opened = openNpzFile(file);
      expect([...opened.keys()].sort()).toEqual(['a', 'b']);
      expect(Array.from(opened.get('a')!.readRows(1, 3).data as Float32Array)).toEqual(Array.from(rows(5, 2).subarray(2, 6)));
      expect(Array.from(opened.get('b')!.readRows(4, 5).data as BigInt64Array)).toEqual([5n]);
    }
  });

  it('names the file and what is wrong, as a whole-file decode would', () => {
    const bad = path.join(dir, 'bad.npy');
    fs.writeFileSync(bad, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
    expect(() => openNpyFile(bad)).toThrow(ProbeDataError);
    expect(() => openNpyFile(bad)).toThrow(/bad\.npy: not a numpy \.npy file/);

    const truncated = path.join(dir, 'truncated.npy');
    const full = encodeNpy({ dtype: 'float32', shape: [4, 2], data: rows(4, 2) });
    fs.writeFileSync(truncated, full.subarray(0, full.length - 4));
    expect(() => openNpyFile(truncated)).toThrow(/truncated data: expected 32 bytes for shape \(4, 2\), got 28/);

    const fortran = path.join(dir, 'fortran.npy');
    const text = new TextDecoder('latin1').decode(full).replace("'fortran_order': False", "'fortran_order': True ");
    fs.writeFileSync(fortran, Uint8Array.from(text, (c) => c.charCodeAt(0)));
    expect(() => openNpyFile(fortran)).toThrow(/Fortran order/);

    const notZip = path.join(dir, 'not.npz');
    fs.writeFileSync(notZip, full);
    expect(() => openNpzFile(notZip)).toThrow(/not a numpy \.npz file/);

    const stray = path.join(dir, 'stray.npz');
    fs.writeFileSync(stray, zipSync({ 'notes.txt': new Uint8Array([1]) }, { level: 0 }));
    expect(() => openNpzFile(stray)).toThrow(/stray\.npz\/notes\.txt: entry is not a \.npy array/);
  });

  it('serves probe batches from the file lazily, converting float64 to the input\'s float32', () => {
    const file = path.join(dir, 'probe64.npy');
    const data = Float64Array.from({ length: 7 * 12 }, (_, k) => k / 7);
    fs.writeFileSync(file, encodeNpy({ dtype: 'float64', shape: [7, 3, 4], data }));
    const set = loadProbeFiles(singleInputModel(['N', 3, 4]), [file]);
    expect(set.count).toBe(7);
    const seen: number[] = [];
    for (const feeds of probeBatches(set, 3)) {
      expect(feeds.x!.data).toBeInstanceOf(Float32Array);
      seen.push(...(feeds.x!.data as Float32Array));
    }
    expect(seen).toEqual(Array.from(Float32Array.from(data)));
  });
});
