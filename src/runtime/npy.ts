// Reading and writing NumPy .npy arrays and .npz archives, the format users hand probe data in.
// Owns the only use of fflate; imports src/errors.ts and numeric/ (float16 decoding) only.
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
import { unzipSync, zipSync, type Zippable } from 'fflate';
import { ProbeDataError } from '../errors.js';
import { float16ArrayToFloat32 } from '../numeric/float16.js';

/** The element types we read and write; '<f2' files decode to 'float32'. */
export type NpyDtype = 'float32' | 'float64' | 'int64' | 'int32' | 'uint8' | 'bool';

/** A C-order array: `data` holds prod(shape) elements (one for shape []); bool is 0/1 bytes. */
export type NpyArray =
  | { dtype: 'float32'; shape: number[]; data: Float32Array }
  | { dtype: 'float64'; shape: number[]; data: Float64Array }
  | { dtype: 'int64'; shape: number[]; data: BigInt64Array }
  | { dtype: 'int32'; shape: number[]; data: Int32Array }
  | { dtype: 'uint8'; shape: number[]; data: Uint8Array }
  | { dtype: 'bool'; shape: number[]; data: Uint8Array };

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
// numpy pads headers so the data starts on a 64-byte boundary; we do the same when writing.
const HEADER_ALIGN = 64;

// Typed arrays use the host's byte order; every platform Node supports is little-endian, so '<'
// data can be viewed directly and '>' data is refused rather than swapped.
const DESCRIPTORS: Record<string, { dtype: NpyDtype | 'float16'; itemSize: number }> = {
  '<f4': { dtype: 'float32', itemSize: 4 },
  '<f8': { dtype: 'float64', itemSize: 8 },
  '<i8': { dtype: 'int64', itemSize: 8 },
  '<i4': { dtype: 'int32', itemSize: 4 },
  '|u1': { dtype: 'uint8', itemSize: 1 },
  '|b1': { dtype: 'bool', itemSize: 1 },
  '<f2': { dtype: 'float16', itemSize: 2 },
};

const DESCRIPTOR_OF: Record<NpyDtype, string> = {
  float32: '<f4',
  float64: '<f8',
  int64: '<i8',
  int32: '<i4',
  uint8: '|u1',
  bool: '|b1',
};

const SUPPORTED = 'one of <f4, <f8, <f2, <i8, <i4, |u1, |b1';

/** Where a .npy file's data starts and what it holds. */
export interface NpyLayout {
  dtype: NpyDtype | 'float16';
  itemSize: number;
  shape: number[];
  /** Byte offset of the data from the start of the file. */
  dataStart: number;
}

/**
 * The byte offset where a .npy file's header ends (its data starts), from the file's first 12
 * bytes (fewer for a truncated file); throws ProbeDataError when they are not a .npy preamble.
 */
export function npyDataStart(prefix: Uint8Array, totalBytes: number, subject: string): number {
  if (prefix.length < 10 || MAGIC.some((b, i) => prefix[i] !== b)) {
    throw new ProbeDataError(subject, 'not a numpy .npy file, expected the magic bytes "\\x93NUMPY"');
  }
  const major = prefix[6]!;
  const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  let dataStart: number;
  if (major === 1) {
    dataStart = 10 + view.getUint16(8, true);
  } else if (major === 2 || major === 3) {
    if (prefix.length < 12) throw new ProbeDataError(subject, 'truncated header, expected at least 12 bytes');
    dataStart = 12 + view.getUint32(8, true);
  } else {
    throw new ProbeDataError(subject, `unsupported .npy format version ${major}.${prefix[7]}, expected 1.0, 2.0 or 3.0`);
  }
  if (dataStart > totalBytes) throw new ProbeDataError(subject, `truncated header: expected ${dataStart} bytes, got ${totalBytes}`);
  return dataStart;
}

/**
 * Parses a .npy header. `head` holds at least the whole header; `totalBytes` is the length of
 * the whole file, checked against what the header says the data needs.
 */
export function readNpyLayout(head: Uint8Array, totalBytes: number, subject: string): NpyLayout {
  const dataStart = npyDataStart(head, totalBytes, subject);
  const major = head[6]!;
  // Versions 1 and 2 say latin1, 3 says utf8; the keys and values we accept are ASCII either way.
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(head.subarray(major === 1 ? 10 : 12, dataStart));
  const { descriptor, isFortranOrder, shape } = parseHeader(header, subject);
  const format = DESCRIPTORS[descriptor];
  if (!format) throw new ProbeDataError(subject, `unsupported dtype '${descriptor}', expected ${SUPPORTED}`);
  if (isFortranOrder) {
    throw new ProbeDataError(subject, 'array is in Fortran order, expected C order (save np.ascontiguousarray(a))');
  }
  const expectedBytes = shape.reduce((product, d) => product * d, 1) * format.itemSize;
  const actualBytes = totalBytes - dataStart;
  if (actualBytes !== expectedBytes) {
    const what = actualBytes < expectedBytes ? 'truncated data' : 'unexpected trailing data';
    throw new ProbeDataError(subject, `${what}: expected ${expectedBytes} bytes for shape (${shape.join(', ')}), got ${actualBytes}`);
  }
  return { dtype: format.dtype, itemSize: format.itemSize, shape, dataStart };
}

