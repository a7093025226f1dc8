// A Model: the ModelProto header (IR version, opset imports, producer, metadata) around the main
// graph. Model-level parts the IR does not model (functions, training info) stay encoded.

import type { Graph } from './graph.js';

export interface OpsetImport {
  domain: string;
  version: number;
}

export class Model {
  irVersion = 8;
  opsetImports: OpsetImport[] = [];
  producerName = '';
  producerVersion = '';
  domain = '';
  modelVersion = 0;
  docString = '';
  metadataProps: { key: string; value: string }[] = [];
  graph: Graph;
  /** FunctionProto and TrainingInfoProto entries, kept as encoded bytes so they round-trip. */
  opaque: { functions: Uint8Array[]; trainingInfo: Uint8Array[] } = { functions: [], trainingInfo: [] };

  constructor(graph: Graph) {
    this.graph = graph;
  }

  /** The opset version imported for a domain ('' is the default ONNX domain). */
  opsetVersion(domain = ''): number | undefined {
    const d = domain === 'ai.onnx' ? '' : domain;
    return this.opsetImports.find((o) => (o.domain === 'ai.onnx' ? '' : o.domain) === d)?.version;
  }

  /** Number of scalar parameters held by constant tensors (initializers and Constant nodes). */
  parameterCount(): number {
    let count = 0;
    const visit = (g: Graph): void => {
      for (const v of g.initializers) count += v.initializer?.elementCount ?? 0;
      for (const n of g.nodes) {
        if (n.is('Constant')) count += n.outputs[0]?.constantTensor()?.elementCount ?? 0;
        n.subgraphs().forEach(visit);
      }
    };
    visit(this.graph);
    return count;
  }
}
