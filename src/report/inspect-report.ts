// The inspect result as data (JSON) and as text.

import { blockerMessages } from '../analysis/blocker.js';
import { describeCoverage } from '../analysis/coverage.js';
import type { InspectResult } from '../pipeline/inspect.js';
import { REPORT_SCHEMA_VERSION, coverageReport, groupReport, unsupportedLayerReport, unsupportedLayersText } from './audit-report.js';
import { renderTable, wrapParagraph, type TableOptions } from './text-table.js';
import { terminalText } from './escape-text.js';

export function inspectReport(r: InspectResult) {
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    kind: 'inspect' as const,
    model: { path: r.path, irVersion: r.irVersion, opsetImports: r.opsetImports, producer: r.producer, params: r.parameterCount, nodes: r.nodeCount },
    inputs: r.inputs,
    outputs: r.outputs,
    ops: r.opCounts,
    layers: r.layers.map((l) => ({ name: l.name, op: l.op, activation: l.activation.name, width: l.width, consumers: l.consumers.map((c) => c.node.label), mergeable: l.mergeable, reason: l.blockers.length ? blockerMessages(l.blockers).join('; ') : null, coupledGroup: r.groups.find((g) => g.producers.includes(l))?.id ?? null })),
    groups: r.groups.map(groupReport),
    unsupportedLayers: r.unsupportedLayers.map(unsupportedLayerReport),
    coverage: coverageReport(r.coverage),
  };
}

export function formatInspect(r: ReturnType<typeof inspectReport>, options: TableOptions = {}): string {
  const m = r.model;
  const t = terminalText;
  return [
    `${t(m.path)}: ONNX IR ${m.irVersion}, opsets ${m.opsetImports.map((o) => `${t(o.domain || 'ai.onnx')} ${o.version}`).join(', ')}${m.producer ? `, from ${t(m.producer)}` : ''}`,
    `${m.nodes} nodes, ${m.params.toLocaleString('en-US')} parameters`,
    `inputs: ${r.inputs.map((i) => `${t(i.name)} ${t(i.type)}`).join(', ')}`,
    `outputs: ${r.outputs.map((o) => `${t(o.name)} ${t(o.type)}`).join(', ')}`,
    `ops: ${r.ops.map((o) => `${t(o.opType)} ${o.count}`).join(', ')}`,
    '',
    r.layers.length === 0 ? (r.unsupportedLayers.length ? 'no layers the tool can measure' : 'no weight-bearing layers found') : renderTable(
      [{ header: 'layer', elide: true }, { header: 'op', elide: true }, { header: 'activation' }, { header: 'width', align: 'right' }, { header: 'mergeable', wrap: true }],
      r.layers.map((l) => [l.name, l.op, l.activation, String(l.width), l.mergeable ? 'yes' : l.coupledGroup ? `with group ${l.coupledGroup}` : `no: ${l.reason}`]),
      options,
    ),
    ...(r.groups.length ? ['', ...r.groups.map((g) => t(`${g.id}${g.approximateOnly ? ' (approximate only)' : ''}: channels of ${g.members.join(', ')} are tied by ${g.ties.join(', ')}; ${g.mergeable ? 'merged together where every member agrees' : `not mergeable: ${g.reason}`}`))] : []),
    ...unsupportedLayersText(r.unsupportedLayers),
    '',
    t(describeCoverage(r.coverage)),
  ].map((l) => (l.includes('\n') ? l : wrapParagraph(l, options.width))).join('\n');
}
