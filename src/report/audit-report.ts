// The audit as data (the JSON report, schema in docs/json-schema.md) and as a terminal table.

import { blockerMessages } from '../analysis/blocker.js';
import type { LayerCondensation } from '../analysis/measure-condensation.js';
import { redundancy } from '../analysis/measure-condensation.js';
import type { ChannelGroup } from '../analysis/channel-groups.js';
import type { AuditResult } from '../pipeline/audit.js';
import { renderTable } from './text-table.js';
import { terminalText } from './escape-text.js';

export const REPORT_SCHEMA_VERSION = 1;

export interface LayerReport {
  name: string;
  op: string;
  activation: string;
  width: number;
  /** Number of static neurons (amplitude below the static threshold). */
  static: number;
  clusters: { weight: number; output: number | null };
  effectiveWidth: { weight: number; output: number | null };
  redundancy: { weight: number; output: number | null };
  clusterSizes: { weight: number[]; output: number[] | null };
  mergeable: boolean;
  /** Why the layer cannot be merged; null when it can. */
  reason: string | null;
  /** The channel group (residual stream) the layer's channels are tied into; null if none. */
  coupledGroup: string | null;
}

export interface GroupReport {
  id: string;
  members: string[];
  ties: string[];
  width: number;
  mergeable: boolean;
  reason: string | null;
}

export interface AuditReport {
  schemaVersion: number;
  kind: 'audit';
  model: { path: string; params: number };
  probe: { samples: number; source: string } | null;
  options: { similarityThreshold: number; staticThreshold: number };
  layers: LayerReport[];
  /** Channel groups: layers whose channels are tied by residual Adds and merge together. */
  groups: GroupReport[];
  notes: string[];
}

function sizes(labels: Int32Array, count: number): number[] {
  const s = new Array<number>(count).fill(0);
  for (const l of labels) if (l >= 0) s[l]!++;
  return s.sort((a, b) => b - a);
}

export function layerReport(m: LayerCondensation, groups: ChannelGroup[] = []): LayerReport {
  const out = m.outputClusters;
  return {
    name: m.layer.name,
    op: m.layer.op,
    activation: m.layer.activation.name,
    width: m.width,
    static: m.staticNeurons.length,
    clusters: { weight: m.weightClusters.count, output: out ? out.count : null },
    effectiveWidth: { weight: m.weightClusters.count, output: out ? out.count : null },
    redundancy: { weight: redundancy(m.weightClusters.count, m.width), output: out ? redundancy(out.count, m.width) : null },
    clusterSizes: { weight: sizes(m.weightClusters.labels, m.weightClusters.count), output: out ? sizes(out.labels, out.count) : null },
    mergeable: m.layer.mergeable,
    reason: m.layer.blockers.length ? blockerMessages(m.layer.blockers).join('; ') : null,
    coupledGroup: groups.find((g) => g.producers.includes(m.layer))?.id ?? null,
  };
}

export function groupReport(g: ChannelGroup): GroupReport {
  return {
    id: g.id,
    members: g.producers.map((p) => p.name),
    ties: g.ties.map((t) => t.label),
    width: g.width,
    mergeable: g.mergeable,
    reason: g.blockers.length ? blockerMessages(g.blockers).join('; ') : null,
  };
}

export function auditReport(result: AuditResult): AuditReport {
  const notes: string[] = [];
  if (result.probeSamples === 0) notes.push('data-free audit: output similarity needs probe data (--probe file.npy or --random N)');
  if (result.layers.length === 0) notes.push('no weight-bearing layers (Gemm, MatMul, Conv with constant weights) were found');
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    kind: 'audit',
    model: { path: result.path, params: result.parameterCount },
    probe: result.probeSamples > 0 ? { samples: result.probeSamples, source: result.probeSource ?? '' } : null,
    options: { similarityThreshold: result.similarityThreshold, staticThreshold: result.staticThreshold },
    layers: result.layers.map((l) => layerReport(l, result.groups)),
    groups: result.groups.map(groupReport),
    notes,
  };
}

const pct = (x: number | null): string => (x === null ? '-' : `${(100 * x).toFixed(0)}%`);

export function formatAuditTable(report: AuditReport): string {
  const t = terminalText;
  const head = `${t(report.model.path)}: ${report.model.params.toLocaleString('en-US')} parameters, ${report.layers.length} layers` +
    (report.probe ? `, ${report.probe.samples} probe samples (${t(report.probe.source)})` : '') +
    `; similarity threshold ${report.options.similarityThreshold}`;
  const table = renderTable(
    [
      { header: 'layer' }, { header: 'op' }, { header: 'activation' }, { header: 'width', align: 'right' }, { header: 'static', align: 'right' },
      { header: 'eff.w', align: 'right' }, { header: 'eff.out', align: 'right' }, { header: 'redund.', align: 'right' }, { header: 'mergeable' },
    ],
    report.layers.map((l) => [
      l.name, l.op, l.activation, String(l.width), String(l.static), String(l.effectiveWidth.weight),
      l.effectiveWidth.output === null ? '-' : String(l.effectiveWidth.output), pct(l.redundancy.output ?? l.redundancy.weight),
      l.mergeable ? 'yes' : l.coupledGroup ? `coupled (${l.coupledGroup})` : `no: ${l.reason}`,
    ]),
  );
  const groups = report.groups.map((g) => t(`${g.id}: channels of ${g.members.join(', ')} are tied by ${g.ties.join(', ')}; ${g.mergeable ? 'merged together where every member agrees' : `not mergeable: ${g.reason}`}`));
  return [head, '', table, ...(groups.length ? ['', ...groups] : []), ...report.notes.map((n) => `note: ${t(n)}`)].join('\n');
}
