// Hostile .npz archives are bad probe data: refused with one ProbeDataError line, quickly and with
// bounded memory, never a RangeError or an inflate of everything the archive claims.

import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { ProbeDataError } from '../../src/errors.js';
import { openNpzFile } from '../../src/runtime/npy-file.js';
import { encodeNpy, encodeNpz } from '../../src/runtime/npy.js';

const folder = fs.mkdtempSync(path.join(tmpdir(), 'condense-npz-'));
afterAll(() => fs.rmSync(folder, { recursive: true, force: true }));
let count = 0;
function write(bytes: Uint8Array): string {
  const file = path.join(folder, `a${count++}.npz`);
  fs.writeFileSync(file, bytes);
  return file;
}

function refusal(file: string): string {
  try {
    openNpzFile(file);
  } catch (error) {
    expect(error).toBeInstanceOf(ProbeDataError);
    expect((error as Error).message).not.toContain('\n');
    return (error as Error).message;
  }
  throw new Error('openNpzFile accepted the archive');
}

interface RawEntry {
  name: string;
  method: number;
  data: Uint8Array;
  compressedSize?: number;
  uncompressedSize: number;
}

/** A zip written field by field, so sizes can lie. */
function zip(entries: RawEntry[], patch?: (eocd: DataView) => void): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = new TextEncoder().encode(e.name);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(8, e.method, true);
    local.setUint32(18, e.compressedSize ?? e.data.length, true);
    local.setUint32(22, e.uncompressedSize, true);
    local.setUint16(26, name.length, true);
    parts.push(new Uint8Array(local.buffer), name, e.data);
    const c = new DataView(new ArrayBuffer(46));
    c.setUint32(0, 0x02014b50, true);
    c.setUint16(10, e.method, true);
    c.setUint32(20, e.compressedSize ?? e.data.length, true);
    c.setUint32(24, e.uncompressedSize, true);
    c.setUint16(28, name.length, true);
    c.setUint32(42, offset, true);
    central.push(new Uint8Array(c.buffer), name);
    offset += 30 + name.length + e.data.length;
  }
  const directorySize = central.reduce((n, p) => n + p.length, 0);
  const eocd = new DataView(new ArrayBuffer(22));
  eocd.setUint32(0, 0x06054b50, true);
  eocd.setUint16(8, entries.length, true);
  eocd.setUint16(10, entries.length, true);
  eocd.setUint32(12, directorySize, true);
  eocd.setUint32(16, offset, true);
  patch?.(eocd);
  return Buffer.concat([...parts, ...central, new Uint8Array(eocd.buffer)]);
}

const npy = encodeNpy({ dtype: 'float32', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) });

describe('openNpzFile refuses hostile archives', () => {
  it('reads the archive written by field when nothing lies (the helper is sound)', () => {
    const arrays = openNpzFile(write(zip([{ name: 'x.npy', method: 0, data: npy, uncompressedSize: npy.length }])));
    expect(arrays.get('x')!.readRows(0, 2).data).toEqual(Float32Array.from([1, 2, 3, 4]));
    const deflated = openNpzFile(write(zip([{ name: 'x.npy', method: 8, data: deflateRawSync(npy), uncompressedSize: npy.length }])));
    expect(deflated.get('x')!.readRows(1, 2).data).toEqual(Float32Array.from([3, 4]));
  });

  it('refuses a central directory larger than the file', () => {
    const file = write(zip([{ name: 'x.npy', method: 0, data: npy, uncompressedSize: npy.length }], (eocd) => eocd.setUint32(12, 0xfffffff0, true)));
    expect(refusal(file)).toMatch(/central directory .* beyond the end of the file/);
  });

  it('refuses a ZIP64 locator that points 2^62 bytes in', () => {
    const base = zip([{ name: 'x.npy', method: 0, data: npy, uncompressedSize: npy.length }], (eocd) => eocd.setUint32(16, 0xffffffff, true));
    const locator = new DataView(new ArrayBuffer(20));
    locator.setUint32(0, 0x07064b50, true);
    locator.setBigUint64(8, 2n ** 62n, true);
    const file = write(Buffer.concat([base.subarray(0, base.length - 22), new Uint8Array(locator.buffer), base.subarray(base.length - 22)]));
    expect(refusal(file)).toMatch(/ZIP64 end record .* beyond the end of the file/);
  });

  it('refuses a stored entry longer than the file', () => {
    const file = write(zip([{ name: 'x.npy', method: 0, data: npy, compressedSize: 1 << 30, uncompressedSize: 1 << 30 }]));
    expect(refusal(file)).toMatch(/x\.npy.* ends beyond the end of the file/);
  });

  it('refuses a deflated entry that declares more than the inflate limit, without inflating it', () => {
    const file = write(zip([{ name: 'x.npy', method: 8, data: deflateRawSync(npy), uncompressedSize: 0xfffffff0 }]));
    const started = Date.now();
    expect(refusal(file)).toMatch(/x\.npy.* inflates to 4294967280 bytes, more than the limit of \d+/);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('stops inflating a deflated entry at its declared size: a 64 KiB archive that inflates to 64 MiB is refused quickly', () => {
    // The CLI check in docs/cli.md does the same with 1 GiB; 64 MiB keeps this test fast.
    const bomb = deflateRawSync(new Uint8Array(64 << 20), { level: 1 });
    const file = write(zip([{ name: 'x.npy', method: 8, data: bomb, uncompressedSize: 1 << 20 }]));
    const started = Date.now();
    expect(refusal(file)).toMatch(/x\.npy.* inflates to more than its declared 1048576 bytes/);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('encodeNpz output still opens', () => {
  it('opens stored and deflated archives written by encodeNpz', () => {
    const arrays = new Map([['a', { dtype: 'float32' as const, shape: [3], data: Float32Array.from([1, 2, 3]) }]]);
    for (const compressed of [false, true]) {
      expect(openNpzFile(write(encodeNpz(arrays, { compressed }))).get('a')!.readRows(0, 3).data).toEqual(Float32Array.from([1, 2, 3]));
    }
  });
});
