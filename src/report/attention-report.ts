// The per-head audit of attention blocks as data (the audit report's `attention` key, present
// only for models with attention), as text lines, and as an HTML section with the W_Q heatmap.

import { blockerMessages } from '../analysis/blocker.js';
import type { AttentionAudit } from '../analysis/head-audit.js';
import { clusterColor } from './color-scale.js';
import { renderSvg, type HeatmapFigure } from './figure.js';
import { escapeXml } from './svg-canvas.js';

export interface AttentionReport {
  id: string;
  form: string;
  heads: number;
  kvHeads: number;
  headSize: number;
  valueHeadSize: number;
  /** The layers (or fused weights) projecting Q, K and V, with the channels each part takes. */
  projections: { q: { name: string; offset: number; width: number }; k: { name: string; offset: number; width: number }; v: { name: string; offset: number; width: number } };
  output: string | null;
  /** Whether whole duplicate heads can be merged in place; reason when not. */
  mergeable: boolean;
  reason: string | null;
  /** Clusters of query rows summed over heads, and of key rows summed over key heads. */
  queryClusters: number;
  keyClusters: number;
  perHead: { head: number; kvHead: number; queryClusters: number; keyClusters: number; valueClusters: number; queryKeyMerges: number; valueOutputMerges: number }[];
  /** Heads that compute what another computes (exact): merged by prune. */
  duplicates: { head: number; into: number }[];
  /** Pairs of heads at or above the similarity threshold. */
  similarPairs: number[][];
  /** heads x heads similarity (QK circuits and value spaces), rounded to 4 digits. */
  headSimilarity: number[][];
  /** 'circuits' (QK circuits and value spaces), or 'rows' for blocks too large to compare circuits (|cos| of the Q, K, V row blocks). */
  headSimilarityBasis: 'circuits' | 'rows';
  /** Within-head Q/K and V/O merges found, and what prune does with them. */
  withinHeadMerges: string;
}

const round = (x: number): number => Math.round(x * 1e4) / 1e4;

export function attentionReport(a: AttentionAudit): AttentionReport {
  const b = a.block;
  const part = (p: typeof b.q): { name: string; offset: number; width: number } => ({ name: p.name, offset: p.offset, width: p.width });
  const H = b.heads;
  const qk = a.heads.reduce((s, h) => s + h.queryKeyMerges, 0);
  const vo = a.heads.reduce((s, h) => s + h.valueOutputMerges, 0);
  return {
    id: b.id,
    form: b.form,
    heads: H,
    kvHeads: b.kvHeads,
    headSize: b.headSize,
    valueHeadSize: b.valueHeadSize,
    projections: { q: part(b.q), k: part(b.k), v: part(b.v) },
    output: b.output?.name ?? null,
    mergeable: b.blockers.length === 0,
    reason: b.blockers.length ? blockerMessages(b.blockers).join('; ') : null,
    queryClusters: a.queryClusters,
    keyClusters: a.keyClusters,
    perHead: a.heads.map((h) => ({ ...h })),
    duplicates: a.duplicates.map((d) => ({ head: d.head, into: d.into })),
    similarPairs: a.similarPairs.map((p) => [...p]),
    headSimilarityBasis: a.headSimilarityBasis,
    headSimilarity: Array.from({ length: H }, (_, i) => Array.from(a.headSimilarity.subarray(i * H, (i + 1) * H), round)),
    withinHeadMerges: qk + vo === 0
      ? 'none found'
      : `${qk} Q/K and ${vo} V/O row merges are exact within heads; prune applies as many in every head as the head with fewest allows (one Reshape sets every head's size), none under a rotary embedding`,
  };
}

