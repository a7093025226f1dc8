// The prune result as data (JSON) and as a terminal summary.

import type { PruneResult } from '../pipeline/prune.js';
import type { LayerMergePlan } from '../rewrite/plan-merges.js';
import type { StreamMerge } from '../rewrite/plan-stream-merges.js';
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
  groups: {
    name: string; members: string[]; width: number; widthAfter: number; merges: LayerMergePlan['merges']; statics?: number; refit?: boolean;
    /** A residual stream merged approximately (never exact): channels folded into kept ones, dead channels, whether RMSNorms were rescaled. */
    residualStream?: StreamMerge;
  }[];
  /** True when nothing could be removed: no copy was verified or written (output is null). */
  nothingToMerge: boolean;
  /** A budgeted prune (--max-error, --target-*, --min-top1, --sweep): how the search decided. */
  budget?: BudgetReport;
  /** Whole duplicate attention heads merged; present only for models with such heads. */
  heads?: {
    block: string; form: string; heads: number; headsAfter: number; headSize: number; projections: string[]; output: string; merges: { head: number; into: number }[];
    /** Neuron merges inside the heads that stay (the same number in each); absent when none. */
    withinHead?: { headSizeAfter: number; valueHeadSizeAfter: number; queryKeyMerges: number; valueOutputMerges: number; notApplied: string[] };
  }[];
}

export interface BudgetReport {
  /** The limits asked for (null: not given). */
  maxError: number | null;
  minTop1: number | null;
  maxAccuracyDrop: number | null;
  targetParams: number | null;
  targetFlops: number | null;
  decidedBy: string;
  /** Verification runs the search made on the held-out samples. */
  verifications: number;
  /** Multiply-add FLOPs per sample of the layers condense finds, before and after. */
  flops: { before: number; after: number };
  accuracy: { original: number; rewritten: number } | null;
  /** Neurons removed that were constant on the fit probes only (not provably constant everywhere). */
  constantOnProbes: number;
  /** sensitivityMeasured false: not verified alone (a deep model calibrates its 24 largest candidates; the rest take their typical value). */
  layers: { name: string; kind: string; width: number; widthAfter: number; removedApproximately: number; sensitivity: number; sensitivityMeasured: boolean; errorAlone: number | null }[];
  /** When no removal beyond the exact merges met the budget: what the cheapest costs, and where. */
  cheapest: { name: string; maxRelError: number; top1Agreement: number | null } | null;
  /** The trade-off curve (--sweep): reduction against verified error at each budget, monotone. */
  sweep: { budget: number; paramsRemoved: number; flopsRemoved: number; maxRelError: number; top1Agreement: number | null; neuronsAfter: number; widths: Record<string, number> }[] | null;
}

function budgetReport(r: PruneResult): BudgetReport | undefined {
  const s = r.search;
  if (!s) return undefined;
  const b = s.budget;
  return {
    maxError: b.maxError ?? null,
    minTop1: b.minTop1 ?? null,
    maxAccuracyDrop: b.maxAccuracyDrop ?? null,
    targetParams: b.targetParams ?? null,
    targetFlops: b.targetFlops ?? null,
    decidedBy: s.decidedBy,
    verifications: s.verifications,
    flops: s.flops,
    accuracy: r.fidelity.accuracy ?? null,
    constantOnProbes: s.constantOnProbes,
    layers: s.candidates.map((c) => ({ name: c.name, kind: c.kind, width: c.width, widthAfter: c.widthAfter, removedApproximately: c.removed, sensitivity: c.sensitivity, sensitivityMeasured: c.calibrated, errorAlone: c.errorAlone })),
    cheapest: s.cheapest ?? null,
    sweep: s.curve ?? null,
  };
}

