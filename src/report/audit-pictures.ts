// The per-layer pictures of an audit as PNG files (`condense audit --png-dir`): names and bytes;
// the caller writes them.

import type { AuditResult } from '../pipeline/audit.js';
import { renderPng, type Figure } from './figure.js';
import { layerFigures } from './layer-figures.js';

export interface Picture {
  fileName: string;
  bytes: Buffer;
}

/** A layer name made safe as a file name (ONNX names may hold '/', ':' and spaces). */
export function fileStem(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_') || 'layer';
}

/**
 * `<layer>-weight-cosine.png`, `<layer>-output-cosine.png` (with probes), `<layer>-cluster-sizes.png`
 * and `<layer>-feature-map.png` (1-D or 2-D inputs) for every layer; names made unique.
 */
export function auditPictures(result: AuditResult): Picture[] {
  const pictures: Picture[] = [];
  const used = new Map<string, number>();
  for (const m of result.layers) {
    let stem = fileStem(m.layer.name);
    const seen = used.get(stem) ?? 0;
    used.set(stem, seen + 1);
    if (seen) stem = `${stem}-${seen + 1}`;
    const f = layerFigures(m);
    const kinds: [string, Figure | undefined][] = [
      ['weight-cosine', f.weightHeatmap],
      ['output-cosine', f.outputHeatmap],
      ['cluster-sizes', f.clusterSizes],
      ['feature-map', f.featureMap],
    ];
    for (const [kind, figure] of kinds) if (figure) pictures.push({ fileName: `${stem}-${kind}.png`, bytes: renderPng(figure) });
  }
  return pictures;
}
