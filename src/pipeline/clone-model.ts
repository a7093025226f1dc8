// Copies of models for the stages that change them: structure only, tensors shared (see
// ir/clone-model.ts). Sessions are opened through open-model-session.ts.

export { cloneModel } from '../ir/clone-model.js';
