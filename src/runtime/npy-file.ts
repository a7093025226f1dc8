// Probe files read by row ranges: a .npy file, or a .npz archive's stored entries, is opened by its
// header and then read a batch of rows at a time, so a probe set far larger than memory streams
// through. Deflated .npz entries cannot be read at an offset: those are decoded whole, by npy.ts
// (the owner of the zip library).
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html; the archive is a
// plain (or ZIP64) zip file as numpy.savez writes it.

import * as fs from 'node:fs';
import { ProbeDataError } from '../errors.js';
import { float16ArrayToFloat32 } from '../numeric/float16.js';
import { decodeNpy, decodeNpz, type NpyArray, type NpyDtype } from './npy.js';

/** An array on disk (or, for a deflated .npz entry, in memory) that hands out rows on demand. */
export interface NpyRows {
  /** Element type of the arrays readRows returns ('<f2' files read as float32). */
  dtype: NpyDtype;
  shape: number[];
  /** Rows along the first axis (1 for a 0-d array). */
  rowCount: number;
  /** Rows [from, to) as a C-order array of shape [to - from, ...shape.slice(1)]. */
  readRows(from: number, to: number): NpyArray;
}

const ITEM: Record<string, { dtype: NpyDtype | 'float16'; itemSize: number }> = {
  '<f4': { dtype: 'float32', itemSize: 4 },
  '<f8': { dtype: 'float64', itemSize: 8 },
  '<i8': { dtype: 'int64', itemSize: 8 },
  '<i4': { dtype: 'int32', itemSize: 4 },
  '|u1': { dtype: 'uint8', itemSize: 1 },
  '|b1': { dtype: 'bool', itemSize: 1 },
  '<f2': { dtype: 'float16', itemSize: 2 },
};

/** Opens a .npy file for reading by rows (each read opens the file anew, so nothing stays open). */
export function openNpyFile(file: string, subject: string = file): NpyRows {
  return rowsAt(file, 0, withFile(file, (fd) => fs.fstatSync(fd).size), subject);
}

/** Opens every entry of a .npz archive for reading by rows, keyed by entry name without ".npy". */
export function openNpzFile(file: string, subject: string = file): Map<string, NpyRows> {
  const { entries, starts } = withFile(file, (fd) => {
    const entries = readZipDirectory(fd, subject);
    return { entries, starts: entries.map((e) => (e.name.endsWith('/') ? 0 : localDataStart(fd, e.localHeaderOffset, subject))) };
  });
  const arrays = new Map<string, NpyRows>();
  let deflated: Map<string, NpyArray> | undefined;
  entries.forEach((entry, k) => {
    if (entry.name.endsWith('/')) return;
    const entrySubject = `${subject}/${entry.name}`;
    if (!entry.name.endsWith('.npy')) throw new ProbeDataError(entrySubject, 'entry is not a .npy array, expected only .npy entries in an .npz');
    const dataStart = starts[k]!;
    const key = entry.name.slice(0, -'.npy'.length);
    if (entry.method === 0) {
      arrays.set(key, rowsAt(file, dataStart, entry.compressedSize, entrySubject));
    } else if (entry.method === 8) {
      deflated ??= decodeNpz(fs.readFileSync(file), subject);
      arrays.set(key, inMemoryRows(deflated.get(key)!));
    } else {
      throw new ProbeDataError(entrySubject, `entry uses zip compression method ${entry.method}, expected stored (0) or deflated (8)`);
    }
  });
  return arrays;
}