export function pruneReport(r: PruneResult): PruneReport {
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    kind: 'prune',
    input: r.input,
    output: r.output,
    params: r.params,
    neurons: r.neurons,
    // A budget without a relative-error bound (a target, --min-top1) has maxError Infinity, which JSON cannot hold.
    fidelity: { maxAbsError: r.fidelity.maxAbsError, maxRelError: r.fidelity.maxRelError, top1Agreement: r.fidelity.top1Agreement, samples: r.fidelity.samples, maxError: Number.isFinite(r.maxError) ? r.maxError : (null as unknown as number) },
    probe: r.probeSource,
    holdout: r.holdoutSource,
    notes: r.probeNotes,
    layers: r.plan.layers.map((lp) => ({ name: lp.layer, width: lp.width, widthAfter: lp.widthAfter, merges: lp.merges, statics: lp.statics, refit: !!lp.refit })),
    groups: r.plan.groups.map((gp) => ({ name: gp.group, members: gp.members, width: gp.width, widthAfter: gp.widthAfter, merges: gp.merges, ...(gp.statics.length ? { statics: gp.statics.length } : {}), ...(gp.refit ? { refit: true } : {}), ...(gp.stream ? { residualStream: gp.stream } : {}) })),
    nothingToMerge: r.nothingToMerge,
    ...(r.search ? { budget: budgetReport(r)! } : {}),
    ...(r.plan.heads?.length ? { heads: r.plan.heads.map((hp) => ({ block: hp.block, form: hp.form, heads: hp.heads, headsAfter: hp.headsAfter, headSize: hp.headSize, projections: hp.projections, output: hp.output, merges: hp.merges.map((m) => ({ head: m.head, into: m.into })), ...(hp.withinHead ? { withinHead: { headSizeAfter: hp.withinHead.headSizeAfter, valueHeadSizeAfter: hp.withinHead.valueHeadSizeAfter, queryKeyMerges: hp.withinHead.queryKey.length, valueOutputMerges: hp.withinHead.valueOutput.length, notApplied: hp.withinHead.notApplied } } : {}) })) } : {}),
  };
}

