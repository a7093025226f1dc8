// The prune result as data (JSON) and as a terminal summary.

import type { PruneResult } from '../pipeline/prune.js';
import type { LayerMergePlan } from '../rewrite/plan-merges.js';
import { REPORT_SCHEMA_VERSION } from './audit-report.js';
import { renderTable, wrapParagraph, type TableOptions } from './text-table.js';
import { terminalText } from './escape-text.js';

export interface PruneReport {
  schemaVersion: number;
  kind: 'prune';
  input: string;
  output: string | null;
  params: { before: number; after: number };
  neurons: { before: number; after: number };
  fidelity: { maxAbsError: number; maxRelError: number; top1Agreement: number | null; samples: number; maxError: number };
  probe: string;
  /** Where the held-out samples the fidelity was measured on come from. */
  holdout: string;
  notes: string[];
  layers: { name: string; width: number; widthAfter: number; merges: LayerMergePlan['merges']; statics: LayerMergePlan['statics']; refit: boolean }[];
  /** Channel groups merged together (every member layer loses the same channels). */
  groups: { name: string; members: string[]; width: number; widthAfter: number; merges: LayerMergePlan['merges']; statics?: number; refit?: boolean }[];
  /** Whole duplicate attention heads merged; present only for models with such heads. */
  heads?: {
    block: string; form: string; heads: number; headsAfter: number; headSize: number; projections: string[]; output: string; merges: { head: number; into: number }[];
    /** Neuron merges inside the heads that stay (the same number in each); absent when none. */
    withinHead?: { headSizeAfter: number; valueHeadSizeAfter: number; queryKeyMerges: number; valueOutputMerges: number; notApplied: string[] };
  }[];
}

export function pruneReport(r: PruneResult): PruneReport {
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    kind: 'prune',
    input: r.input,
    output: r.output,
    params: r.params,
    neurons: r.neurons,
    fidelity: { maxAbsError: r.fidelity.maxAbsError, maxRelError: r.fidelity.maxRelError, top1Agreement: r.fidelity.top1Agreement, samples: r.fidelity.samples, maxError: r.maxError },
    probe: r.probeSource,
    holdout: r.holdoutSource,
    notes: r.probeNotes,
    layers: r.plan.layers.map((lp) => ({ name: lp.layer, width: lp.width, widthAfter: lp.widthAfter, merges: lp.merges, statics: lp.statics, refit: !!lp.refit })),
    groups: r.plan.groups.map((gp) => ({ name: gp.group, members: gp.members, width: gp.width, widthAfter: gp.widthAfter, merges: gp.merges, ...(gp.statics.length ? { statics: gp.statics.length } : {}), ...(gp.refit ? { refit: true } : {}) })),
    ...(r.plan.heads?.length ? { heads: r.plan.heads.map((hp) => ({ block: hp.block, form: hp.form, heads: hp.heads, headsAfter: hp.headsAfter, headSize: hp.headSize, projections: hp.projections, output: hp.output, merges: hp.merges.map((m) => ({ head: m.head, into: m.into })), ...(hp.withinHead ? { withinHead: { headSizeAfter: hp.withinHead.headSizeAfter, valueHeadSizeAfter: hp.withinHead.valueHeadSizeAfter, queryKeyMerges: hp.withinHead.queryKey.length, valueOutputMerges: hp.withinHead.valueOutput.length, notApplied: hp.withinHead.notApplied } } : {}) })) } : {}),
  };
}

export function formatPruneSummary(report: PruneReport, options: TableOptions = {}): string {
  const p = report.params;
  const saved = p.before ? (100 * (1 - p.after / p.before)).toFixed(1) : '0';
  const f = report.fidelity;
  const lines = [
    `${terminalText(report.input)} -> ${report.output === null ? '(dry run, nothing written)' : terminalText(report.output)}`,
    `parameters ${p.before.toLocaleString('en-US')} -> ${p.after.toLocaleString('en-US')} (-${saved}%), neurons ${report.neurons.before} -> ${report.neurons.after}`,
    `verified on ${f.samples} held-out samples (${terminalText(report.holdout)}): max abs error ${f.maxAbsError.toExponential(2)}, max rel error ${f.maxRelError.toExponential(2)} (limit ${f.maxError})` +
      (f.top1Agreement === null ? '' : `, top-1 agreement ${(100 * f.top1Agreement).toFixed(2)}%`),
  ];
  const heads = report.heads ?? [];
  if (report.layers.length === 0 && report.groups.length === 0) {
    if (heads.length === 0) lines.push('no layer had neurons to merge');
  } else {
    lines.push('', renderTable(
      [{ header: 'layer', elide: true }, { header: 'width', align: 'right' }, { header: 'after', align: 'right' }, { header: 'merged', align: 'right' }, { header: 'static', align: 'right' }, { header: 'mode' }],
      [
        ...report.layers.map((l) => [l.name, String(l.width), String(l.widthAfter), String(l.merges.length), String(l.statics.length), l.refit ? 'least-squares refit' : 'exact']),
        ...report.groups.map((g) => [`${g.name} (${g.members.join(', ')})`, String(g.width), String(g.widthAfter), String(g.merges.length), String(g.statics ?? 0), g.refit ? 'least-squares refit, coupled' : 'exact, coupled']),
      ],
      options,
    ));
  }
  if (heads.length) lines.push('');
  for (const h of heads) {
    const dup = h.merges.length ? `heads ${h.heads} -> ${h.headsAfter}, exact: ${h.merges.map((m) => `head ${m.head} into ${m.into}`).join(', ')}` : `${h.heads} heads kept`;
    const w = h.withinHead;
    const inner = w ? `; within heads, exact: head size ${h.headSize} -> ${w.headSizeAfter} (${w.queryKeyMerges} Q/K merges), value head size -> ${w.valueHeadSizeAfter} (${w.valueOutputMerges} V/O merges)${w.notApplied.length ? `; left: ${w.notApplied.join('; ')}` : ''}` : '';
    lines.push(terminalText(`attention ${h.block} (${h.form}; ${h.projections.join(', ')} -> ${h.output}): ${dup}${inner}`));
  }
  lines.push(...report.notes.map((n) => `note: ${n}`));
  // The first line (input -> output) stays whole, so the paths can be copied.
  return lines.map((l, i) => (i === 0 || l.includes('\n') ? l : wrapParagraph(l, options.width))).join('\n');
}
