// External tensor data: files beside the model that hold tensor bytes. Locations are relative to
// the model's folder; anything that could read outside it (absolute, "..") is refused.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { ExternalDataError } from '../errors.js';

/** Resolves an external data location against the model folder, refusing escapes. */
export function resolveExternalLocation(modelDir: string, location: string, subject: string): string {
  if (path.isAbsolute(location) || /^[a-zA-Z]:[\\/]/.test(location)) {
    throw new ExternalDataError(subject, `external data location "${location}" is absolute; expected a path relative to the model's folder`);
  }
  const base = path.resolve(modelDir);
  const full = path.resolve(base, location);
  const rel = path.relative(base, full);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new ExternalDataError(subject, `external data location "${location}" is outside the model's folder; expected a file inside ${base}`);
  }
  // A symlink inside the folder could still point outside it.
  let real: string;
  try {
    real = fs.realpathSync(full);
  } catch (cause) {
    throw new ExternalDataError(subject, `external data file "${location}" does not exist; expected it beside the model in ${base}`, { cause });
  }
  const realBase = fs.realpathSync(base);
  const realRel = path.relative(realBase, real);
  if (realRel.startsWith('..') || path.isAbsolute(realRel)) {
    throw new ExternalDataError(subject, `external data location "${location}" links outside the model's folder`);
  }
  return real;
}

/** Returns a reader of `byteLength` bytes at `offset` of `file`, checked against the file's size now. */
export function externalRangeReader(file: string, offset: number, byteLength: number, subject: string): () => Uint8Array {
  const stat = fs.statSync(file);
  if (!stat.isFile()) throw new ExternalDataError(subject, `external data "${path.basename(file)}" is ${stat.isDirectory() ? 'a folder' : 'not a regular file'}; expected a file of tensor bytes`);
  const size = stat.size;
  if (offset + byteLength > size) {
    throw new ExternalDataError(subject, `external data needs bytes ${offset}..${offset + byteLength} of "${path.basename(file)}", which has ${size}`);
  }
  return () => {
    const out = new Uint8Array(byteLength);
    const fd = fs.openSync(file, 'r');
    try {
      let done = 0;
      while (done < byteLength) {
        const n = fs.readSync(fd, out, done, byteLength - done, offset + done);
        if (n === 0) throw new ExternalDataError(subject, `external data file "${path.basename(file)}" ended early`);
        done += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    return out;
  };
}
