// Pictures people can read from 2 to thousands of neurons: the HTML report of a layer with one
// cluster and of one with over 2,048 clusters, opened in Chromium. No two x labels of a chart
// overlap, no text is smaller than 10 px or runs out of its picture, and the PNGs of the same
// charts carry real text. Screenshots go to $CONDENSE_SHOTS when set, for a person to look at.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ExporterGraphBuilder } from '../../fixtures/exporter-graph-builder.js';
import { randomDense } from '../../fixtures/planted-layer.js';
import { SeededRandom } from '../../fixtures/seeded-random.js';
import type { Model } from '../../src/ir/model.js';
import { audit } from '../../src/pipeline/audit.js';
import { renderHtmlReport } from '../../src/report/html-report.js';
import { layerFigures } from '../../src/report/layer-figures.js';
import { renderPng } from '../../src/report/figure.js';
import { scratchDir } from './run-condense.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
const dir = scratchDir('legibility');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const shots = process.env.CONDENSE_SHOTS;

/** x[batch, inWidth] -> Gemm(width) -> Relu -> Gemm(3); `copies` makes every hidden neuron the same. */
function mlp(width: number, inWidth: number, copies: boolean): Model {
  const random = new SeededRandom(width);
  const b = new ExporterGraphBuilder(`mlp_${width}`);
  const fc1 = randomDense(random, width, inWidth);
  if (copies) {
    for (let k = 1; k < width; k++) {
      fc1.weights.copyWithin(k * inWidth, 0, inWidth);
      fc1.bias![k] = fc1.bias![0]!;
    }
  }
  const h = b.relu('act1', b.gemm('fc1', b.input('x', inWidth), fc1, 'initializer'), 'h1');
  b.output(b.gemm('fc2', h, randomDense(random, 3, width), 'initializer', 'y'), 3);
  return b.model();
}

const cases = [
  { name: 'one-cluster', model: () => mlp(16, 4, true), clusters: (n: number) => expect(n).toBe(1) },
  { name: 'many-clusters', model: () => mlp(2304, 96, false), clusters: (n: number) => expect(n).toBeGreaterThanOrEqual(2048) },
];

describe.skipIf(!hasChromium)('charts in the HTML report, in Chromium', () => {
  it.each(cases)('$name: x labels never overlap, text is at least 10 px and stays inside its picture', async ({ name, model, clusters }) => {
    const result = await audit(model());
    clusters(result.layers[0]!.weightClusters.count);
    const file = path.join(dir, `${name}.html`);
    fs.writeFileSync(file, renderHtmlReport(result));
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--no-first-run'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      const svgs = page.locator('section.layer[data-layer="fc1"] svg');
      expect(await svgs.count()).toBeGreaterThanOrEqual(2);
      for (let i = 0; i < (await svgs.count()); i++) {
        const svg = svgs.nth(i);
        const facts = await svg.evaluate((el) => {
          const box = el.getBoundingClientRect();
          const texts = [...el.querySelectorAll('text')].map((t) => ({ text: t.textContent ?? '', rect: t.getBoundingClientRect(), size: parseFloat(el.ownerDocument.defaultView!.getComputedStyle(t).fontSize), transform: t.getAttribute('transform') }));
          return { box: { left: box.left, right: box.right, top: box.top, bottom: box.bottom }, texts: texts.map((t) => ({ ...t, rect: { left: t.rect.left, right: t.rect.right, top: t.rect.top, bottom: t.rect.bottom } })) };
        });
        for (const t of facts.texts) {
          expect(t.size, t.text).toBeGreaterThanOrEqual(10);
          expect(t.rect.left, `"${t.text}" starts inside`).toBeGreaterThanOrEqual(facts.box.left - 0.5);
          expect(t.rect.right, `"${t.text}" ends inside`).toBeLessThanOrEqual(facts.box.right + 0.5);
        }
        // Labels on one baseline (the x ticks) must not overlap.
        const rows = new Map<number, typeof facts.texts>();
        for (const t of facts.texts.filter((x) => !x.transform)) {
          const key = Math.round(t.rect.top);
          rows.set(key, [...(rows.get(key) ?? []), t]);
        }
        for (const row of rows.values()) {
          const sorted = [...row].sort((a, b) => a.rect.left - b.rect.left);
          for (let k = 1; k < sorted.length; k++) expect(sorted[k]!.rect.left, `"${sorted[k - 1]!.text}" and "${sorted[k]!.text}"`).toBeGreaterThanOrEqual(sorted[k - 1]!.rect.right);
        }
        if (shots) {
          fs.mkdirSync(shots, { recursive: true });
          await svg.screenshot({ path: path.join(shots, `${name}-fc1-${i}.png`) });
        }
      }
      if (shots) await page.screenshot({ path: path.join(shots, `${name}-page.png`), fullPage: false });
    } finally {
      await browser.close();
    }
  }, 120_000);
});

describe('PNG charts', () => {
  it('draw real text: the title row of a cluster-size chart has anti-aliased grey pixels, not only ink and white', async () => {
    const result = await audit(mlp(16, 4, true));
    const png = renderPng(layerFigures(result.layers[0]!).clusterSizes);
    const { PNG } = await import('pngjs');
    const img = PNG.sync.read(png);
    const greys = new Set<number>();
    for (let y = 0; y < 24; y++) for (let x = 0; x < img.width; x++) greys.add(img.data[(y * img.width + x) * 4]!);
    expect(greys.size).toBeGreaterThan(8);
    if (shots) fs.writeFileSync(path.join(shots, 'one-cluster-sizes.png'), png);
  });
});
