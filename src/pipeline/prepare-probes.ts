// Turns ProbeOptions into probe sets: the samples statistics are fitted on, and held-out samples
// that only verification sees.

import { OptionError } from '../errors.js';
import type { Model } from '../ir/model.js';
import { imageProbes, loadProbeFiles, randomProbes, sliceProbes, type ProbeOptions, type ProbeSet } from '../runtime/probe-data.js';

export interface PreparedProbes {
  fit: ProbeSet;
  holdout: ProbeSet | undefined;
  /** How the probes were made, for reports: "file x.npy", "random Gaussian (seed 0)". */
  source: string;
  /** Where the held-out samples come from (their own seed, or the last samples of the files); undefined without holdout. */
  holdoutSource?: string;
  /** How inputs other than plain samples are fed (pinned values, zero state, token ids). */
  notes: string[];
}

/** True when the options ask for probe data at all. */
export function wantsProbes(options: ProbeOptions | undefined): boolean {
  return !!options && ((options.files?.length ?? 0) > 0 || options.random !== undefined || options.images !== undefined);
}

/** How many samples verification gets: `samples` for random probes; `atLeast` raises the default (files: up to half of them). */
export interface HoldoutOptions {
  samples?: number;
  atLeast?: number;
}

/**
 * Probe sets for a model. With `holdout`, files are split (the last quarter held out) and random
 * probes get a second, independently seeded draw.
 */
export function prepareProbes(model: Model, options: ProbeOptions, holdout: HoldoutOptions | undefined): PreparedProbes {
  const feeds = {
    ...(options.pinned ? { pinned: options.pinned } : {}),
    ...(options.batchAxes ? { batchAxes: options.batchAxes } : {}),
    ...(options.shapes ? { shapes: options.shapes } : {}),
  };
  // Library errors name API options (random, files, images); the CLI shows them as flags.
  const sources = ([['files', 'probe files'], ['random', 'random probes'], ['images', 'images']] as const)
    .filter(([key]) => (key === 'files' ? (options.files?.length ?? 0) > 0 : options[key] !== undefined));
  if (sources.length > 1) throw new OptionError(sources[1]![0], `cannot be combined with ${sources[0]![1]}; give one probe source`);
  if ((options.files?.length ?? 0) > 0 || options.images) {
    const all = options.images ? imageProbes(model, { ...options.images, seed: options.images.seed ?? options.seed ?? 0 }, feeds) : loadProbeFiles(model, options.files!, feeds);
    const source = options.images ? (all as ProbeSet & { describe?: string }).describe ?? `images ${options.images.dir}` : `file ${options.files!.join(', ')}`;
    const notes = all.notes ?? [];
    if (!holdout) return { fit: all, holdout: undefined, source, notes };
    const option = options.images ? 'images' : 'files';
    const unit = all.fixedBatch ?? 1;
    const units = Math.floor(all.count / unit);
    if (units < 2) throw new OptionError(option, `has ${all.count} samples; verification needs at least ${2 * unit} (some to fit, some held out)`);
    const quarter = Math.max(1, Math.round(units / 4));
    const held = Math.max(quarter, Math.min(Math.ceil((holdout.atLeast ?? 0) / unit), Math.floor(units / 2))) * unit;
    return {
      fit: sliceProbes(all, 0, all.count - held), holdout: sliceProbes(all, all.count - held, all.count), source, notes,
      holdoutSource: `the last ${held} of the ${all.count} samples (${options.images ? 'images' : 'probe files'}), not used for fitting`,
    };
  }
  const count = options.random ?? 0;
  const seed = options.seed ?? 0;
  const shapes = options.shapes ?? {};
  const fit = randomProbes(model, count, { seed, ...feeds, shapes });
  const source = `${randomKind(fit)} (seed ${seed})`;
  const notes = fit.notes ?? [];
  if (!holdout) return { fit, holdout: undefined, source, notes };
  const unit = fit.fixedBatch ?? 1;
  const want = holdout.samples ?? Math.max(16, Math.ceil(count / 4), holdout.atLeast ?? 0);
  const held = Math.max(unit, Math.ceil(want / unit) * unit);
  const holdoutSeed = seed + HOLDOUT_SEED_OFFSET;
  return { fit, holdout: randomProbes(model, held, { seed: holdoutSeed, ...feeds, shapes }), source, notes, holdoutSource: `${randomKind(fit)} (seed ${holdoutSeed}), drawn apart from the fitting samples` };
}

/** What random probes are for this model's inputs: Gaussian floats, token ids, or both. */
function randomKind(fit: ProbeSet): string {
  const drawn = fit.drawn;
  if (!drawn?.tokenIds.length) return 'random Gaussian';
  return drawn.gaussian.length ? 'random Gaussian floats and token ids' : 'random token ids';
}

/** Held-out random probes use the fitting seed plus this, so the two draws never share a stream start. */
export const HOLDOUT_SEED_OFFSET = 1_000_003;
