// Images as probes: a folder of PNG and JPEG files, decoded (pngjs, jpeg-js: pure JavaScript, no
// native build), resized and centre-cropped to the model's image input, laid out as the model
// declares it (NCHW or NHWC) and normalised by a preset or an explicit mean/std. Files are taken
// in a seeded order, decoded a batch at a time.

import * as fs from 'node:fs';
import * as path from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { FileNotFoundError, OptionError, ProbeDataError } from '../errors.js';
import { DataType, dataTypeName } from '../ir/data-type.js';
import { SeededRandom } from '../numeric/seeded-random.js';
import type { HostTensor } from './host-tensor.js';

export const IMAGE_PRESETS = {
  /** torchvision's ImageNet statistics, on pixels scaled to [0, 1]. */
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  /** Pixels scaled to [0, 1]. */
  unit: { mean: [0, 0, 0], std: [1, 1, 1] },
  /** Pixels scaled to [-1, 1] (Inception, MobileNet in TF). */
  symmetric: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
} as const;

export type ImagePreset = keyof typeof IMAGE_PRESETS;

export interface ImageProbeOptions {
  dir: string;
  /** Normalisation (default imagenet); `mean`/`std` override it. Both apply to pixels in [0, 1]. */
  preset?: ImagePreset;
  mean?: number[];
  std?: number[];
  /** How many images to use (default all), after the seeded shuffle. */
  count?: number;
  seed?: number;
}

/** How the image input is laid out. */
export interface ImageLayout {
  layout: 'NCHW' | 'NHWC';
  channels: number;
  height: number;
  width: number;
}

const IMAGE_FILE = /\.(png|jpe?g)$/i;

/** The image files of a folder in a seeded order (sorted first, so the order does not depend on the file system). */
export function imageFiles(dir: string, seed: number, count?: number): string[] {
  if (!fs.existsSync(dir)) throw new FileNotFoundError(dir);
  if (!fs.statSync(dir).isDirectory()) throw new OptionError('--images', `"${dir}" is not a folder; expected a folder of .png/.jpg files`);
  const files = fs.readdirSync(dir).filter((f) => IMAGE_FILE.test(f)).sort();
  if (files.length === 0) throw new OptionError('--images', `"${dir}" holds no .png, .jpg or .jpeg files`);
  const rng = new SeededRandom(seed);
  for (let i = files.length - 1; i > 0; i--) {
    const j = rng.integer(i + 1);
    [files[i], files[j]] = [files[j]!, files[i]!];
  }
  if (count !== undefined && count > files.length) throw new OptionError('--images', `asks for ${count} samples, "${dir}" holds ${files.length} images`);
  return files.slice(0, count ?? files.length).map((f) => path.join(dir, f));
}

/** The layout of a rank-4 image input from its declared dims (channels 1 or 3 on axis 1 or 3). */
export function imageLayout(name: string, dims: (number | undefined)[]): ImageLayout {
  if (dims.length !== 4) throw new OptionError('--images', `input "${name}" has rank ${dims.length}; images feed a rank-4 input (NCHW or NHWC)`);
  const isChannels = (d: number | undefined): boolean => d === 1 || d === 3;
  const [, a, b, c] = dims;
  const need = (d: number | undefined, what: string): number => {
    if (d === undefined) throw new OptionError('--images', `input "${name}" has a dynamic ${what}; give it with --shape ${name}=1x...`);
    return d;
  };
  if (isChannels(a) && !isChannels(c)) return { layout: 'NCHW', channels: a!, height: need(b, 'height'), width: need(c, 'width') };
  if (isChannels(c) && !isChannels(a)) return { layout: 'NHWC', channels: c!, height: need(a, 'height'), width: need(b, 'width') };
  if (isChannels(a)) return { layout: 'NCHW', channels: a!, height: need(b, 'height'), width: need(c, 'width') };
  throw new OptionError('--images', `input "${name}" has shape [${dims.map((d) => d ?? '?').join(', ')}]; expected 1 or 3 channels on axis 1 (NCHW) or axis 3 (NHWC)`);
}

/** RGBA pixels of a PNG or JPEG file. */
export function decodeImage(file: string): { width: number; height: number; rgba: Uint8Array } {
  const bytes = fs.readFileSync(file);
  try {
    if (/\.png$/i.test(file)) {
      const png = PNG.sync.read(bytes);
      return { width: png.width, height: png.height, rgba: png.data };
    }
    const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 512 });
    return { width: img.width, height: img.height, rgba: img.data };
  } catch (error) {
    throw new ProbeDataError(file, `is not a readable ${/\.png$/i.test(file) ? 'PNG' : 'JPEG'} image (${error instanceof Error ? error.message : String(error)})`, { cause: error });
  }
}

