// The statistics file `condense collect` writes and `--stats` reads (docs/stats-format.md): the
// per-layer output moments of one shard of probe data, with a header that says which model,
// layers and settings they belong to, so shards collected anywhere merge into the statistics of
// one run over all their probes, and shards of different models or settings are refused.

import { createHash } from 'node:crypto';
import { StatisticsFileError } from '../errors.js';
import { StreamingMoments } from '../numeric/streaming-moments.js';
import type { PositionSampling } from './collect-statistics.js';

const MAGIC = 'CONDSTAT';
export const STATISTICS_FORMAT_VERSION = 1;
const DIGEST_BYTES = 32;

/** What a shard's statistics belong to; two shards merge only when `model`, `layers` and `settings` agree. */
export interface StatisticsHeader {
  /** sha256 (hex) of the model's graph and weights (pipeline/statistics-shards.ts modelFingerprint). */
  model: string;
  /** Watched layers, in the order their moments follow the header. */
  layers: { name: string; width: number; positionStride: number }[];
  /** Collection settings that change what the moments mean. */
  settings: { positionSampling: boolean };
  /** Probe samples this shard ran. */
  samples: number;
  /** Where the samples came from ("file shard-0.npz"), for reports. */
  probeSource: string;
  /** The calibration of each position-strided layer on this shard's first batch. */
  positionSampling: PositionSampling[];
}

/**
 * The file's bytes, as chunks: magic, version, header, then per layer its row count, mean and the
 * upper triangle of its scatter (float64, little-endian), then a sha256 of everything before it.
 */
export function encodeStatisticsFile(header: StatisticsHeader, moments: ReadonlyMap<string, StreamingMoments>): Uint8Array[] {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = 16 + json.length;
  const padding = (8 - (headerLength % 8)) % 8;
  const start = new Uint8Array(headerLength + padding);
  start.set(new TextEncoder().encode(MAGIC), 0);
  const view = new DataView(start.buffer);
  view.setUint32(8, STATISTICS_FORMAT_VERSION, true);
  view.setUint32(12, json.length, true);
  start.set(json, 16);
  const chunks: Uint8Array[] = [start];
  const hash = createHash('sha256').update(start);
  for (const layer of header.layers) {
    const m = moments.get(layer.name);
    if (!m || m.variableCount !== layer.width) throw new RangeError(`no moments of width ${layer.width} for layer "${layer.name}"`);
    const body = new Float64Array(1 + layer.width + (layer.width * (layer.width + 1)) / 2);
    body[0] = m.count;
    body.set(m.mean, 1);
    let k = 1 + layer.width;
    for (let i = 0; i < layer.width; i++) {
      body.set(m.scatter.subarray(i * layer.width + i, (i + 1) * layer.width), k);
      k += layer.width - i;
    }
    const bytes = littleEndianBytes(body);
    hash.update(bytes);
    chunks.push(bytes);
  }
  chunks.push(new Uint8Array(hash.digest()));
  return chunks;
}

/** Header and moments of a statistics file; `subject` (its path) names it in errors. */
export function decodeStatisticsFile(bytes: Uint8Array, subject: string): { header: StatisticsHeader; moments: Map<string, StreamingMoments> } {
  const fail = (problem: string): never => {
    throw new StatisticsFileError(subject, problem);
  };
  if (bytes.length < 16 + DIGEST_BYTES || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) fail('is not an onnx-condense statistics file (expected one written by `condense collect`)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== STATISTICS_FORMAT_VERSION) fail(`has statistics format version ${version}; this condense reads version ${STATISTICS_FORMAT_VERSION}`);
  const jsonLength = view.getUint32(12, true);
  if (16 + jsonLength + DIGEST_BYTES > bytes.length) fail(`is truncated: its header says ${jsonLength} header bytes, the file has ${bytes.length} bytes in all`);
  const bodyEnd = bytes.length - DIGEST_BYTES;
  const digest = createHash('sha256').update(bytes.subarray(0, bodyEnd)).digest();
  if (!Buffer.from(bytes.subarray(bodyEnd)).equals(digest)) fail('is corrupted or truncated: its sha256 does not match its contents');
  let header: StatisticsHeader;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(16, 16 + jsonLength))) as StatisticsHeader;
  } catch {
    return fail('has a header that is not valid JSON');
  }
  if (typeof header.model !== 'string' || !Array.isArray(header.layers) || !Array.isArray(header.positionSampling) || !Number.isFinite(header.samples)) fail('has a header without model, layers, samples or positionSampling');
  let offset = 16 + jsonLength;
  offset += (8 - (offset % 8)) % 8;
  const moments = new Map<string, StreamingMoments>();
  for (const layer of header.layers) {
    const m = layer.width;
    if (!Number.isInteger(m) || m < 0) fail(`names layer "${String(layer.name)}" with width ${String(m)}; expected a whole number`);
    const values = 1 + m + (m * (m + 1)) / 2;
    if (offset + 8 * values > bodyEnd) fail(`is truncated: layer "${layer.name}" needs ${8 * values} bytes at offset ${offset}, the file has ${bodyEnd - offset}`);
    const body = readFloat64(bytes, offset, values);
    offset += 8 * values;
    const moment = new StreamingMoments(m);
    moment.count = body[0]!;
    moment.mean.set(body.subarray(1, 1 + m));
    let k = 1 + m;
    for (let i = 0; i < m; i++) {
      for (let j = i; j < m; j++) {
        const s = body[k++]!;
        moment.scatter[i * m + j] = s;
        moment.scatter[j * m + i] = s;
      }
    }
    if (!Number.isFinite(moment.count) || moment.count < 0) fail(`has a row count of ${moment.count} for layer "${layer.name}"`);
    moments.set(layer.name, moment);
  }
  if (offset !== bodyEnd) fail(`has ${bodyEnd - offset} bytes after its last layer; expected none`);
  return { header, moments };
}

function littleEndianBytes(values: Float64Array): Uint8Array {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (isLittleEndian) return bytes;
  const out = new Uint8Array(bytes.length);
  const view = new DataView(out.buffer);
  values.forEach((v, k) => view.setFloat64(8 * k, v, true));
  return out;
}

function readFloat64(bytes: Uint8Array, offset: number, count: number): Float64Array {
  if (isLittleEndian && (bytes.byteOffset + offset) % 8 === 0) return new Float64Array(bytes.buffer, bytes.byteOffset + offset, count);
  const out = new Float64Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 8 * count);
  for (let k = 0; k < count; k++) out[k] = view.getFloat64(8 * k, true);
  return out;
}

const isLittleEndian = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
