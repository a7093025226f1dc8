import { PNG } from 'pngjs';
import { XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { audit } from '../../src/pipeline/audit.js';
import { clusterColor, divergingColor, STATIC_GREY } from '../../src/report/color-scale.js';
import { PNG_SCALE, pngTextWidth, renderPng, renderSvg, type HeatmapFigure } from '../../src/report/figure.js';
import { downsampleMatrix, measureHeatmap } from '../../src/report/heatmap-drawing.js';
import { layerFigures } from '../../src/report/layer-figures.js';
import { orderNeuronsByCluster, permuteMatrix } from '../../src/report/neuron-order.js';
import { fixturePath } from './run-condense.js';

/** A block matrix: neurons 0..a-1 parallel (+1), a..a+b-1 parallel, the two blocks opposite (-1). */
function twoBlocks(a: number, b: number): HeatmapFigure {
  const n = a + b;
  const values = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) values[i * n + j] = (i < a) === (j < a) ? 1 : -1;
  return { kind: 'heatmap', title: 'blocks', values, size: n, groups: [{ start: 0, size: a, color: clusterColor(0) }, { start: a, size: b, color: clusterColor(1) }], axisLabel: 'neurons' };
}

function decode(bytes: Buffer): PNG {
  return PNG.sync.read(bytes);
}

function pixel(png: PNG, x: number, y: number): [number, number, number] {
  const i = (Math.floor(y) * png.width + Math.floor(x)) * 4;
  return [png.data[i]!, png.data[i + 1]!, png.data[i + 2]!];
}

describe('colour scale', () => {
  it('runs from blue at -1 through white at 0 to red at +1', () => {
    expect(divergingColor(-1)).toEqual([0, 0, 255]);
    expect(divergingColor(0)).toEqual([255, 255, 255]);
    expect(divergingColor(1)).toEqual([255, 0, 0]);
    expect(divergingColor(0.5)).toEqual([255, 128, 128]);
    expect(divergingColor(7)).toEqual([255, 0, 0]);
  });

  it('keeps grey for static neurons only', () => {
    for (let r = 0; r < 20; r++) expect(clusterColor(r)).not.toEqual(STATIC_GREY);
    expect(clusterColor(-1)).toEqual(STATIC_GREY);
  });
});

describe('neuron order', () => {
  it('puts larger clusters first, then static neurons, so blocks line up on the diagonal', () => {
    const labels = Int32Array.from([1, 0, -1, 1, 1, 0, 2]);
    const amplitude = Float64Array.from([1, 2, 0, 3, 2, 1, 5]);
    const o = orderNeuronsByCluster(labels, amplitude);
    expect(o.order).toEqual([3, 4, 0, 1, 5, 6, 2]);
    expect(o.groups).toEqual([{ rank: 0, start: 0, size: 3 }, { rank: 1, start: 3, size: 2 }, { rank: 2, start: 5, size: 1 }, { rank: -1, start: 6, size: 1 }]);
    expect(Array.from(o.rankOf)).toEqual([0, 1, -1, 0, 0, 1, 2]);
  });

  it('permutes rows and columns together', () => {
    const m = Float64Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Array.from(permuteMatrix(m, [2, 0, 1]))).toEqual([8, 6, 7, 2, 0, 1, 5, 3, 4]);
  });
});

describe('heatmap pictures', () => {
  it('renders a PNG whose +1 block is red and whose -1 block is blue', () => {
    const figure = twoBlocks(6, 4);
    const png = decode(renderPng(figure));
    const layout = measureHeatmap(figure, PNG_SCALE, pngTextWidth);
    expect([png.width, png.height]).toEqual([layout.size.width, layout.size.height]);
    const { x, y, cellSize, cells } = layout.matrix;
    expect(cells).toBe(10);
    expect(cells * cellSize).toBeLessThanOrEqual(512);
    expect(pixel(png, x + 2.5 * cellSize, y + 2.5 * cellSize)).toEqual([255, 0, 0]);
    expect(pixel(png, x + 8.5 * cellSize, y + 8.5 * cellSize)).toEqual([255, 0, 0]);
    expect(pixel(png, x + 8.5 * cellSize, y + 2.5 * cellSize)).toEqual([0, 0, 255]);
  });

  it('averages a large layer down so the PNG stays near 512 pixels of matrix', () => {
    const figure = twoBlocks(700, 500);
    const layout = measureHeatmap(figure, PNG_SCALE, pngTextWidth);
    expect(layout.matrix.cells).toBe(512);
    const png = decode(renderPng(figure));
    expect(png.width).toBeLessThan(700);
    expect(png.height).toBeLessThan(700);
    expect(pixel(png, layout.matrix.x + 10, layout.matrix.y + 10)).toEqual([255, 0, 0]);
  });

  it('averages blocks of a matrix, leaving NaN entries out', () => {
    const m = Float64Array.from([1, 1, 0, Number.NaN, 1, 1, 0, 0, 0, 0, -1, -1, 0, 0, -1, -1]);
    expect(Array.from(downsampleMatrix(m, 4, 2))).toEqual([1, 0, 0, -1]);
  });

  it('writes small, well-formed SVG with a title, no ids and no scripts', () => {
    const svg = renderSvg(twoBlocks(40, 24));
    expect(XMLValidator.validate(svg)).toBe(true);
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain('<title>blocks</title>');
    expect(svg).not.toMatch(/\sid=|<script|href=/);
    expect(svg.length).toBeLessThan(12_000);
    expect(svg).toContain('fill="#ff0000"');
    expect(svg).toContain('fill="#0000ff"');
  });
});

describe('layer figures', () => {
  it('draws the feature map for a 1-D input with bias (u_k has 2 entries), static neurons grey', async () => {
    const result = await audit(fixturePath('two-layer-small-init.onnx'));
    const m = result.layers.find((l) => l.layer.name === 'fc1')!;
    const f = layerFigures(m);
    expect(f.outputHeatmap).toBeUndefined();
    expect(f.featureMap).toBeDefined();
    const points = f.featureMap!.points;
    expect(points).toHaveLength(64);
    expect(points.filter((p) => p.isMuted)).toHaveLength(m.staticNeurons.length);
    for (const p of points.filter((q) => q.isMuted)) expect(p.color).toEqual(STATIC_GREY);
    // Condensed: the 20 active neurons sit at a handful of angles (fixtures/README.md: 4 directions at cos >= 0.999).
    const active = points.filter((p) => !p.isMuted).map((p) => p.x).sort((a, b) => a - b);
    const distinct = active.filter((x, i) => i === 0 || x - active[i - 1]! > 5);
    expect(active.length).toBe(20);
    expect(distinct.length).toBeGreaterThanOrEqual(m.weightClusters.count);
    expect(distinct.length).toBeLessThanOrEqual(4);
    expect(f.clusterSizes.bars.map((b) => b.value).reduce((s, v) => s + v, 0)).toBe(64);
    expect(XMLValidator.validate(renderSvg(f.featureMap!))).toBe(true);
    const png = decode(renderPng(f.featureMap!));
    expect(png.width).toBeGreaterThan(300);
  });

  it('has no feature map for a 784-pixel input, and an output heatmap with probes', async () => {
    const result = await audit(fixturePath('mnist-mlp.onnx'), { probe: { files: [fixturePath('mnist-probe.npy')] } });
    const f = layerFigures(result.layers[0]!);
    expect(f.featureMap).toBeUndefined();
    expect(f.outputHeatmap?.size).toBe(64);
    expect(f.weightHeatmap.size).toBe(64);
  });
});
