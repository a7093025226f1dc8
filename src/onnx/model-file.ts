// Reading and writing model files: paths, external data beside the model, and atomic writes
// (a temporary file renamed into place, so a failed write leaves no partial output).

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CondenseError, FileNotFoundError, FileWriteError, ModelFormatError, OptionError } from '../errors.js';
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

// Temporary files of a write: `.<name>.condense-tmp-<pid>-<random>`, so an interrupted write
// (kill -9, power loss) leaves a file the next write to that folder recognises and removes.
const TEMPORARY = /^\..+\.condense-tmp-(\d+)-[0-9a-f]+$/;
/** A temporary file this old is stale even if its pid is alive again (pids are reused). */
const STALE_AFTER_MS = 24 * 3600 * 1000;

/** Writes chunks to a temporary file beside `file` and returns its path. */
function writeTemporary(file: string, chunks: Uint8Array[]): string {
  removeStaleTemporaries(path.dirname(file));
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.condense-tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = fs.openSync(tmp, 'wx');
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

/** Removes temporary files of writes whose process is gone, or that are older than a day. */
export function removeStaleTemporaries(folder: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(folder);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = TEMPORARY.exec(name);
    if (!m) continue;
    const file = path.join(folder, name);
    try {
      const stat = fs.lstatSync(file);
      if (!stat.isFile()) continue;
      if (isAlive(Number(m[1])) && Date.now() - stat.mtimeMs < STALE_AFTER_MS) continue;
      fs.rmSync(file, { force: true });
      removed.push(file);
    } catch {
      // Another process removed or renamed it first: nothing left to clean.
    }
  }
  return removed;
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Every file a model file uses: itself and the external data files its tensors name. */
export function modelFiles(model: Model, file: string): string[] {
  const folder = path.dirname(file);
  const files = new Set<string>([file]);
  const add = (location: string | undefined): void => {
    if (location !== undefined) files.add(path.join(folder, location));
  };
  for (const v of model.graph.initializers) add(v.initializer?.externalLocation);
  for (const n of model.graph.walk()) {
    for (const a of n.attributes.values()) if (a.type === 'tensor') add(a.value.externalLocation);
  }
  for (const n of model.graph.walk()) for (const g of n.subgraphs()) for (const v of g.initializers) add(v.initializer?.externalLocation);
  return [...files];
}

/**
 * Checks that writing a model to `output` (and, unless withExternalData is false, its external data
 * to `<output>.data`) touches none
 * of `inputs` (compared by device and inode, so links and other spellings of a path count), and
 * that `output` is a regular file or absent in an existing folder. Throws OptionError naming `option`.
 */
export function checkOutputPath(output: string, inputs: string[], option = 'output', options: { withExternalData?: boolean } = {}): void {
  if (!output) throw new OptionError(option, 'is required: expected a path for the model to write');
  const identity = (file: string): string | undefined => {
    try {
      const stat = fs.statSync(file);
      return `${stat.dev}:${stat.ino}`;
    } catch {
      return undefined;
    }
  };
  const used = new Map<string, string>();
  for (const input of inputs) {
    const id = identity(input);
    if (id !== undefined) used.set(id, input);
  }
  const folder = path.dirname(path.resolve(output));
  if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) throw new OptionError(option, `folder "${folder}" does not exist`);
  for (const target of options.withExternalData === false ? [output] : [output, `${output}.data`]) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(target);
    } catch {
      continue;
    }
    if (!stat.isFile()) {
      throw new OptionError(option, `"${target}" is not a regular file (${stat.isDirectory() ? 'a folder' : 'a device, pipe or socket'}); expected a new file or one to replace`);
    }
    const input = used.get(`${stat.dev}:${stat.ino}`);
    if (input !== undefined) {
      const what = input === inputs[0] ? 'is the input model' : `is a file the input model uses (${input})`;
      throw new OptionError(option, `"${target}" ${what}; condense never overwrites its input: expected another path`);
    }
  }
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
