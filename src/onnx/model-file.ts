// Reading and writing model files: paths, external data beside the model, and atomic writes
// (a temporary file renamed into place, so a failed write leaves no partial output).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { CondenseError, FileNotFoundError, FileWriteError, ModelFormatError } from '../errors.js';
import type { Model } from '../ir/model.js';
import { decodeModel } from './decode-model.js';
import { encodeModel } from './encode-model.js';

/** Reads and decodes an ONNX file; external data is read lazily from the file's folder. */
export function loadModel(file: string): Model {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FileNotFoundError(file, { cause });
    if (code === 'EISDIR') throw new ModelFormatError(file, 'is a folder; expected an .onnx file');
    throw new CondenseError('FILE_NOT_FOUND', file, `cannot be read (${code ?? (cause as Error).message})`, { cause });
  }
  if (bytes.byteLength === 0) throw new ModelFormatError(file, 'is empty; expected an ONNX model');
  return decodeModel(bytes, { path: file });
}

export interface SaveOptions {
  /** Tensors of at least this many bytes go to `<file>.data` (default: only past protobuf's 2 GiB limit). */
  externalDataThresholdBytes?: number;
}

const PROTOBUF_LIMIT = 2 ** 31 - 1;

/** Encodes and writes a model atomically; large tensors go to an external data file beside it. */
export function saveModel(model: Model, file: string, options: SaveOptions = {}): void {
  const location = `${path.basename(file)}.data`;
  let threshold = options.externalDataThresholdBytes;
  if (threshold === undefined) threshold = totalTensorBytes(model) > PROTOBUF_LIMIT * 0.9 ? 1024 : Number.POSITIVE_INFINITY;
  const { modelBytes, externalChunks } = encodeModel(model, { externalData: { location, thresholdBytes: threshold } });
  const dataFile = path.join(path.dirname(file), location);
  // Both files are written in full before either is renamed into place, so a failure leaves
  // the previous pair (if any) untouched.
  const staged: { tmp: string; target: string }[] = [];
  try {
    if (externalChunks.length > 0) staged.push({ tmp: writeTemporary(dataFile, externalChunks), target: dataFile });
    staged.push({ tmp: writeTemporary(file, [modelBytes]), target: file });
    for (const s of staged) fs.renameSync(s.tmp, s.target);
  } catch (cause) {
    for (const s of staged) fs.rmSync(s.tmp, { force: true });
    throw new FileWriteError(file, `cannot be written (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
}

function totalTensorBytes(model: Model): number {
  let total = 0;
  for (const v of model.graph.initializers) total += v.initializer?.byteLength ?? 0;
  for (const n of model.graph.walk()) {
    for (const a of n.attributes.values()) if (a.type === 'tensor') total += a.value.byteLength;
  }
  return total;
}

/** Writes chunks to a temporary file beside `file` and returns its path. */
function writeTemporary(file: string, chunks: Uint8Array[]): string {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    for (const c of chunks) fs.writeSync(fd, c);
    fs.fsyncSync(fd);
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw error;
  }
  fs.closeSync(fd);
  return tmp;
}

/** Writes chunks to a temporary file in the target's folder, then renames it over the target. */
export function writeAtomically(file: string, chunks: Uint8Array[]): string {
  const tmp = writeTemporary(file, chunks);
  try {
    fs.renameSync(tmp, file);
  } catch (error) {
    fs.rmSync(tmp, { force: true });
    throw error;
  }
  return file;
}
