// Verification: the rewritten model against the original on held-out probes, in onnxruntime.
// No model is written unless this passes.

import { isFloatType } from '../ir/data-type.js';
import { Model } from '../ir/model.js';
import { openModelSession } from './open-model-session.js';
import { outputDifference, relativeError } from '../numeric/output-difference.js';
import { hostToFloat64, type HostTensor } from './host-tensor.js';
import { ModelSession, type SessionOptions } from './model-session.js';
import { probeBatches, type ProbeSet } from './probe-data.js';

export interface VerifyOptions {
  /** Largest accepted relative error max|y' - y| / max|y| over every output (default 1e-4). */
  maxError?: number;
  /** Held-out samples when probes are random (default: a quarter of the probe count, at least 16). */
  holdoutSamples?: number;
}

export interface Fidelity {
  maxAbsError: number;
  /** max over outputs of max|y' - y| / max|y|. */
  maxRelError: number;
  /** Share of samples whose argmax agrees, for outputs shaped [N, classes]; null otherwise. */
  top1Agreement: number | null;
  samples: number;
  /** The output with the largest relative error. */
  worstOutput: string;
  /**
   * The first NaN or infinity that is not the same infinity in both models (then both errors are
   * +Inf, so no bound accepts it); null when every non-finite value matched.
   */
  nonFinite: { output: string; sample: number; element: number; original: number; rewritten: number } | null;
}

/** Encoded bytes, a file path, or a model (staged through a file when too big for one buffer). */
export type ModelSource = Uint8Array | string | Model;

function openSource(source: ModelSource, subject: string, options: SessionOptions | undefined): Promise<ModelSession> {
  return source instanceof Model ? openModelSession(source, subject, options) : ModelSession.create(source, subject, options);
}

/** Runs both models on `holdout` and measures how far the rewritten outputs are from the original. */
export async function compareModels(original: ModelSource, rewritten: ModelSource, subject: string, holdout: ProbeSet, options: { session?: SessionOptions; batchSize?: number } = {}): Promise<Fidelity> {
  // One session at a time: the original's outputs on the (small) held-out set are kept, its
  // session released, then the rewritten model runs. Two sessions of a large model at once would
  // double the runtime's copy of the weights at the peak.
  const batches = [...probeBatches(holdout, options.batchSize ?? 32)];
  const reference: Record<string, HostTensor>[] = [];
  const a = await openSource(original, subject, options.session);
  let outputNames: readonly string[];
  try {
    outputNames = a.outputNames;
    for (const feeds of batches) reference.push(await a.run(feeds));
  } finally {
    await a.release();
  }
  const maxAbs = new Map<string, number>();
  const maxRef = new Map<string, number>();
  let agree = 0;
  let classified = 0;
  let nonFinite: Fidelity['nonFinite'] = null;
  let sampleOffset = 0;
  // The original loaded and ran; a rewrite onnxruntime refuses is this tool's bug (exit 70), not a runtime problem.
  const refused = (cause: unknown): Error => new Error(`onnxruntime refuses the rewritten model of ${subject} (a bug in the rewrite): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  let b: ModelSession;
  try {
    b = await openSource(rewritten, `${subject} (rewritten)`, options.session);
  } catch (cause) {
    throw refused(cause);
  }
  try {
    for (const [k, feeds] of batches.entries()) {
      const ya = reference[k]!;
      let yb: Record<string, HostTensor>;
      try {
        yb = await b.run(feeds);
      } catch (cause) {
        throw refused(cause);
      }
      let firstClassifier = true;
      for (const name of outputNames) {
        const ta = ya[name]!;
        const tb = yb[name];
        if (!tb) throw new Error(`rewritten model lost output "${name}"`);
        if (!isFloatType(ta.dataType) || Array.isArray(ta.data)) continue;
        const va = hostToFloat64(ta);
        const vb = hostToFloat64(tb);
        if (va.length !== vb.length) throw new Error(`output "${name}" changed size from ${va.length} to ${vb.length}`);
        const d = outputDifference(va, vb);
        const mAbs = Math.max(maxAbs.get(name) ?? 0, d.nonFinite ? Infinity : d.maxAbsError);
        const mRef = Math.max(maxRef.get(name) ?? 0, d.maxReference);
        if (d.nonFinite && !nonFinite) {
          const perSample = va.length / Math.max(1, ta.dims[0] ?? 1);
          nonFinite = { output: name, sample: sampleOffset + Math.floor(d.nonFinite.index / perSample), element: d.nonFinite.index % perSample, original: d.nonFinite.reference, rewritten: d.nonFinite.candidate };
        }
        maxAbs.set(name, mAbs);
        maxRef.set(name, mRef);
        if (firstClassifier && ta.dims.length === 2 && ta.dims[1]! > 1) {
          firstClassifier = false;
          const [rows, cols] = ta.dims as [number, number];
          for (let r = 0; r < rows; r++) {
            let ia = 0;
            let ib = 0;
            for (let c = 1; c < cols; c++) {
              if (va[r * cols + c]! > va[r * cols + ia]!) ia = c;
              if (vb[r * cols + c]! > vb[r * cols + ib]!) ib = c;
            }
            if (ia === ib) agree++;
            classified++;
          }
        }
      }
      sampleOffset += batchRows(feeds);
    }
  } finally {
    await b.release();
  }
  let maxAbsError = 0;
  let maxRelError = 0;
  let worstOutput = '';
  for (const [name, d] of maxAbs) {
    const rel = relativeError(d, maxRef.get(name)!);
    maxAbsError = Math.max(maxAbsError, d);
    if (rel >= maxRelError) {
      maxRelError = rel;
      worstOutput = name;
    }
  }
  return { maxAbsError, maxRelError, top1Agreement: classified ? agree / classified : null, samples: holdout.count, worstOutput: nonFinite?.output ?? worstOutput, nonFinite };
}

/** Samples in one batch of feeds: the first axis of any input (1 for scalars). */
function batchRows(feeds: Record<string, { dims: readonly number[] }>): number {
  const first = Object.values(feeds)[0];
  return first?.dims[0] ?? 1;
}
