// The audit as data (the JSON report, schema in docs/json-schema.md) and as a terminal table.

import { blockerMessages } from '../analysis/blocker.js';
import { describeCoverage, type Coverage } from '../analysis/coverage.js';
import type { UnsupportedLayer } from '../analysis/unsupported-layers.js';
import type { LayerCondensation } from '../analysis/measure-condensation.js';
import { redundancy } from '../analysis/measure-condensation.js';
import type { ChannelGroup } from '../analysis/channel-groups.js';
import type { AuditResult } from '../pipeline/audit.js';
import { renderTable, wrapParagraph, type TableOptions } from './text-table.js';
import { terminalText } from './escape-text.js';
import { attentionLines, attentionReport, type AttentionReport } from './attention-report.js';

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
  /** Output observations (samples x positions) the output measures rest on; null without probes. */
  observations: number | null;
  /** Why the output measures may not be supported by the data (fewer observations than neurons); empty when sound. */
  warnings: string[];
}

export interface GroupReport {
  id: string;
  members: string[];
  ties: string[];
  width: number;
  mergeable: boolean;
  reason: string | null;
  /** A normalisation mixes the group's channels (a transformer's residual stream): never exact, approximate at best. */
  approximateOnly: boolean;
}

/** A weight-bearing op the tool names but cannot measure or rewrite, and why. */
export interface UnsupportedLayerReport {
  name: string;
  op: string;
  width: number;
  code: string;
  reason: string;
}

/** The coverage as the JSON reports carry it (docs/json-schema.md). */
export interface CoverageReport {
  layers: number;
  neurons: number;
  rewritableLayers: number;
  rewritableNeurons: number;
  rewritableShare: number;
  aloneNeurons: number;
  groupedNeurons: number;
  mergeableGroups: number;
  headNeurons: number;
  headBlocks: number;
  approximateGroupNeurons: number;
  approximateGroups: number;
  readoutLayers: number;
  readoutNeurons: number;
  blockers: { code: string; layers: number; neurons: number }[];
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
  /** Attention blocks, per head (docs/json-schema.md); present only when the model has attention. */
  attention?: AttentionReport[];
  notes: string[];
  /** Every layer's warnings, each prefixed with the layer name: figures the data cannot support. */
  warnings: string[];
  /** Integer ops (quantized models) the tool names but cannot measure or rewrite. */
  unsupportedLayers: UnsupportedLayerReport[];
  /** How much of the model prune can rewrite, and what blocks the rest. */
  coverage: CoverageReport;
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
    observations: m.statistics ? m.statistics.count : null,
    warnings: outputWarnings(m),
  };
}

/**
 * Output measures over fewer observations than neurons: the n x m output matrix has rank at most
 * n < m, so the m outputs cannot all be independent and their cosines (uncentred, over few
 * samples) overstate redundancy. The figure says more about the probe set than about the model.
 */
function outputWarnings(m: LayerCondensation): string[] {
  const n = m.statistics?.count;
  if (n === undefined || !m.outputClusters) return [];
  if (n < m.width) {
    return [`output measures rest on ${n} observations, fewer than its ${m.width} neurons: the probe set is rank-deficient for this layer (rank at most ${n}), so output redundancy is not supported; use at least ${m.width} samples`];
  }
  return [];
}

export function groupReport(g: ChannelGroup): GroupReport {
  return {
    id: g.id,
    members: g.producers.map((p) => p.name),
    ties: g.ties.map((t) => t.label),
    width: g.width,
    mergeable: g.mergeable,
    reason: g.blockers.length ? blockerMessages(g.blockers).join('; ') : null,
    // What prune --approximate can merge (residual-stream.ts isApproximatelyMergeable), not merely any group behind a norm.
    approximateOnly: g.approximateOnly,
  };
}

export function unsupportedLayerReport(u: UnsupportedLayer): UnsupportedLayerReport {
  return { name: u.name, op: u.op, width: u.width, code: u.blocker.code, reason: u.blocker.message };
}

export function coverageReport(c: Coverage): CoverageReport {
  return { ...c, rewritableShare: Math.round(c.rewritableShare * 1e4) / 1e4, blockers: c.blockers.map((b) => ({ ...b })) };
}

/** Lines naming the layers the tool cannot measure or rewrite (empty when there are none). */
export function unsupportedLayersText(layers: readonly { name: string; op: string; reason?: string; blocker?: { message: string } }[]): string[] {
  if (!layers.length) return [];
  return ['', ...layers.map((l) => terminalText(`not measured: ${l.name} (${l.op}) ${l.reason ?? l.blocker?.message ?? ''}`))];
}

