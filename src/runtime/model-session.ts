// The only importer of onnxruntime-node: creates sessions on an execution provider and runs them
// on host tensors. Swapping the backend or adding a provider touches this file alone.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as ort from 'onnxruntime-node';
import { ProviderUnavailableError, RuntimeError } from '../errors.js';
import { DataType, dataTypeName } from '../ir/data-type.js';
import type { HostData, HostTensor } from './host-tensor.js';

// Session creation failures reach callers as RuntimeError or ProviderUnavailableError; the
// runtime's own logger would print them again, in colour and over several lines.
ort.env.logLevel = 'fatal';

export type Device = 'cpu' | 'cuda' | 'webgpu';
export const DEVICES: readonly Device[] = ['cpu', 'cuda', 'webgpu'];

export interface SessionOptions {
  device?: Device;
  /**
   * Threads for onnxruntime's intra-op pool (default: every core Node.js reports). onnxruntime's
   * own default counts physical cores as it detects them, which on some virtual machines is one
   * of two cores: half the GEMM throughput.
   */
  threads?: number;
  /** Turn off graph optimisations, so every node of the file runs as written. */
  disableOptimizations?: boolean;
}

const ortTypeByDataType: Record<number, ort.Tensor.Type> = {
  [DataType.FLOAT]: 'float32', [DataType.DOUBLE]: 'float64', [DataType.INT64]: 'int64', [DataType.INT32]: 'int32',
  [DataType.UINT8]: 'uint8', [DataType.INT8]: 'int8', [DataType.BOOL]: 'bool', [DataType.FLOAT16]: 'float16',
  [DataType.UINT16]: 'uint16', [DataType.INT16]: 'int16', [DataType.UINT32]: 'uint32', [DataType.UINT64]: 'uint64',
  [DataType.STRING]: 'string',
};
const dataTypeByOrtType = Object.fromEntries(Object.entries(ortTypeByDataType).map(([k, v]) => [v, Number(k)])) as Record<string, number>;

/**
 * Above this model size, sessions skip onnxruntime's layout optimizations ('extended' instead of
 * 'all'): the NCHWc transform re-lays every conv weight while the session is created, a transient
 * of about twice the float32 weights on top of the model (measured on a 42 M-parameter float16
 * CNN: 794 MB peak against 429 MB). Small models keep them, where convolutions gain most.
 */
export const LAYOUT_OPTIMIZATION_MAX_BYTES = 64 * 2 ** 20;

function modelBytes(model: Uint8Array | string): number {
  if (typeof model !== 'string') return model.length;
  try {
    return fs.statSync(model).size;
  } catch {
    return 0;
  }
}

const installHelp: Record<Device, string> = {
  cpu: '',
  cuda: 'install the CUDA provider with network access: npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12 (needs an NVIDIA driver and CUDA 12 libraries)',
  webgpu: 'the WebGPU provider ships with onnxruntime-node but needs a GPU with a Vulkan loader (Debian: libvulkan1 and the GPU vendor driver; NVIDIA\'s Vulkan driver also needs libglvnd0 and libglx0)',
};

/** A loaded model ready to run; release() frees native memory. */
export class ModelSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly subject: string,
    readonly device: Device,
  ) {}

  /**
   * Creates a session from model bytes, or from the path of an .onnx file, whose external data
   * onnxruntime then reads from beside it: the way to load a model past protobuf's 2 GiB limit.
   * `subject` (the file) names the model in errors.
   */
  static async create(model: Uint8Array | string, subject: string, options: SessionOptions = {}): Promise<ModelSession> {
    const device = options.device ?? 'cpu';
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: [device],
      // Failures reach callers as RuntimeError; onnxruntime's own log would print them twice.
      logSeverityLevel: 4,
      graphOptimizationLevel: options.disableOptimizations ? 'disabled' : modelBytes(model) > LAYOUT_OPTIMIZATION_MAX_BYTES ? 'extended' : 'all',
      // The memory pattern plans one block for all intermediates after the first run and so
      // allocates a second time on the second; first touching that memory costs more than the
      // plan saves (measured: a statistics run's second batch took 4x the steady batches).
      enableMemPattern: false,
    };
    sessionOptions.intraOpNumThreads = options.threads ?? os.availableParallelism();
    try {
      const session = typeof model === 'string'
        ? await ort.InferenceSession.create(model, sessionOptions)
        : await ort.InferenceSession.create(model, sessionOptions);
      return new ModelSession(session, subject, device);
    } catch (cause) {
      const message = firstLine(cause);
      if (device !== 'cpu' && /provider|cuda|webgpu|dawn|vulkan|libonnxruntime_providers|not (found|supported|available)/i.test(message)) {
        throw new ProviderUnavailableError(`--device ${device}`, `execution provider "${device}" is not available (${message}); ${installHelp[device]}`, { cause });
      }
      throw new RuntimeError(subject, `onnxruntime cannot load the model: ${message}`, { cause });
    }
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Runs the model; returns the requested outputs (default: all) as host tensors. */
  async run(feeds: Record<string, HostTensor>, outputNames?: readonly string[]): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      const type = ortTypeByDataType[t.dataType];
      if (!type) throw new RuntimeError(this.subject, `input "${name}" has element type ${dataTypeName(t.dataType)}, which onnxruntime-node cannot feed`);
      ortFeeds[name] = new ort.Tensor(type, t.data as never, t.dims);
    }
    let results: ort.InferenceSession.OnnxValueMapType;
    try {
      results = outputNames ? await this.session.run(ortFeeds, [...outputNames]) : await this.session.run(ortFeeds);
    } catch (cause) {
      throw new RuntimeError(this.subject, `onnxruntime failed to run the model: ${firstLine(cause)}`, { cause });
    }
    const out: Record<string, HostTensor> = {};
    for (const [name, value] of Object.entries(results)) {
      const t = value as ort.Tensor;
      out[name] = { dataType: dataTypeByOrtType[t.type] ?? DataType.UNDEFINED, dims: [...t.dims], data: t.data as HostData };
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n').find((l) => l.trim() !== '')?.trim() ?? message;
}

/** Execution providers this onnxruntime-node build knows (bundled or installable). */
export function listDevices(): { name: string; bundled: boolean }[] {
  return ort.listSupportedBackends().map((b) => ({ name: b.name, bundled: b.bundled }));
}
