// The public API of onnx-condense: what users import and what cli/ is built on.

export * from './errors.js';
export { DataType, dataTypeName } from './ir/data-type.js';
export { Tensor } from './ir/tensor.js';
export { Value, type Dim, type ValueType, type Use } from './ir/value.js';
export { Node, type Attribute, type AttributeValue } from './ir/node.js';
export { Graph, type NodeSpec } from './ir/graph.js';
export { Model, type OpsetImport } from './ir/model.js';
export { decodeModel, decodeTensorFile } from './onnx/decode-model.js';
export { encodeModel, encodeTensorFile } from './onnx/encode-model.js';
export { loadModel, saveModel } from './onnx/model-file.js';
export { ModelSession, listDevices, DEVICES, type Device, type SessionOptions } from './runtime/model-session.js';
export type { HostTensor } from './runtime/host-tensor.js';
export { loadProbeFiles, randomProbes, type ProbeOptions, type ProbeSet } from './runtime/probe-data.js';
export { decodeNpy, decodeNpz, encodeNpy, encodeNpz, type NpyArray } from './runtime/npy.js';
export { findLayers, type NeuronLayer, type Consumer } from './analysis/find-layers.js';
export { measureCondensation, redundancy, type AnalysisOptions, type LayerCondensation } from './analysis/measure-condensation.js';
export { clusterNeurons } from './analysis/cluster/cluster-neurons.js';
export { planMerges, type MergePlan, type MergeOptions, type LayerMergePlan } from './rewrite/plan-merges.js';
export { applyMergePlan } from './rewrite/apply-merge-plan.js';
export { cleanUp } from './rewrite/clean-up.js';
export { audit, type AuditOptions, type AuditResult } from './pipeline/audit.js';
export { prune, type PruneOptions, type PruneResult } from './pipeline/prune.js';
export { inspect, type InspectResult } from './pipeline/inspect.js';
export { compareModels, type Fidelity, type VerifyOptions } from './pipeline/verify-rewrite.js';
export { auditReport, formatAuditTable, layerReport, type AuditReport, type LayerReport } from './report/audit-report.js';
export { pruneReport, formatPruneSummary, type PruneReport } from './report/prune-report.js';
export { inspectReport, formatInspect } from './report/inspect-report.js';