export function auditReport(result: AuditResult): AuditReport {
  const notes: string[] = [];
  if (result.probeSamples === 0) notes.push('data-free audit: output similarity needs probe data (--probe file.npy or --random N)');
  notes.push(...result.probeNotes);
  if (result.layers.length === 0 && result.unsupportedLayers.length === 0) notes.push('no weight-bearing layers (Gemm, MatMul, Conv with constant weights) were found');
  if (result.layers.length === 0 && result.unsupportedLayers.length > 0) notes.push(`no layers the tool can measure: ${result.unsupportedLayers.length} integer-op layer${result.unsupportedLayers.length === 1 ? '' : 's'} (${[...new Set(result.unsupportedLayers.map((u) => u.op))].join(', ')}) are listed under unsupportedLayers`);
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    kind: 'audit',
    model: { path: result.path, params: result.parameterCount },
    probe: result.probeSamples > 0 ? { samples: result.probeSamples, source: result.probeSource ?? '' } : null,
    options: { similarityThreshold: result.similarityThreshold, staticThreshold: result.staticThreshold },
    layers: result.layers.map((l) => layerReport(l, result.groups)),
    groups: result.groups.map(groupReport),
    ...(result.attention?.length ? { attention: result.attention.map(attentionReport) } : {}),
    notes,
    warnings: result.layers.flatMap((l) => outputWarnings(l).map((w) => `${l.layer.name}: ${w}`)),
    unsupportedLayers: result.unsupportedLayers.map(unsupportedLayerReport),
    coverage: coverageReport(result.coverage),
  };
}

const pct = (x: number | null): string => (x === null ? '-' : `${(100 * x).toFixed(0)}%`);

/** What the mergeable column says: yes, the coupled group it merges with, or no and why. */
export function mergeableText(l: LayerReport): string {
  return l.mergeable ? 'yes' : l.coupledGroup ? `with group ${l.coupledGroup}` : `no: ${l.reason}`;
}

export function formatAuditTable(report: AuditReport, options: TableOptions = {}): string {
  const width = options.width;
  const t = terminalText;
  const head = `${t(report.model.path)}: ${report.model.params.toLocaleString('en-US')} parameters, ${report.layers.length} layers` +
    (report.probe ? `, ${report.probe.samples} probe samples (${t(report.probe.source)})` : ', no probe data (weight measures only)') +
    `; similarity threshold ${report.options.similarityThreshold}`;
  const warned = new Set(report.layers.filter((l) => l.warnings.length).map((l) => l.name));
  const table = renderTable(
    [
      { header: 'layer', elide: true }, { header: 'op', elide: true }, { header: 'activation', elide: true }, { header: 'width', align: 'right' }, { header: 'static', align: 'right' },
      { header: 'w.eff', align: 'right' }, { header: 'w.red', align: 'right' }, { header: 'out.eff', align: 'right' }, { header: 'out.red', align: 'right' }, { header: 'mergeable', wrap: true },
    ],
    report.layers.map((l) => [
      l.name, l.op, l.activation, String(l.width), String(l.static),
      String(l.effectiveWidth.weight), pct(l.redundancy.weight),
      l.effectiveWidth.output === null ? '-' : `${l.effectiveWidth.output}${warned.has(l.name) ? '!' : ''}`,
      l.redundancy.output === null ? '-' : `${pct(l.redundancy.output)}${warned.has(l.name) ? '!' : ''}`,
      mergeableText(l),
    ]),
    options,
  );
  const legend = 'w.eff / w.red: effective width and redundancy of the input weights (no data needed); out.eff / out.red: the same from output statistics over the probe samples (- without probes)' +
    (warned.size ? '; ! marks output figures the data cannot support (see warnings)' : '');
  const groups = report.groups.map((g) => t(`${g.id}${g.approximateOnly ? ' (approximate only)' : ''}: channels of ${g.members.join(', ')} are tied by ${g.ties.join(', ')}; ${g.mergeable ? 'merged together where every member agrees' : `not mergeable: ${g.reason}`}`));
  return [
    head, '', table, '', legend,
    ...(groups.length ? ['', ...groups] : []),
    ...(report.attention?.length ? ['', ...attentionLines(report.attention).map(t)] : []),
    ...unsupportedLayersText(report.unsupportedLayers ?? []),
    ...(report.coverage ? ['', t(describeCoverage(report.coverage))] : []),
    ...report.warnings.map((w) => `warning: ${t(w)}`),
    ...report.notes.map((n) => `note: ${t(n)}`),
  ].map((line) => (line.includes('\n') ? line : wrapParagraph(line, width))).join('\n');
}
