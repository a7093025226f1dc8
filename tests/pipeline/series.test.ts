import * as fs from 'node:fs';
import * as path from 'node:path';
import { XMLValidator } from 'fast-xml-parser';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelFormatError } from '../../src/errors.js';
import { phaseGamma, phaseGammaPrime, predictRegime } from '../../src/analysis/phase-diagram.js';
import { runCli } from '../../cli/program.js';
import { series } from '../../src/pipeline/series.js';
import { seriesReport } from '../../src/report/series-report.js';
import { condense, fixturePath, scratchDir } from '../report/run-condense.js';

interface Expected {
  models: Record<string, {
    layers: { measured: { clusterCounts: { similarityThreshold: number; clusterCount: number }[] } | null }[];
    twoLayerTraining?: { relativeDistance: number; width: number; init: { std?: number } };
    checkpoint?: { step: number };
  }>;
}

const expected = JSON.parse(fs.readFileSync(fixturePath('expected.json'), 'utf8')) as Expected;
const CHECKPOINTS = [0, 1, 2, 3, 4].map((i) => `series/two-layer-small-init-ckpt-${i}.onnx`);
const clustersAt95 = (file: string): number => expected.models[file]!.layers[0]!.measured!.clusterCounts.find((c) => c.similarityThreshold === 0.95)!.clusterCount;

const dir = scratchDir('series');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const result = await series(CHECKPOINTS.map(fixturePath));

describe('training series of the small-init two-layer network', () => {
  const fc1 = result.layers.find((l) => l.name === 'fc1')!;

  it('has the effective width the fixture script recorded at each checkpoint', () => {
    expect(fc1.effectiveWidth).toEqual(CHECKPOINTS.map(clustersAt95));
  });

  it('shows the effective width dropping from a dozen to a handful', () => {
    expect(fc1.effectiveWidth[0]).toBeGreaterThanOrEqual(10);
    for (const w of fc1.effectiveWidth.slice(1)) expect(w).toBeLessThanOrEqual(4);
  });

  it('shows RD growing from 0 to the value the fixture script recorded for the trained model', () => {
    expect(fc1.relativeDistance[0]).toBe(0);
    for (let t = 1; t < fc1.relativeDistance.length; t++) expect(fc1.relativeDistance[t]!).toBeGreaterThan(fc1.relativeDistance[t - 1]!);
    const recorded = expected.models['two-layer-small-init.onnx']!.twoLayerTraining!.relativeDistance;
    // The fixture script measured in float64, the checkpoints hold float32.
    expect(Math.abs(fc1.relativeDistance[4]! - recorded) / recorded).toBeLessThan(1e-4);
    expect(fc1.relativeDistance[4]).toBeGreaterThan(10);
  });

  it('predicts the condensed regime from the initial scales, beside the large observed RD', () => {
    const t = result.twoLayer!;
    expect(t).toMatchObject({ layer: 'fc1', activation: 'Relu', width: 64, alpha: 1, regime: 'condensed', observed: 'large' });
    // Every parameter was drawn from N(0, (1/m)^2): gamma = 2 and gamma' = 0 in the limit.
    expect(t.beta1).toBeGreaterThan(0.5 / 64);
    expect(t.beta1).toBeLessThan(1.5 / 64);
    expect(t.beta2).toBeGreaterThan(0.5 / 64);
    expect(t.beta2).toBeLessThan(1.5 / 64);
    expect(t.gamma).toBeCloseTo(2, 1);
    expect(Math.abs(t.gammaPrime)).toBeLessThan(0.1);
    expect(t.observedRelativeDistance).toBe(fc1.relativeDistance[4]);
  });

  it('reads alpha into gamma: a large enough 1/alpha output scale moves the prediction to linear', async () => {
    const scaled = await series([fixturePath(CHECKPOINTS[0]!)], { alpha: 1 / 64 ** 1.5 });
    expect(scaled.twoLayer!.gamma).toBeCloseTo(result.twoLayer!.gamma - 1.5, 6);
    expect(scaled.twoLayer!.regime).toBe('linear');
  });

  it('predicts the linear regime for the standard (LeCun) initialisation', async () => {
    const standard = await series([fixturePath('two-layer-standard-init.onnx')]);
    expect(standard.layers[0]!.relativeDistance).toEqual([0]);
    // LeCun on a 1-D input: w, b ~ N(0, 1), a ~ N(0, 1/m): gamma = gamma' = 1/2 in the limit. This
    // is the trained model, not its initialisation, so only the regime is asserted.
    expect(standard.twoLayer!.regime).toBe('linear');
  });
});

