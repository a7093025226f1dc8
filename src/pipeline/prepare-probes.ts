// Turns ProbeOptions into probe sets: the samples statistics are fitted on, and held-out samples
// that only verification sees.

import { OptionError } from '../errors.js';
import type { Model } from '../ir/model.js';
import { loadProbeFiles, randomProbes, sliceProbes, type ProbeOptions, type ProbeSet } from '../runtime/probe-data.js';

export interface PreparedProbes {
  fit: ProbeSet;
  holdout: ProbeSet | undefined;
  /** How the probes were made, for reports: "file x.npy", "random (seed 0)". */
  source: string;
}

/** True when the options ask for probe data at all. */
export function wantsProbes(options: ProbeOptions | undefined): boolean {
  return !!options && ((options.files?.length ?? 0) > 0 || options.random !== undefined);
}

/**
 * Probe sets for a model. With `holdout`, files are split (the last quarter held out) and random
 * probes get a second, independently seeded draw.
 */
export function prepareProbes(model: Model, options: ProbeOptions, holdout: { samples?: number } | undefined): PreparedProbes {
  if ((options.files?.length ?? 0) > 0) {
    if (options.random !== undefined) throw new OptionError('random', 'cannot be combined with probe files; give one or the other');
    const all = loadProbeFiles(model, options.files!);
    const source = `file ${options.files!.join(', ')}`;
    if (!holdout) return { fit: all, holdout: undefined, source };
    const unit = all.fixedBatch ?? 1;
    const units = Math.floor(all.count / unit);
    if (units < 2) throw new OptionError('files', `has ${all.count} samples; verification needs at least ${2 * unit} (some to fit, some held out)`);
    const held = Math.max(1, Math.round(units / 4)) * unit;
    return { fit: sliceProbes(all, 0, all.count - held), holdout: sliceProbes(all, all.count - held, all.count), source };
  }
  const count = options.random ?? 0;
  const seed = options.seed ?? 0;
  const shapes = options.shapes ?? {};
  const fit = randomProbes(model, count, { seed, shapes });
  const source = `random Gaussian (seed ${seed})`;
  if (!holdout) return { fit, holdout: undefined, source };
  const unit = fit.fixedBatch ?? 1;
  const want = holdout.samples ?? Math.max(16, Math.ceil(count / 4));
  const held = Math.max(unit, Math.ceil(want / unit) * unit);
  return { fit, holdout: randomProbes(model, held, { seed: seed + 1_000_003, shapes }), source };
}