/**
 * One image as the model's input: scaled so it covers height x width, centre-cropped, sampled
 * bilinearly, in [0, 1] then (x - mean) / std per channel. Written into `out` at `offset`
 * (one sample of the input's layout).
 */
export function writeImageSample(
  img: { width: number; height: number; rgba: Uint8Array }, target: ImageLayout, mean: number[], std: number[], out: Float32Array | Float64Array, offset: number,
): void {
  const { height: H, width: W, channels: C } = target;
  const scale = Math.max(H / img.height, W / img.width);
  // The source window the crop covers, centred.
  const x0 = (img.width - W / scale) / 2;
  const y0 = (img.height - H / scale) / 2;
  const px = (x: number, y: number, ch: number): number => img.rgba[(y * img.width + x) * 4 + ch]!;
  for (let y = 0; y < H; y++) {
    const sy = Math.min(img.height - 1, Math.max(0, y0 + (y + 0.5) / scale - 0.5));
    const ya = Math.floor(sy);
    const yb = Math.min(img.height - 1, ya + 1);
    const fy = sy - ya;
    for (let x = 0; x < W; x++) {
      const sx = Math.min(img.width - 1, Math.max(0, x0 + (x + 0.5) / scale - 0.5));
      const xa = Math.floor(sx);
      const xb = Math.min(img.width - 1, xa + 1);
      const fx = sx - xa;
      const rgb = [0, 1, 2].map((ch) => ((px(xa, ya, ch) * (1 - fx) + px(xb, ya, ch) * fx) * (1 - fy) + (px(xa, yb, ch) * (1 - fx) + px(xb, yb, ch) * fx) * fy) / 255);
      const values = C === 1 ? [0.299 * rgb[0]! + 0.587 * rgb[1]! + 0.114 * rgb[2]!] : rgb;
      for (let c = 0; c < C; c++) {
        const v = (values[c]! - mean[c]!) / std[c]!;
        const at = target.layout === 'NCHW' ? offset + (c * H + y) * W + x : offset + (y * W + x) * C + c;
        out[at] = v;
      }
    }
  }
}

/** The mean and std for `channels` channels from the options (explicit values over the preset). */
export function imageNormalisation(options: ImageProbeOptions, channels: number): { mean: number[]; std: number[] } {
  const preset = IMAGE_PRESETS[options.preset ?? 'imagenet'];
  const pick = (given: number[] | undefined, fallback: readonly number[], option: string): number[] => {
    const v = given ?? (channels === 1 ? [fallback.reduce((a, b) => a + b, 0) / fallback.length] : [...fallback]);
    if (v.length === 1 && channels > 1) return new Array<number>(channels).fill(v[0]!);
    if (v.length !== channels) throw new OptionError(option, `expected 1 or ${channels} values (one per channel), got ${v.length}`);
    return v;
  };
  const mean = pick(options.mean, preset.mean, '--mean');
  const std = pick(options.std, preset.std, '--std');
  if (std.some((s) => !(s > 0))) throw new OptionError('--std', `expected positive values, got ${std.join(', ')}`);
  return { mean, std };
}

/** A reader of image samples [from, to) for one input, and how it was set up (for the report). */
export function imageReader(
  inputName: string, elemType: number, dims: (number | undefined)[], options: ImageProbeOptions,
): { count: number; read(from: number, to: number): HostTensor; describe: string } {
  if (elemType !== DataType.FLOAT && elemType !== DataType.DOUBLE) {
    throw new OptionError('--images', `input "${inputName}" is ${dataTypeName(elemType)}; images feed a float input`);
  }
  const layout = imageLayout(inputName, dims);
  const { mean, std } = imageNormalisation(options, layout.channels);
  const files = imageFiles(options.dir, options.seed ?? 0, options.count);
  const per = layout.channels * layout.height * layout.width;
  const sampleDims = layout.layout === 'NCHW' ? [layout.channels, layout.height, layout.width] : [layout.height, layout.width, layout.channels];
  const norm = options.mean || options.std ? `mean ${mean.join('/')}, std ${std.join('/')}` : `${options.preset ?? 'imagenet'} normalisation`;
  return {
    count: files.length,
    describe: `images ${options.dir} (${files.length} files, seed ${options.seed ?? 0}, ${layout.layout} ${layout.height}x${layout.width}, ${norm})`,
    read(from, to) {
      const data = elemType === DataType.DOUBLE ? new Float64Array((to - from) * per) : new Float32Array((to - from) * per);
      for (let i = from; i < to; i++) writeImageSample(decodeImage(files[i]!), layout, mean, std, data, (i - from) * per);
      return { dataType: elemType, dims: [to - from, ...sampleDims], data };
    },
  };
}