describe('phase diagram', () => {
  it('classifies the common initialisations as the primer does', () => {
    expect(predictRegime(0.5, 0.5)).toBe('linear'); // LeCun, He
    expect(predictRegime(0.5, 0)).toBe('linear'); // NTK
    expect(predictRegime(1, 0)).toBe('critical'); // Xavier, mean field
    expect(predictRegime(2, 0)).toBe('condensed');
    expect(predictRegime(2, 1)).toBe('critical'); // on gamma' = gamma - 1
    expect(predictRegime(2, 1.5)).toBe('linear');
    expect(predictRegime(1.02, -0.5)).toBe('critical');
    expect(predictRegime(1.2, -0.5)).toBe('condensed');
    expect(predictRegime(0.8, -1)).toBe('linear');
  });

  it('computes gamma and gamma\' from the weight scales', () => {
    const m = 100;
    expect(phaseGamma(m ** -1, m ** -1, 1, m)).toBeCloseTo(2, 12);
    expect(phaseGammaPrime(m ** -1, m ** -1, m)).toBeCloseTo(0, 12);
    expect(phaseGamma(m ** -0.5, 1, 1, m)).toBeCloseTo(0.5, 12);
    expect(phaseGammaPrime(m ** -0.5, 1, m)).toBeCloseTo(0.5, 12);
  });
});

describe('condense series', () => {
  const args = CHECKPOINTS.map(fixturePath);

  it('prints a table with a row per checkpoint and the predicted regime', async () => {
    const run = await condense(['series', ...args]);
    expect(run.code).toBe(0);
    const rows = run.stdout.split('\n').filter((l) => /^\d\s+\S+ckpt-/.test(l));
    expect(rows).toHaveLength(5);
    expect(rows[0]).toMatch(/ckpt-0\.onnx\s+12\/64\s+\d+\s+0\s+0$/);
    expect(rows[4]).toMatch(/ckpt-4\.onnx\s+3\/64\s+\d+\s+19\.8\d\d\s+/);
    expect(run.stdout).toMatch(/the phase diagram predicts the condensed regime; observed RD of fc1 at the last checkpoint = 19\.8\d\d \(large\)/);
  });

  it('prints the JSON report and writes the plot as SVG and PNG', async () => {
    const svg = path.join(dir, 'series.svg');
    const png = path.join(dir, 'series.png');
    const run = await condense(['series', ...args, '--json', '--svg', svg, '--png', png, '--alpha', '1']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ schemaVersion: 1, kind: 'series', options: { similarityThreshold: 0.95, staticThreshold: 0.01 } });
    expect(report.checkpoints.map((c: { index: number }) => c.index)).toEqual([0, 1, 2, 3, 4]);
    expect(report.layers[0].effectiveWidth).toEqual([12, 2, 4, 3, 3]);
    expect(report.twoLayer.regime).toBe('condensed');
    expect(report).toEqual(JSON.parse(JSON.stringify(seriesReport(await series(args)))));
    const svgText = fs.readFileSync(svg, 'utf8');
    expect(XMLValidator.validate(svgText)).toBe(true);
    expect(svgText).toContain('effective width over training');
    expect(svgText.match(/<polyline /g)).toHaveLength(2);
    const image = PNG.sync.read(fs.readFileSync(png));
    expect(image.width).toBeGreaterThan(image.height);
  });

  it('turns a many-layer series into one row per layer and checkpoint, so the table stays as wide as a terminal', async () => {
    const files = ['transformers/llama-trained-small-init.onnx', 'transformers/llama-trained-default-init.onnx'].map(fixturePath);
    let stdout = '';
    const code = await runCli(['series', ...files], { stdout: (t) => void (stdout += t), stderr: () => undefined, isStderrTTY: false, progress: 'off', env: {}, columns: 100 });
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(100);
    expect(lines.find((l) => l.startsWith('layer '))).toMatch(/^layer +# +checkpoint +eff\.w +static +RD$/);
    expect(lines.filter((l) => l.startsWith('/layers.0/attn/q_proj/MatMul')).map((l) => l.split(/ +/).slice(-3))).toEqual([['13/16', '0', '0'], ['16/16', '0', '1.530']]);
    expect(lines.filter((l) => l.startsWith('(all layers)'))).toHaveLength(2);
  });

  it('exits 2 for checkpoints of different architectures, naming the file and the layer', async () => {
    const run = await condense(['series', args[0]!, fixturePath('two-layer-4d-small-init.onnx')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/two-layer-4d-small-init\.onnx: layer "fc1" has width 64 and weights \[64, 4\], expected width 64 and \[64, 1\]/);
    await expect(series([args[0]!, fixturePath('mlp-relu-planted.onnx')])).rejects.toThrow(ModelFormatError);
  });

  it('exits 2 for a bad --alpha', async () => {
    const run = await condense(['series', args[0]!, '--alpha', '0']);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe('condense: --alpha: expected a positive number, got "0"\n');
  });
});
