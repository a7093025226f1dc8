// A deep copy of a model through the codec: the runtime and rewrite stages change copies, never
// the caller's model. Names are unchanged, so values are found again by name.

import { decodeModel } from '../onnx/decode-model.js';
import { encodeModel } from '../onnx/encode-model.js';
import type { Model } from '../ir/model.js';

export function cloneModel(model: Model): Model {
  return decodeModel(encodeModel(model).modelBytes);
}

/** The model as bytes onnxruntime can load. */
export function modelBytes(model: Model): Uint8Array {
  return encodeModel(model).modelBytes;
}
