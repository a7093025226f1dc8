// The attention part of the audit: a JSON key only for models with attention (reports of other
// models keep their content), per-head clusters and duplicates in the text, and an HTML section
// with the W_Q heatmap.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { audit } from '../../src/pipeline/audit.js';
import { auditReport, formatAuditTable } from '../../src/report/audit-report.js';
import { renderHtmlReport } from '../../src/report/html-report.js';
import { condense, fixturePath, repoRoot } from './run-condense.js';

describe('the audit of attention', () => {
  it('reports each block per head in the JSON: clusters, duplicates, similarity', async () => {
    const report = auditReport(await audit(fixturePath('attention/decomposed-planted.onnx')));
    expect(report.attention).toHaveLength(1);
    const a = report.attention![0]!;
    expect(a).toMatchObject({ id: 'attn1', form: 'decomposed', heads: 4, kvHeads: 4, headSize: 4, mergeable: true, reason: null, output: '/o_proj/MatMul' });
    expect(a.perHead).toHaveLength(4);
    expect(a.perHead[0]).toMatchObject({ head: 0, kvHead: 0, queryClusters: 4, keyClusters: 4, valueClusters: 4 });
    expect(a.duplicates).toEqual([{ head: 2, into: 0 }, { head: 3, into: 1 }]);
    expect(a.headSimilarity[0]![2]).toBeCloseTo(1, 3);
    expect(a.projections.q).toEqual({ name: '/q_proj/MatMul', offset: 0, width: 16 });
  });

  it('names the projections\' reason as the attention block instead of the Reshape they feed', async () => {
    const report = auditReport(await audit(fixturePath('attention/decomposed-planted.onnx')));
    const q = report.layers.find((l) => l.name === '/q_proj/MatMul')!;
    expect(q.reason).toContain('attention block attn1');
    expect(q.reason).not.toContain('Reshape');
  });

  it('has no attention key for a model without attention', async () => {
    const report = auditReport(await audit(fixturePath('mlp-relu-planted.onnx')));
    expect('attention' in report).toBe(false);
  });

  it('prints per-head Q/K/V clusters and the duplicate heads in the terminal table, and why GQA heads are not merged', async () => {
    const text = formatAuditTable(auditReport(await audit(fixturePath('attention/gqa-planted.onnx'))), { width: 100 }).replace(/\s+/g, ' ');
    expect(text).toContain('attention attn1 (decomposed, 4 heads of 4 sharing 2 key/value heads');
    expect(text).toContain('Q/K/V clusters per head 4/4/4 4/4/4 4/4/4 4/4/4 (Q 16, K 8 in all)');
    const planted = formatAuditTable(auditReport(await audit(fixturePath('attention/packed-planted.onnx'))), { width: 100 }).replace(/\s+/g, ' ');
    expect(text).toContain('whole heads are not merged in place: grouped-query attention (4 query heads share 2 key/value heads)');
    expect(planted).toContain('duplicate heads 2=0, 3=1 (merged by prune)');
  });

  it('draws the W_Q heatmap and the head similarity in an HTML section per block', async () => {
    const html = renderHtmlReport(await audit(fixturePath('attention/ms-attention-planted.onnx')));
    const section = /<section class="attention"[^]*?<\/section>/.exec(html)?.[0] ?? '';
    expect(section).toContain('data-attention="attn1"');
    expect(section.match(/<svg/g)).toHaveLength(2);
    expect(section).toContain('cosine of W_Q rows');
  });
});

describe('docs/json-schema.md', () => {
  const doc = fs.readFileSync(path.join(repoRoot, 'docs', 'json-schema.md'), 'utf8');
  const example = (kind: string): unknown => {
    const section = doc.split(/^## /m).find((p) => p.startsWith(`${kind} (\`condense ${kind}`))!;
    return JSON.parse(/```jsonc\n([\s\S]*?)```/.exec(section)![1]!.replace(/\/\/[^\n]*/g, ''));
  };
  const paths = (value: unknown, at = '', out = new Set<string>()): Set<string> => {
    if (Array.isArray(value)) for (const v of value) paths(v, `${at}[]`, out);
    else if (value && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        const p = at ? `${at}.${k}` : k;
        out.add(p);
        if (k !== 'audit') paths(v, p, out);
      }
    }
    return out;
  };
  const file = fixturePath('attention/within-head-planted.onnx');
  for (const [kind, args] of [['audit', ['audit', file, '--json']], ['prune', ['prune', file, '--random', '16', '--dry-run', '--json', '-o', path.join(repoRoot, 'unused.onnx')]]] as const) {
    it(`documents every attention field of the ${kind} report at its path`, async () => {
      const run = await condense([...args]);
      expect(run.code).toBe(0);
      const report = JSON.parse(run.stdout);
      expect(report.attention ?? report.heads).toHaveLength(1);
      const documented = paths(example(kind));
      expect([...paths(report)].filter((p) => !documented.has(p))).toEqual([]);
    });
  }
});
