// Images as probes: the committed images are what the fixture script draws, crop and layout put
// each pixel where the model expects it, the presets normalise as documented, and
// `audit --images` runs a CNN fixture on them and says so in the report.

import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildProbeImages } from '../../fixtures/probe-input-fixtures.js';
import type { AuditReport } from '../../src/index.js';
import { imageFiles, imageLayout, imageNormalisation, writeImageSample } from '../../src/runtime/image-probes.js';
import { fixturePath, runCliInProcess } from '../helpers/cli-runner.js';

const scratch = fs.mkdtempSync(path.join(tmpdir(), 'condense-images-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** A w x h RGBA image whose left half is red and right half blue. */
function halves(width: number, height: number): { width: number; height: number; rgba: Uint8Array } {
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) rgba.set(x < width / 2 ? [255, 0, 0, 255] : [0, 0, 255, 255], (y * width + x) * 4);
  return { width, height, rgba };
}

describe('probe images', () => {
  it('are the bytes the fixture script draws, PNG and JPEG, a few KB in all', () => {
    const built = buildProbeImages();
    for (const { file, bytes } of built) expect(Buffer.compare(fs.readFileSync(fixturePath(file)), bytes), file).toBe(0);
    expect(new Set(built.map((b) => path.extname(b.file)))).toEqual(new Set(['.png', '.jpg']));
    expect(built.reduce((n, b) => n + b.bytes.length, 0)).toBeLessThan(16 * 1024);
  });

  it('centre-crops a wide image: a 4x2 red|blue image becomes one red and one blue column at 2x2', () => {
    const unit = { mean: [0, 0, 0], std: [1, 1, 1] };
    const nchw = new Float32Array(12);
    writeImageSample(halves(4, 2), { layout: 'NCHW', channels: 3, height: 2, width: 2 }, unit.mean, unit.std, nchw, 0);
    expect(Array.from(nchw)).toEqual([1, 0, 1, 0, /* green */ 0, 0, 0, 0, /* blue */ 0, 1, 0, 1]);
    const nhwc = new Float32Array(12);
    writeImageSample(halves(4, 2), { layout: 'NHWC', channels: 3, height: 2, width: 2 }, unit.mean, unit.std, nhwc, 0);
    expect(Array.from(nhwc)).toEqual([1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1]);
  });

  it('reads the layout from the input: channels of 1 or 3 on axis 1 (NCHW) or axis 3 (NHWC)', () => {
    expect(imageLayout('x', [undefined, 3, 224, 200])).toEqual({ layout: 'NCHW', channels: 3, height: 224, width: 200 });
    expect(imageLayout('x', [undefined, 96, 64, 3])).toEqual({ layout: 'NHWC', channels: 3, height: 96, width: 64 });
    expect(() => imageLayout('x', [undefined, 3, undefined, 32])).toThrow(/dynamic height; give it with --shape x=/);
    expect(() => imageLayout('x', [undefined, 64])).toThrow(/rank 2/);
  });

  it('normalises by preset: ImageNet mean/std, [0, 1], [-1, 1]; explicit values win', () => {
    const white = { width: 1, height: 1, rgba: Uint8Array.of(255, 255, 255, 255) };
    const target = { layout: 'NCHW' as const, channels: 3, height: 1, width: 1 };
    const value = (preset: 'imagenet' | 'unit' | 'symmetric', extra = {}): number[] => {
      const { mean, std } = imageNormalisation({ dir: '.', preset, ...extra }, 3);
      const out = new Float64Array(3);
      writeImageSample(white, target, mean, std, out, 0);
      return Array.from(out);
    };
    expect(value('imagenet')[0]).toBeCloseTo((1 - 0.485) / 0.229, 12);
    expect(value('unit')).toEqual([1, 1, 1]);
    expect(value('symmetric')).toEqual([1, 1, 1]);
    expect(value('unit', { mean: [0.5], std: [0.25] })).toEqual([2, 2, 2]);
  });

  it('takes the files in a seeded order and a count of them', () => {
    const dir = fixturePath('images');
    const all = imageFiles(dir, 0);
    expect(all).toHaveLength(6);
    expect(imageFiles(dir, 0)).toEqual(all);
    expect(imageFiles(dir, 5)).not.toEqual(all);
    expect([...imageFiles(dir, 5)].sort()).toEqual([...all].sort());
    expect(imageFiles(dir, 0, 4)).toEqual(all.slice(0, 4));
  });
});

describe('condense audit --images', () => {
  it('audits the depthwise-separable CNN on the fixture images and names the probe source', async () => {
    const run = await runCliInProcess(['audit', fixturePath('depthwise-separable.onnx'), '--images', fixturePath('images'), '--preset', 'imagenet', '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as AuditReport;
    expect(report.probe!.samples).toBe(6);
    expect(report.probe!.source).toMatch(/^images .*images \(6 files, seed 0, NCHW 16x16, imagenet normalisation\)$/);
    expect(report.layers.every((l) => l.effectiveWidth.output !== null)).toBe(true);
  });

  it('feeds a grey 1-channel CNN, 4 images chosen by --seed', async () => {
    const run = await runCliInProcess(['audit', fixturePath('cnn-mnist-default-init.onnx'), '--images', fixturePath('images'), '--preset', 'unit', '--count', '4', '--seed', '3', '--json']);
    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as AuditReport).probe).toMatchObject({ samples: 4 });
  });

  it('refuses image options without --images, and a folder without images', async () => {
    const preset = await runCliInProcess(['audit', fixturePath('depthwise-separable.onnx'), '--random', '4', '--preset', 'unit']);
    expect(preset.code).toBe(2);
    expect(preset.stderr).toMatch(/^condense: --preset: applies to --images DIR/);
    const empty = await runCliInProcess(['audit', fixturePath('depthwise-separable.onnx'), '--images', scratch]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/holds no \.png, \.jpg or \.jpeg files/);
  });
});