function withFile<T>(file: string, use: (fd: number) => T): T {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (cause) {
    throw new ProbeDataError(file, `cannot be read (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
  try {
    return use(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function readAt(fd: number, position: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, out, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? out : out.subarray(0, done);
}

/** A .npy array stored at [start, start + byteLength) of a file. */
function rowsAt(file: string, start: number, byteLength: number, subject: string): NpyRows {
  const prefix = withFile(file, (fd) => readAt(fd, start, Math.min(byteLength, 12)));
  if (prefix.length < 10 || [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59].some((b, i) => prefix[i] !== b)) {
    throw new ProbeDataError(subject, 'not a numpy .npy file, expected the magic bytes "\\x93NUMPY"');
  }
  const major = prefix[6]!;
  const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  let headerStart: number;
  let headerLength: number;
  if (major === 1) {
    headerStart = 10;
    headerLength = view.getUint16(8, true);
  } else if (major === 2 || major === 3) {
    if (prefix.length < 12) throw new ProbeDataError(subject, 'truncated header, expected at least 12 bytes');
    headerStart = 12;
    headerLength = view.getUint32(8, true);
  } else {
    throw new ProbeDataError(subject, `unsupported .npy format version ${major}.${prefix[7]}, expected 1.0, 2.0 or 3.0`);
  }
  const dataStart = headerStart + headerLength;
  if (dataStart > byteLength) throw new ProbeDataError(subject, `truncated header: expected ${dataStart} bytes, got ${byteLength}`);
  const headerBytes = withFile(file, (fd) => readAt(fd, start, dataStart));
  const { descriptor, shape } = headerFields(headerBytes.subarray(headerStart), major, subject);
  const format = ITEM[descriptor]!;
  const elementCount = shape.reduce((p, d) => p * d, 1);
  const expectedBytes = elementCount * format.itemSize;
  const actualBytes = byteLength - dataStart;
  if (actualBytes !== expectedBytes) {
    const what = actualBytes < expectedBytes ? 'truncated data' : 'unexpected trailing data';
    throw new ProbeDataError(subject, `${what}: expected ${expectedBytes} bytes for shape (${shape.join(', ')}), got ${actualBytes}`);
  }
  const rowCount = shape.length === 0 ? 1 : shape[0]!;
  const rowElements = rowCount === 0 ? 0 : elementCount / rowCount;
  const dtype: NpyDtype = format.dtype === 'float16' ? 'float32' : format.dtype;
  return {
    dtype,
    shape,
    rowCount,
    readRows(from: number, to: number): NpyArray {
      checkRange(from, to, rowCount, subject);
      const rowBytes = rowElements * format.itemSize;
      const bytes = withFile(file, (fd) => readAt(fd, start + dataStart + from * rowBytes, (to - from) * rowBytes));
      const rows = shape.length === 0 ? [] : [to - from, ...shape.slice(1)];
      return typedRows(format.dtype, rows, bytes.buffer as ArrayBuffer);
    },
  };
}

// numpy writes the header as a Python dict literal, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }. The rules for it live in npy.ts:
// this reads only the first dimension and the dtype, and hands decodeNpy the header of a zero-row
// copy of the array, which it accepts or rejects exactly as it would the whole file.
function headerFields(header: Uint8Array, major: number, subject: string): { descriptor: string; shape: number[] } {
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(header);
  const shapeMatch = /(['"]shape['"]\s*:\s*\()([^)]*)(\))/.exec(text);
  const descr = /['"]descr['"]\s*:\s*(['"])([^'"]*)\1/.exec(text);
  if (!shapeMatch || !descr || !ITEM[descr[2]!]) {
    // Whatever is wrong, decodeNpy names it in its own words.
    decodeNpy(npyBytes(major, text), subject);
    throw new ProbeDataError(subject, 'malformed .npy header, expected keys descr, fortran_order and shape');
  }
  const dims = shapeMatch[2]!.split(',').map((p) => p.trim().replace(/L$/, '')).filter((p) => p !== '');
  // The same header with the first dimension set to 0 describes an array with no data bytes.
  const emptyShape = dims.length === 0 ? '' : ['0', ...dims.slice(1)].join(', ') + (dims.length === 1 ? ',' : '');
  const emptyText = text.slice(0, shapeMatch.index) + shapeMatch[1] + emptyShape + shapeMatch[3] + text.slice(shapeMatch.index + shapeMatch[0].length);
  if (dims.length === 0) {
    // A 0-d array has one element and no rows to drop: check the header alone.
    const array = decodeNpy(npyBytes(major, text, ITEM[descr[2]!]!.itemSize), subject);
    return { descriptor: descr[2]!, shape: array.shape };
  }
  const empty = decodeNpy(npyBytes(major, emptyText), subject);
  const first = Number(dims[0]);
  if (!Number.isSafeInteger(first) || first < 0) throw new ProbeDataError(subject, `malformed shape (${shapeMatch[2]}), expected non-negative integers`);
  return { descriptor: descr[2]!, shape: [first, ...empty.shape.slice(1)] };
}

/** A .npy file holding `header` and `dataBytes` zero bytes of data. */
function npyBytes(major: number, header: string, dataBytes = 0): Uint8Array {
  const encoded = major === 3 ? new TextEncoder().encode(header) : Uint8Array.from(header, (c) => c.charCodeAt(0) & 0xff);
  const prefix = major === 1 ? 10 : 12;
  const out = new Uint8Array(prefix + encoded.length + dataBytes);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, encoded.length, true);
  else view.setUint32(8, encoded.length, true);
  out.set(encoded, prefix);
  return out;
}

function typedRows(dtype: NpyDtype | 'float16', shape: number[], buffer: ArrayBuffer): NpyArray {
  switch (dtype) {
    case 'float32': return { dtype, shape, data: new Float32Array(buffer) };
    case 'float64': return { dtype, shape, data: new Float64Array(buffer) };
    case 'int64': return { dtype, shape, data: new BigInt64Array(buffer) };
    case 'int32': return { dtype, shape, data: new Int32Array(buffer) };
    case 'uint8': return { dtype, shape, data: new Uint8Array(buffer) };
    case 'bool': return { dtype, shape, data: new Uint8Array(buffer) };
    case 'float16': return { dtype: 'float32', shape, data: float16ArrayToFloat32(new Uint16Array(buffer)) };
  }
}

function checkRange(from: number, to: number, rowCount: number, subject: string): void {
  if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to <= rowCount)) {
    throw new RangeError(`${subject}: rows [${from}, ${to}) are outside [0, ${rowCount})`);
  }
}

/** Rows of an array already decoded in memory. */
export function inMemoryRows(array: NpyArray): NpyRows {
  const rowCount = array.shape.length === 0 ? 1 : array.shape[0]!;
  const per = rowCount === 0 ? 0 : array.data.length / rowCount;
  return {
    dtype: array.dtype,
    shape: array.shape,
    rowCount,
    readRows(from: number, to: number): NpyArray {
      checkRange(from, to, rowCount, 'array');
      const shape = array.shape.length === 0 ? [] : [to - from, ...array.shape.slice(1)];
      return { dtype: array.dtype, shape, data: array.data.subarray(from * per, to * per) } as NpyArray;
    },
  };
}

interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  localHeaderOffset: number;
}

const NOT_A_ZIP = 'not a numpy .npz file, expected a zip archive of .npy entries';

/** The central directory of a zip (or ZIP64) archive. */
function readZipDirectory(fd: number, subject: string): ZipEntry[] {
  const size = fs.fstatSync(fd).size;
  const tailLength = Math.min(size, 22 + 0xffff);
  const tail = readAt(fd, size - tailLength, tailLength);
  const tailView = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tailView.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ProbeDataError(subject, NOT_A_ZIP);
  let entryCount = tailView.getUint16(eocd + 10, true);
  let directorySize = tailView.getUint32(eocd + 12, true);
  let directoryOffset = tailView.getUint32(eocd + 16, true);
  if (entryCount === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff) {
    // ZIP64: a locator just before the end record points at the ZIP64 end record.
    const locator = eocd - 20;
    if (locator < 0 || tailView.getUint32(locator, true) !== 0x07064b50) throw new ProbeDataError(subject, NOT_A_ZIP);
    const record = readAt(fd, Number(tailView.getBigUint64(locator + 8, true)), 56);
    const recordView = new DataView(record.buffer);
    if (record.length < 56 || recordView.getUint32(0, true) !== 0x06064b50) throw new ProbeDataError(subject, NOT_A_ZIP);
    entryCount = Number(recordView.getBigUint64(32, true));
    directorySize = Number(recordView.getBigUint64(40, true));
    directoryOffset = Number(recordView.getBigUint64(48, true));
  }
  const directory = readAt(fd, directoryOffset, directorySize);
  const view = new DataView(directory.buffer);
  const entries: ZipEntry[] = [];
  let at = 0;
  for (let k = 0; k < entryCount; k++) {
    if (at + 46 > directory.length || view.getUint32(at, true) !== 0x02014b50) throw new ProbeDataError(subject, NOT_A_ZIP);
    const method = view.getUint16(at + 10, true);
    let compressedSize = view.getUint32(at + 20, true);
    const uncompressedSize = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    let localHeaderOffset = view.getUint32(at + 42, true);
    const name = new TextDecoder().decode(directory.subarray(at + 46, at + 46 + nameLength));
    // ZIP64 extra field: 64-bit values for exactly the fields saturated above, in this order.
    let extra = at + 46 + nameLength;
    const extraEnd = extra + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = view.getUint16(extra, true);
      const length = view.getUint16(extra + 2, true);
      if (id === 0x0001) {
        let field = extra + 4;
        if (uncompressedSize === 0xffffffff) field += 8;
        if (compressedSize === 0xffffffff) {
          compressedSize = Number(view.getBigUint64(field, true));
          field += 8;
        }
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = Number(view.getBigUint64(field, true));
      }
      extra += 4 + length;
    }
    entries.push({ name, method, compressedSize, localHeaderOffset });
    at = extraEnd + commentLength;
  }
  return entries;
}

function localDataStart(fd: number, offset: number, subject: string): number {
  const header = readAt(fd, offset, 30);
  const view = new DataView(header.buffer);
  if (header.length < 30 || view.getUint32(0, true) !== 0x04034b50) throw new ProbeDataError(subject, NOT_A_ZIP);
  return offset + 30 + view.getUint16(26, true) + view.getUint16(28, true);
}