/** One paragraph per block for the terminal audit. */
export function attentionLines(reports: readonly AttentionReport[]): string[] {
  return reports.map((r) => {
    const kv = r.kvHeads === r.heads ? '' : ` sharing ${r.kvHeads} key/value heads`;
    const perHead = r.perHead.map((h) => `${h.queryClusters}/${h.keyClusters}/${h.valueClusters}`).join(' ');
    const dup = r.duplicates.length ? `duplicate heads ${r.duplicates.map((d) => `${d.head}=${d.into}`).join(', ')} (${r.mergeable ? 'merged by prune' : 'not merged'})` : 'no duplicate heads';
    const blocked = r.mergeable ? '' : `; whole heads are not merged in place: ${r.reason}`;
    const similar = r.similarPairs.length ? `; similar heads ${r.similarPairs.map(([a, b]) => `${a}~${b}`).join(', ')}` : '';
    return `attention ${r.id} (${r.form}, ${r.heads} heads of ${r.headSize}${kv}; Q ${r.projections.q.name}, K ${r.projections.k.name}, V ${r.projections.v.name}, out ${r.output ?? '-'}): ` +
      `Q/K/V clusters per head ${perHead} (Q ${r.queryClusters}, K ${r.keyClusters} in all); ${dup}${similar}${blocked}; within-head merges: ${r.withinHeadMerges}`;
  });
}

/** The W_Q heatmap: cosines of all query rows, head by head (strips: heads). */
export function queryHeatmap(a: AttentionAudit): HeatmapFigure {
  const d = a.block.headSize;
  const heads = a.queryRows / d;
  const shown = heads < a.block.heads ? `first ${heads} of ${a.block.heads} heads` : `${heads} heads`;
  return {
    kind: 'heatmap',
    title: `${a.block.id}: cosine of W_Q rows (query neurons), by head`,
    values: a.queryCosine,
    size: a.queryRows,
    groups: Array.from({ length: heads }, (_, h) => ({ start: h * d, size: d, color: clusterColor(h) })),
    axisLabel: `query neuron (${shown} of ${d})`,
  };
}

/** The head-similarity heatmap (heads x heads). */
export function headSimilarityHeatmap(a: AttentionAudit): HeatmapFigure {
  const H = a.block.heads;
  return {
    kind: 'heatmap',
    title: `${a.block.id}: head similarity (QK circuit and value space)`,
    values: a.headSimilarity,
    size: H,
    groups: Array.from({ length: H }, (_, h) => ({ start: h, size: 1, color: clusterColor(h) })),
    axisLabel: 'head',
  };
}

/** An HTML section per block: the measures and the two heatmaps. */
export function attentionHtml(audits: readonly AttentionAudit[]): string {
  return audits.map((a) => {
    const r = attentionReport(a);
    const rows = r.perHead.map((h) => `<tr><td class="num">${h.head}</td><td class="num">${h.kvHead}</td><td class="num">${h.queryClusters}</td><td class="num">${h.keyClusters}</td><td class="num">${h.valueClusters}</td><td class="num">${h.queryKeyMerges}</td><td class="num">${h.valueOutputMerges}</td></tr>`).join('');
    const table = `<table><thead><tr><th class="num">head</th><th class="num">kv head</th><th class="num">Q clusters</th><th class="num">K clusters</th><th class="num">V clusters</th><th class="num">exact Q/K merges</th><th class="num">exact V/O merges</th></tr></thead><tbody>${rows}</tbody></table>`;
    const lines = attentionLines([r]).map((l) => `<p>${escapeXml(l)}</p>`).join('');
    const figure = (f: HeatmapFigure, caption: string): string => `<figure>${renderSvg(f)}<figcaption>${escapeXml(caption)}</figcaption></figure>`;
    return `<section class="attention" id="attention-${escapeXml(r.id)}" data-attention="${escapeXml(r.id)}"><h2>Attention ${escapeXml(r.id)} <small>${escapeXml(r.form)} · ${r.heads} heads of ${r.headSize}</small></h2>${lines}${table}` +
      `<div class="figures">${figure(queryHeatmap(a), 'Cosine similarity of the query neurons (rows of W_Q), ordered head by head (strips: heads). Condensed query weights show as blocks of ±1 within a head.')}` +
      `${figure(headSimilarityHeatmap(a), 'Head similarity: min(cos of the QK circuits W_Q,h^T W_K,h, overlap of the value spaces). 1: the heads compute the same thing.')}</div></section>`;
  }).join('\n');
}
