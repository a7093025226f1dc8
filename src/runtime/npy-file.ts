// Probe files read by row ranges: a .npy file, or a .npz archive's stored entries, is opened by its
// header and then read a batch of rows at a time, so a probe set far larger than memory streams
// through. Deflated .npz entries cannot be read at an offset: each is inflated alone, stopping at
// its declared size and at MAX_INFLATED_BYTES, so a small archive cannot claim gigabytes of memory.
// Every size and offset in the archive is checked against the file's length before it is used.
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html; the archive is a
// plain (or ZIP64) zip file as numpy.savez writes it.

import * as fs from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { ProbeDataError } from '../errors.js';
import { decodeNpy, MAX_INFLATED_BYTES, npyDataStart, readNpyLayout, typedNpyArray, type NpyArray, type NpyDtype } from './npy.js';

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


/** Opens a .npy file for reading by rows (each read opens the file anew, so nothing stays open). */
export function openNpyFile(file: string, subject: string = file): NpyRows {
  return rowsAt(file, 0, withFile(file, (fd) => fs.fstatSync(fd).size), subject);
}

/** Opens every entry of a .npz archive for reading by rows, keyed by entry name without ".npy". */
export function openNpzFile(file: string, subject: string = file): Map<string, NpyRows> {
  const { entries, starts } = withFile(file, (fd) => {
    const fileSize = fs.fstatSync(fd).size;
    const entries = readZipDirectory(fd, subject);
    const starts = entries.map((e) => {
      if (e.name.endsWith('/')) return 0;
      const start = localDataStart(fd, e.localHeaderOffset, fileSize, `${subject}/${e.name}`);
      if (start + e.compressedSize > fileSize) {
        throw new ProbeDataError(`${subject}/${e.name}`, `entry of ${e.compressedSize} bytes at offset ${start} ends beyond the end of the file (${fileSize} bytes); expected a complete archive`);
      }
      return start;
    });
    return { entries, starts };
  });
  const arrays = new Map<string, NpyRows>();
  entries.forEach((entry, k) => {
    if (entry.name.endsWith('/')) return;
    const entrySubject = `${subject}/${entry.name}`;
    if (!entry.name.endsWith('.npy')) throw new ProbeDataError(entrySubject, 'entry is not a .npy array, expected only .npy entries in an .npz');
    const dataStart = starts[k]!;
    const key = entry.name.slice(0, -'.npy'.length);
    if (entry.method === 0) {
      arrays.set(key, rowsAt(file, dataStart, entry.compressedSize, entrySubject));
    } else if (entry.method === 8) {
      arrays.set(key, inMemoryRows(inflateEntry(file, dataStart, entry, entrySubject)));
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
  const dataStart = npyDataStart(prefix, byteLength, subject);
  const head = withFile(file, (fd) => readAt(fd, start, dataStart));
  const format = readNpyLayout(head, byteLength, subject);
  const shape = format.shape;
  const elementCount = shape.reduce((p, d) => p * d, 1);
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
      return typedNpyArray(format.dtype, rows, bytes.buffer as ArrayBuffer);
    },
  };
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
  uncompressedSize: number;
  localHeaderOffset: number;
}


/** Inflates one deflated entry, refusing it once it passes its declared size or the limit. */
function inflateEntry(file: string, dataStart: number, entry: ZipEntry, subject: string): NpyArray {
  if (entry.uncompressedSize > MAX_INFLATED_BYTES) {
    throw new ProbeDataError(subject, `deflated entry inflates to ${entry.uncompressedSize} bytes, more than the limit of ${MAX_INFLATED_BYTES}; expected a smaller entry (numpy.savez without compression streams larger probe sets)`);
  }
  const compressed = withFile(file, (fd) => readAt(fd, dataStart, entry.compressedSize));
  let bytes: Uint8Array;
  try {
    bytes = inflateRawSync(compressed, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') throw new ProbeDataError(subject, `deflated entry inflates to more than its declared ${entry.uncompressedSize} bytes; expected the size the archive states`, { cause });
    throw new ProbeDataError(subject, `deflated entry is corrupt (${code ?? (cause as Error).message}); expected valid deflate data`, { cause });
  }
  if (bytes.length !== entry.uncompressedSize) {
    throw new ProbeDataError(subject, `deflated entry inflates to ${bytes.length} bytes, but the archive declares ${entry.uncompressedSize}; expected a complete archive`);
  }
  return decodeNpy(bytes, subject);
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
  const beyond = (what: string, offset: number, length: number): void => {
    if (!(offset >= 0 && length >= 0 && offset + length <= size)) {
      throw new ProbeDataError(subject, `${what} at offset ${offset} (${length} bytes) reaches beyond the end of the file (${size} bytes); ${NOT_A_ZIP}`);
    }
  };
  let entryCount = tailView.getUint16(eocd + 10, true);
  let directorySize = tailView.getUint32(eocd + 12, true);
  let directoryOffset = tailView.getUint32(eocd + 16, true);
  if (entryCount === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff) {
    // ZIP64: a locator just before the end record points at the ZIP64 end record.
    const locator = eocd - 20;
    if (locator < 0 || tailView.getUint32(locator, true) !== 0x07064b50) throw new ProbeDataError(subject, NOT_A_ZIP);
    const recordOffset = Number(tailView.getBigUint64(locator + 8, true));
    beyond('ZIP64 end record', recordOffset, 56);
    const record = readAt(fd, recordOffset, 56);
    const recordView = new DataView(record.buffer);
    if (record.length < 56 || recordView.getUint32(0, true) !== 0x06064b50) throw new ProbeDataError(subject, NOT_A_ZIP);
    entryCount = Number(recordView.getBigUint64(32, true));
    directorySize = Number(recordView.getBigUint64(40, true));
    directoryOffset = Number(recordView.getBigUint64(48, true));
  }
  beyond('central directory', directoryOffset, directorySize);
  // Each entry takes at least 46 bytes of the directory: a larger count is a lie.
  if (entryCount * 46 > directorySize) throw new ProbeDataError(subject, `central directory of ${directorySize} bytes cannot hold ${entryCount} entries; ${NOT_A_ZIP}`);
  const directory = readAt(fd, directoryOffset, directorySize);
  const view = new DataView(directory.buffer);
  const entries: ZipEntry[] = [];
  let at = 0;
  for (let k = 0; k < entryCount; k++) {
    if (at + 46 > directory.length || view.getUint32(at, true) !== 0x02014b50) throw new ProbeDataError(subject, NOT_A_ZIP);
    const method = view.getUint16(at + 10, true);
    let compressedSize = view.getUint32(at + 20, true);
    let uncompressedSize = view.getUint32(at + 24, true);
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
        if (uncompressedSize === 0xffffffff && field + 8 <= extraEnd && field + 8 <= directory.length) {
          uncompressedSize = Number(view.getBigUint64(field, true));
          field += 8;
        }
        if (field + 8 > extraEnd || field + 8 > directory.length) {
          extra += 4 + length;
          continue;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = Number(view.getBigUint64(field, true));
          field += 8;
        }
        if (localHeaderOffset === 0xffffffff && field + 8 <= extraEnd && field + 8 <= directory.length) localHeaderOffset = Number(view.getBigUint64(field, true));
      }
      extra += 4 + length;
    }
    if (extraEnd > directory.length) throw new ProbeDataError(subject, NOT_A_ZIP);
    entries.push({ name, method, compressedSize, uncompressedSize, localHeaderOffset });
    at = extraEnd + commentLength;
  }
  return entries;
}

function localDataStart(fd: number, offset: number, fileSize: number, subject: string): number {
  if (!(offset >= 0 && offset + 30 <= fileSize)) throw new ProbeDataError(subject, `local header at offset ${offset} is beyond the end of the file (${fileSize} bytes); ${NOT_A_ZIP}`);
  const header = readAt(fd, offset, 30);
  const view = new DataView(header.buffer);
  if (header.length < 30 || view.getUint32(0, true) !== 0x04034b50) throw new ProbeDataError(subject, NOT_A_ZIP);
  return offset + 30 + view.getUint16(26, true) + view.getUint16(28, true);
}
