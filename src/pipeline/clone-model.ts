// Bytes for onnxruntime. Copies of models come from ir/clone-model.ts (structure only, tensors
// shared); a model is encoded only when a session needs it.

import { encodeModel } from '../onnx/encode-model.js';
import type { Model } from '../ir/model.js';

export { cloneModel } from '../ir/clone-model.js';

/** The model as bytes onnxruntime can load. */
export function modelBytes(model: Model): Uint8Array {
  return encodeModel(model).modelBytes;
}