/** Views `buffer` (its own, aligned) as the typed array of `dtype`; float16 becomes float32. */
export function typedNpyArray(dtype: NpyDtype | 'float16', shape: number[], buffer: ArrayBuffer): NpyArray {
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

/** Decodes one .npy file; throws ProbeDataError naming `subject` when the bytes are not a supported array. */
export function decodeNpy(bytes: Uint8Array, subject: string): NpyArray {
  const layout = readNpyLayout(bytes, bytes.length, subject);
  // Copying gives the typed array its own aligned buffer: the data offset inside a file (or a zip
  // entry) need not be a multiple of the element size. Uint8Array's slice, not Buffer's: a Node
  // Buffer's slice is a view whose .buffer is the whole file (or Node's shared pool).
  const buffer = Uint8Array.prototype.slice.call(bytes, layout.dataStart).buffer;
  return typedNpyArray(layout.dtype, layout.shape, buffer);
}

// The header is a Python dict literal written by numpy's format module, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }. Matching its three keys is enough;
// a structured dtype (a list in 'descr') fails the descr pattern and is reported as unsupported.
function parseHeader(header: string, subject: string): { descriptor: string; isFortranOrder: boolean; shape: number[] } {
  const descr = /['"]descr['"]\s*:\s*(['"])([^'"]*)\1/.exec(header);
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header);
  const shapeMatch = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr) {
    const raw = /['"]descr['"]\s*:\s*([^,}]*)/.exec(header)?.[1]?.trim() ?? '?';
    throw new ProbeDataError(subject, `unsupported dtype ${raw}, expected ${SUPPORTED}`);
  }
  if (!fortran || !shapeMatch) {
    throw new ProbeDataError(subject, 'malformed .npy header, expected keys descr, fortran_order and shape');
  }
  const shape: number[] = [];
  for (const part of shapeMatch[1]!.split(',')) {
    const text = part.trim().replace(/L$/, '');
    if (text === '') continue;
    const dim = Number(text);
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw new ProbeDataError(subject, `malformed shape (${shapeMatch[1]}), expected non-negative integers`);
    }
    shape.push(dim);
  }
  return { descriptor: descr[2]!, isFortranOrder: fortran[1] === 'True', shape };
}

/**
 * The most bytes one deflated .npz entry may inflate to (512 MiB). Deflated entries live in memory
 * whole; an archive written by numpy.savez (stored, not savez_compressed) streams without limit.
 */
export const MAX_INFLATED_BYTES = 512 * 1024 * 1024;

/** Decodes a .npz archive (stored or deflated) into arrays keyed by entry name without ".npy". */
export function decodeNpz(bytes: Uint8Array, subject: string): Map<string, NpyArray> {
  let entries: Record<string, Uint8Array>;
  let oversized: { name: string; originalSize: number } | undefined;
  try {
    entries = unzipSync(bytes, {
      filter: (file) => {
        if (file.originalSize > MAX_INFLATED_BYTES) oversized ??= file;
        return file.originalSize <= MAX_INFLATED_BYTES;
      },
    });
  } catch (error) {
    throw new ProbeDataError(subject, 'not a numpy .npz file, expected a zip archive of .npy entries', { cause: error });
  }
  if (oversized) throw new ProbeDataError(`${subject}/${oversized.name}`, `entry inflates to ${oversized.originalSize} bytes, more than the limit of ${MAX_INFLATED_BYTES}`);
  const arrays = new Map<string, NpyArray>();
  for (const [name, entry] of Object.entries(entries)) {
    if (name.endsWith('/')) continue;
    if (!name.endsWith('.npy')) {
      throw new ProbeDataError(`${subject}/${name}`, 'entry is not a .npy array, expected only .npy entries in an .npz');
    }
    arrays.set(name.slice(0, -'.npy'.length), decodeNpy(entry, `${subject}/${name}`));
  }
  return arrays;
}

/** Encodes an array as a .npy file (format 1.0, or 2.0 if the header needs it), as numpy.save would. */
export function encodeNpy(array: NpyArray): Uint8Array {
  const elementCount = array.shape.reduce((product, d) => product * d, 1);
  if (array.data.length !== elementCount) {
    throw new RangeError(`array has ${array.data.length} elements, expected ${elementCount} for shape (${array.shape.join(', ')})`);
  }
  const shapeText = array.shape.length === 1 ? `(${array.shape[0]},)` : `(${array.shape.join(', ')})`;
  const dict = `{'descr': '${DESCRIPTOR_OF[array.dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const isVersion1 = 10 + dict.length + 1 <= 0xffff;
  const prefixLength = isVersion1 ? 10 : 12;
  const unpadded = prefixLength + dict.length + 1;
  const headerLength = Math.ceil(unpadded / HEADER_ALIGN) * HEADER_ALIGN - prefixLength;
  const header = dict.padEnd(headerLength - 1, ' ') + '\n';

  const dataBytes = new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength);
  const out = new Uint8Array(prefixLength + headerLength + dataBytes.length);
  out.set(MAGIC, 0);
  out[6] = isVersion1 ? 1 : 2;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (isVersion1) view.setUint16(8, headerLength, true);
  else view.setUint32(8, headerLength, true);
  for (let i = 0; i < header.length; i++) out[prefixLength + i] = header.charCodeAt(i);
  out.set(dataBytes, prefixLength + headerLength);
  return out;
}

/** Encodes arrays as a .npz archive, entry `name.npy` per key; stored like numpy.savez unless `compressed`. */
export function encodeNpz(entries: Map<string, NpyArray>, options: { compressed?: boolean } = {}): Uint8Array {
  const files: Zippable = {};
  for (const [name, array] of entries) files[`${name}.npy`] = encodeNpy(array);
  return zipSync(files, { level: options.compressed ? 6 : 0 });
}
