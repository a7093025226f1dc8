import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audit } from '../../src/pipeline/audit.js';
import { renderHtmlReport } from '../../src/report/html-report.js';
import { condense, fixturePath, scratchDir } from './run-condense.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
if (!hasChromium && process.env.CI) {
  throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium package (apt-get install -y chromium) for the HTML report test`);
}
if (!hasChromium) {
  console.warn(`skipping the headless-browser test of the HTML report: ${CHROMIUM} is missing (apt-get install -y chromium)`);
}

const dir = scratchDir('html');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('HTML report', () => {
  it('is self-contained: no scripts, no external resources, one section per layer', async () => {
    const result = await audit(fixturePath('mlp-tanh-planted.onnx'), { probe: { random: 64 } });
    const html = renderHtmlReport(result);
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).not.toMatch(/<script|<link|<img|<iframe|src=|url\(|@import/i);
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    const sections = [...html.matchAll(/<section class="layer" id="layer-\d+" data-layer="([^"]*)">/g)].map((m) => m[1]);
    expect(sections).toEqual(result.layers.map((l) => l.layer.name));
    expect(html.match(/<svg /g)!.length).toBeGreaterThanOrEqual(3 * result.layers.length);
  });

  it('escapes names that look like markup', async () => {
    const result = await audit(fixturePath('mlp-relu-planted.onnx'));
    result.layers[0]!.layer.name = '<b>"fc&1"</b>';
    const html = renderHtmlReport(result);
    expect(html).toContain('data-layer="&lt;b&gt;&quot;fc&amp;1&quot;&lt;/b&gt;"');
    expect(html).not.toContain('<b>"fc');
  });

  it('writes the report, a Markdown summary and PNG pictures from `condense audit`', async () => {
    const html = path.join(dir, 'report.html');
    const md = path.join(dir, 'summary.md');
    const pngs = path.join(dir, 'png');
    const run = await condense(['audit', fixturePath('two-layer-small-init.onnx'), '--random', '64', '--html', html, '--md', md, '--png-dir', pngs]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('fc1');
    expect(fs.readFileSync(html, 'utf8')).toContain('data-layer="fc1"');
    expect(fs.readdirSync(pngs).sort()).toEqual([
      'fc1-cluster-sizes.png', 'fc1-feature-map.png', 'fc1-output-cosine.png', 'fc1-weight-cosine.png',
      'fc2-cluster-sizes.png', 'fc2-output-cosine.png', 'fc2-weight-cosine.png',
    ]);
    const heatmap = PNG.sync.read(fs.readFileSync(path.join(pngs, 'fc1-weight-cosine.png')));
    expect(heatmap.width).toBeGreaterThan(512);
    expect(heatmap.width).toBeLessThan(700);
    // Nothing but the finished files: atomic writes leave no temporary files behind.
    expect(fs.readdirSync(dir).sort()).toEqual(['png', 'report.html', 'summary.md']);
  });

  it('names the option when the output folder does not exist (exit 2)', async () => {
    const run = await condense(['audit', fixturePath('two-layer-small-init.onnx'), '--html', path.join(dir, 'missing', 'r.html')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^condense: --html: folder ".*missing" does not exist\n$/);
  });

  it.skipIf(!hasChromium)('renders in headless Chromium with no console errors and one section per layer', async () => {
    const file = path.join(dir, 'browser.html');
    const run = await condense(['audit', fixturePath('mlp-gelu-planted.onnx'), '--random', '64', '--html', file]);
    expect(run.code).toBe(0);
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('request', (r) => requests.push(r.url()));
      const url = pathToFileURL(file).href;
      await page.goto(url, { waitUntil: 'load' });
      expect(problems).toEqual([]);
      expect(requests).toEqual([url]);
      const sections = await page.locator('section.layer').evaluateAll((els) => els.map((e) => e.getAttribute('data-layer')));
      expect(sections).toEqual(['fc1', 'fc2', 'fc3']);
      // Every picture is laid out with a real size, and the summary table has a row per layer.
      const sizes = await page.locator('section.layer svg').evaluateAll((els) => els.map((e) => e.getBoundingClientRect()).map((r) => [r.width, r.height]));
      expect(sizes.length).toBeGreaterThanOrEqual(9);
      for (const [w, h] of sizes) {
        expect(w).toBeGreaterThan(100);
        expect(h).toBeGreaterThan(100);
      }
      expect(await page.locator('section.summary tbody tr').count()).toBe(3);
      expect(await page.title()).toContain('mlp-gelu-planted.onnx');
    } finally {
      await browser.close();
    }
  });
});

describe('Markdown summary', () => {
  const md = path.join(dir, 'pr.md');
  beforeAll(async () => {
    const run = await condense(['audit', fixturePath('mlp-layernorm.onnx'), '--random', '64', '--md', md]);
    expect(run.code).toBe(0);
  });

  it('has a heading, a table with a row per layer and notes', () => {
    const text = fs.readFileSync(md, 'utf8');
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^### Condensation audit: `.*mlp-layernorm.onnx`$/);
    const header = lines.findIndex((l) => l.startsWith('| layer |'));
    expect(lines[header + 1]).toMatch(/^\|---\|/);
    const rows = lines.slice(header + 2).filter((l) => l.startsWith('| `'));
    expect(rows.map((r) => r.split('|')[1]!.trim())).toEqual(['`fc1`', '`fc2`', '`fc3`', '`fc4`']);
    // Ten columns: weight and output measures each have their own effective width and redundancy.
    for (const r of rows) expect(r.split('|')).toHaveLength(12);
    expect(text).toContain('**Notes**');
    expect(text).toMatch(/- `fc2`: \d+ effective of 16 neurons .*`condense prune` can merge them\./);
    expect(text).toMatch(/- `fc1`: .* but it cannot be merged: /);
  });
});