export function formatPruneSummary(report: PruneReport, options: TableOptions = {}): string {
  const p = report.params;
  const saved = p.before ? (100 * (1 - p.after / p.before)).toFixed(1) : '0';
  const f = report.fidelity;
  if (report.budget?.sweep) return formatSweep(report, options);
  if (report.nothingToMerge && report.budget) {
    const b = report.budget;
    const cheapest = b.cheapest ? `; the cheapest removal (in ${b.cheapest.name}) already gives a verified error of ${b.cheapest.maxRelError.toExponential(2)}, the smallest error reachable beyond the exact merges, dominated by ${b.cheapest.name}` : '';
    return [
      `${terminalText(report.input)}: nothing to merge within the budget (${budgetText(b)}), so no copy was written`,
      wrapParagraph(`${b.verifications} verification runs on the held-out samples (${terminalText(report.holdout)})${cheapest}`, options.width),
    ].join('\n');
  }
  if (report.nothingToMerge) {
    return [
      `${terminalText(report.input)}: nothing to merge, so no copy was verified or written`,
      wrapParagraph(`parameters ${p.before.toLocaleString('en-US')}, neurons ${report.neurons.before}: no neuron is an exact multiple, copy or negation of another within the exact tolerance and none is constant; try a budget (--max-error, --target-params) to remove neurons approximately`, options.width),
      ...report.notes.map((n) => wrapParagraph(`note: ${n}`, options.width)),
    ].join('\n');
  }
  const lines = [
    `${terminalText(report.input)} -> ${report.output === null ? '(dry run, nothing written)' : terminalText(report.output)}`,
    `parameters ${p.before.toLocaleString('en-US')} -> ${p.after.toLocaleString('en-US')} (-${saved}%), neurons ${report.neurons.before} -> ${report.neurons.after}`,
    `verified on ${f.samples} held-out samples (${terminalText(report.holdout)}): max abs error ${f.maxAbsError.toExponential(2)}, max rel error ${f.maxRelError.toExponential(2)} (limit ${f.maxError})` +
      (f.top1Agreement === null ? '' : `, top-1 agreement ${(100 * f.top1Agreement).toFixed(2)}%`),
  ];
  const heads = report.heads ?? [];
  if (report.budget) {
    const b = report.budget;
    const fl = b.flops;
    lines[1] += `, FLOPs ${fl.before.toLocaleString('en-US')} -> ${fl.after.toLocaleString('en-US')} (-${fl.before ? (100 * (1 - fl.after / fl.before)).toFixed(1) : '0'}%)`;
    lines[2] = `verified on ${f.samples} held-out samples never used to fit (${terminalText(report.holdout)}): max rel error ${f.maxRelError.toExponential(2)}` +
      (f.top1Agreement === null ? '' : `, top-1 agreement ${(100 * f.top1Agreement).toFixed(2)}%`) +
      (b.accuracy ? `, accuracy ${(100 * b.accuracy.original).toFixed(2)}% -> ${(100 * b.accuracy.rewritten).toFixed(2)}%` : '');
    lines.push(`budget: ${budgetText(b)}; decided by ${b.decidedBy}, ${b.verifications} verification runs`);
    const groupMembers = new Map(report.groups.map((g) => [g.name, g.members.join(', ')]));
    const candidateNames = new Set(b.layers.filter((l) => l.kind !== 'layer').map((l) => l.name));
    lines.push('', renderTable(
      [{ header: 'layer', elide: true }, { header: 'width', align: 'right' }, { header: 'after', align: 'right' }, { header: 'refit-removed', align: 'right' }, { header: 'sensitivity', align: 'right' }, { header: 'error alone', align: 'right' }],
      [
        // Layers and groups the plan narrows; the rest (measured, uncut) are in the JSON.
        ...b.layers.filter((l) => l.widthAfter < l.width).map((l) => [l.kind !== 'layer' ? `${l.name} (${l.kind === 'residual stream' ? 'residual stream: ' : ''}${groupMembers.get(l.name) ?? ''})` : l.name, String(l.width), String(l.widthAfter), String(l.removedApproximately), `${l.sensitivityMeasured ? '' : '~'}${l.sensitivity.toPrecision(3)}`, l.errorAlone === null ? '-' : l.errorAlone.toExponential(2)]),
        // Groups without statistics for a refit merge exactly only.
        ...report.groups.filter((g) => !candidateNames.has(g.name)).map((g) => [`${g.name} (${g.members.join(', ')})`, String(g.width), String(g.widthAfter), '0 (exact, coupled)', '-', '-']),
      ],
      options,
    ));
    if (b.constantOnProbes) lines.push(`note: ${b.constantOnProbes} removed neuron${b.constantOnProbes === 1 ? ' was' : 's were'} constant on the fit probes only (not provably constant on every input); their mean went into the next bias`);
  } else if (report.layers.length === 0 && report.groups.length === 0) {
    if (heads.length === 0) lines.push('no layer had neurons to merge');
  } else {
    lines.push('', renderTable(
      [{ header: 'layer', elide: true }, { header: 'width', align: 'right' }, { header: 'after', align: 'right' }, { header: 'merged', align: 'right' }, { header: 'static', align: 'right' }, { header: 'mode' }],
      [
        ...report.layers.map((l) => [l.name, String(l.width), String(l.widthAfter), String(l.merges.length), String(l.statics.length), l.refit ? 'least-squares refit' : 'exact']),
        ...report.groups.map((g) => g.residualStream
          ? [`${g.name} (residual stream: ${g.members.join(', ')})`, String(g.width), String(g.widthAfter), String(g.residualStream.folds.length), String(g.residualStream.lowAmplitude.length), 'approximate, residual stream']
          : [`${g.name} (${g.members.join(', ')})`, String(g.width), String(g.widthAfter), String(g.merges.length), String(g.statics ?? 0), g.refit ? 'least-squares refit, coupled' : 'exact, coupled']),
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

function budgetText(b: BudgetReport): string {
  const parts: string[] = [];
  if (b.maxError !== null) parts.push(`max rel error ${b.maxError}`);
  if (b.minTop1 !== null) parts.push(`top-1 agreement >= ${b.minTop1}`);
  if (b.maxAccuracyDrop !== null) parts.push(`accuracy drop <= ${b.maxAccuracyDrop}`);
  if (b.targetParams !== null) parts.push(`keep <= ${b.targetParams} of the parameters`);
  if (b.targetFlops !== null) parts.push(`keep <= ${b.targetFlops} of the FLOPs`);
  return parts.join(', ') || 'none';
}

/** The trade-off curve as a table: what each budget buys, verified. */
export function formatSweep(report: PruneReport, options: TableOptions = {}): string {
  const b = report.budget!;
  const p = report.params.before;
  const layerNames = b.layers.map((l) => l.name);
  const rows = b.sweep!.map((pt) => [
    String(pt.budget),
    `${pt.paramsRemoved.toLocaleString('en-US')} (${p ? ((100 * pt.paramsRemoved) / p).toFixed(1) : '0'}%)`,
    `${b.flops.before ? ((100 * pt.flopsRemoved) / b.flops.before).toFixed(1) : '0'}%`,
    pt.maxRelError.toExponential(2),
    pt.top1Agreement === null ? '-' : `${(100 * pt.top1Agreement).toFixed(2)}%`,
    layerNames.map((n) => pt.widths[n]).join(' / '),
  ]);
  return [
    `${terminalText(report.input)}: trade-off curve, ${report.fidelity.samples} held-out samples never used to fit (${terminalText(report.holdout)}), ${b.verifications} verification runs; nothing written`,
    '',
    renderTable(
      [{ header: 'budget', align: 'right' }, { header: 'params removed', align: 'right' }, { header: 'FLOPs removed', align: 'right' }, { header: 'verified error', align: 'right' }, { header: 'top-1', align: 'right' }, { header: `widths (${layerNames.join(' / ')})`, elide: true }],
      rows,
      options,
    ),
  ].join('\n');
}
