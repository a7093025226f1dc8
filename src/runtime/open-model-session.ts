// onnxruntime sessions for in-memory models of any size. A small model goes to the runtime as
// encoded bytes; one whose tensors would strain protobuf's 2 GiB message limit is written to a
// temporary folder with its tensors in an external data file, loaded from there, and the folder
// is removed again: no single buffer ever holds the whole model.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Model } from '../ir/model.js';
import { encodeModel } from '../onnx/encode-model.js';
import { saveModel } from '../onnx/model-file.js';
import { ModelSession, type SessionOptions } from './model-session.js';

export interface StagingOptions {
  /**
   * Models whose tensors hold more bytes than this are staged in a temporary folder instead of
   * being encoded in memory (default 1 GiB: well inside protobuf's 2 GiB limit, which encoding
   * also needs working room under).
   */
  inMemoryLimitBytes?: number;
}

export const IN_MEMORY_LIMIT_BYTES = 2 ** 30;
// Tensors of at least this size go to the external data file of a staged model.
const EXTERNAL_TENSOR_BYTES = 1024;

/** A session on `model`, from bytes or, past the in-memory limit, from a staged file (see above). */
export async function openModelSession(model: Model, subject: string, options: SessionOptions = {}, staging: StagingOptions = {}): Promise<ModelSession> {
  const limit = staging.inMemoryLimitBytes ?? IN_MEMORY_LIMIT_BYTES;
  if (tensorByteLength(model) <= limit) return ModelSession.create(encodeModel(model).modelBytes, subject, options);
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-condense-'));
  try {
    const file = path.join(folder, 'model.onnx');
    saveModel(model, file, { externalDataThresholdBytes: EXTERNAL_TENSOR_BYTES });
    return await ModelSession.create(file, subject, options);
  } finally {
    removeFolder(folder);
  }
}

/** Bytes held by the model's constant tensors, in every graph (initializers and tensor attributes). */
export function tensorByteLength(model: Model): number {
  let total = 0;
  const graphs = [model.graph];
  for (const node of model.graph.walk()) graphs.push(...node.subgraphs());
  for (const g of graphs) for (const v of g.initializers) total += v.initializer?.byteLength ?? 0;
  for (const node of model.graph.walk()) {
    for (const a of node.attributes.values()) {
      if (a.type === 'tensor') total += a.value.byteLength;
      else if (a.type === 'tensors') for (const t of a.value) total += t.byteLength;
    }
  }
  return total;
}

// The session holds what it needs once created (read into memory, or mapped: an unlinked file
// stays readable while mapped), so the folder can go at once. Where a system refuses to remove
// an open file, it goes when the process exits.
function removeFolder(folder: string): void {
  try {
    fs.rmSync(folder, { recursive: true, force: true });
  } catch {
    process.once('exit', () => fs.rmSync(folder, { recursive: true, force: true }));
  }
}
