import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { zipSync } from 'fflate';
import { ProbeDataError } from '../../src/errors.js';
import { decodeNpy, decodeNpz, encodeNpy, encodeNpz, type NpyArray } from '../../src/runtime/npy.js';

const samples: NpyArray[] = [
  { dtype: 'float32', shape: [2, 3], data: Float32Array.from([1.5, -2, 0, 3.25, 1e-8, -1e30]) },
  { dtype: 'float64', shape: [3], data: Float64Array.from([Math.PI, -0, 1e300]) },
  { dtype: 'int64', shape: [2, 1], data: BigInt64Array.from([-(2n ** 62n), 7n]) },
  { dtype: 'int32', shape: [], data: Int32Array.from([-123456]) },
  { dtype: 'uint8', shape: [1, 2, 2], data: Uint8Array.from([0, 1, 128, 255]) },
  { dtype: 'bool', shape: [4], data: Uint8Array.from([1, 0, 0, 1]) },
  { dtype: 'float32', shape: [0, 5], data: new Float32Array(0) },
];

// The first Python that can import numpy, or undefined when none can.
const python = ['python3', '/usr/bin/python3'].find((candidate) => {
  try {
    execFileSync(candidate, ['-c', 'import numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
});

function expectProbeError(run: () => unknown, subject: string, pattern: RegExp): void {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ProbeDataError);
    const { message, subject: actual } = error as ProbeDataError;
    expect(actual).toBe(subject);
    expect(message.startsWith(`${subject}: `)).toBe(true);
    expect(message).not.toContain('\n');
    expect(message).toMatch(pattern);
    return;
  }
  throw new Error('expected a ProbeDataError');
}

describe('npy', () => {
  it('round-trips every dtype through encode and decode', () => {
    for (const array of samples) {
      const bytes = encodeNpy(array);
      // numpy aligns the data to 64 bytes; so do we.
      expect((bytes.length - array.data.byteLength) % 64).toBe(0);
      const back = decodeNpy(bytes, 'sample.npy');
      expect(back.dtype).toBe(array.dtype);
      expect(back.shape).toEqual(array.shape);
      expect(Array.from(back.data as ArrayLike<unknown>)).toEqual(Array.from(array.data as ArrayLike<unknown>));
    }
  });

  it('round-trips arrays through a stored and a deflated npz', () => {
    const entries = new Map(samples.map((array, k) => [`array_${k}`, array]));
    for (const compressed of [false, true]) {
      const back = decodeNpz(encodeNpz(entries, { compressed }), 'probe.npz');
      expect([...back.keys()]).toEqual([...entries.keys()]);
      for (const [name, array] of entries) expect(back.get(name)?.data).toEqual(array.data);
    }
  });

  it('reads .npy and .npz files written by numpy', (context) => {
    if (!python) return context.skip('python3 with numpy is not installed');
    const folder = mkdtempSync(join(tmpdir(), 'npy-test-'));
    try {
      const script = [
        'import sys, numpy as np',
        'out = sys.argv[1]',
        "x = np.arange(12, dtype='<f4').reshape(3, 4) / 8",
        "np.save(out + '/x.npy', x)",
        "np.save(out + '/h.npy', np.array([1.5, -0.25, 65504, 6e-8], dtype='<f2'))",
        "np.save(out + '/big.npy', np.ones((2,), dtype='>f4'))",
        "np.save(out + '/fortran.npy', np.asfortranarray(np.ones((2, 3), dtype='<f8')))",
        "np.savez(out + '/p.npz', images=x, labels=np.array([3, 1, 4], dtype='<i8'), mask=np.array([True, False]))",
        "np.savez_compressed(out + '/c.npz', a=np.linspace(0, 1, 1000), b=np.arange(5, dtype=np.uint8))",
      ].join('\n');
      execFileSync(python, ['-c', script, folder]);
      const read = (name: string) => new Uint8Array(readFileSync(join(folder, name)));

      const x = decodeNpy(read('x.npy'), 'x.npy');
      expect(x.dtype).toBe('float32');
      expect(x.shape).toEqual([3, 4]);
      expect(Array.from(x.data as Float32Array)).toEqual(Array.from({ length: 12 }, (_, k) => k / 8));

      const h = decodeNpy(read('h.npy'), 'h.npy');
      expect(h.dtype).toBe('float32');
      expect(Array.from(h.data as Float32Array)).toEqual([1.5, -0.25, 65504, 5.960464477539063e-8]);

      expectProbeError(() => decodeNpy(read('big.npy'), 'big.npy'), 'big.npy', /unsupported dtype '>f4', expected/);
      expectProbeError(() => decodeNpy(read('fortran.npy'), 'fortran.npy'), 'fortran.npy', /Fortran order, expected C order/);

      const stored = decodeNpz(read('p.npz'), 'p.npz');
      expect([...stored.keys()].sort()).toEqual(['images', 'labels', 'mask']);
      expect(stored.get('images')?.data).toEqual(x.data);
      expect(stored.get('labels')).toEqual({ dtype: 'int64', shape: [3], data: BigInt64Array.from([3n, 1n, 4n]) });
      expect(stored.get('mask')).toEqual({ dtype: 'bool', shape: [2], data: Uint8Array.from([1, 0]) });

      const compressed = decodeNpz(read('c.npz'), 'c.npz');
      const a = compressed.get('a');
      expect(a?.dtype).toBe('float64');
      expect(a?.shape).toEqual([1000]);
      expect((a?.data as Float64Array)[999]).toBe(1);
      expect(compressed.get('b')?.data).toEqual(Uint8Array.from([0, 1, 2, 3, 4]));

      // numpy reads what we write.
      const ours = encodeNpz(new Map<string, NpyArray>([['w', samples[0]!], ['n', samples[2]!]]));
      const check = "import io, sys, numpy as np\nz = np.load(io.BytesIO(sys.stdin.buffer.read()))\nprint(z['w'].dtype, z['w'].shape, z['w'][1, 0], z['n'][0, 0])";
      const printed = execFileSync(python, ['-c', check], { input: ours }).toString().trim();
      expect(printed).toBe(`float32 (2, 3) 3.25 ${-(2n ** 62n)}`);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('names the file and the missing byte count when the data is truncated', () => {
    const bytes = encodeNpy(samples[0]!);
    expectProbeError(
      () => decodeNpy(bytes.subarray(0, bytes.length - 5), 'cut.npy'),
      'cut.npy',
      /truncated data: expected 24 bytes for shape \(2, 3\), got 19/,
    );
  });

  it('refuses bytes that are not a numpy file', () => {
    expectProbeError(() => decodeNpy(new TextEncoder().encode('hello, world'), 'hello.txt'), 'hello.txt', /not a numpy \.npy file, expected/);
    expectProbeError(() => decodeNpz(new TextEncoder().encode('not a zip'), 'bad.npz'), 'bad.npz', /not a numpy \.npz file, expected a zip/);
  });

  it('names the archive entry when an npz holds something other than an array', () => {
    const archive = zipSync({ 'readme.txt': new TextEncoder().encode('hi') });
    expectProbeError(() => decodeNpz(archive, 'probe.npz'), 'probe.npz/readme.txt', /expected only \.npy entries/);
    const broken = zipSync({ 'x.npy': encodeNpy(samples[1]!).subarray(0, 140) });
    expectProbeError(() => decodeNpz(broken, 'probe.npz'), 'probe.npz/x.npy', /truncated data/);
  });

  it('reads format version 2.0 and 3.0 headers', () => {
    const v1 = encodeNpy(samples[1]!);
    const headerLength = v1[8]! | (v1[9]! << 8);
    for (const major of [2, 3]) {
      // Same header and data behind a 4-byte length field; alignment does not matter for reading.
      const bytes = new Uint8Array(v1.length + 2);
      bytes.set(v1.subarray(0, 8));
      bytes[6] = major;
      new DataView(bytes.buffer).setUint32(8, headerLength, true);
      bytes.set(v1.subarray(10), 12);
      expect(decodeNpy(bytes, `v${major}.npy`).data).toEqual(samples[1]!.data);
    }
    const v4 = v1.slice();
    v4[6] = 4;
    expectProbeError(() => decodeNpy(v4, 'v4.npy'), 'v4.npy', /unsupported \.npy format version 4\.0/);
  });
});
