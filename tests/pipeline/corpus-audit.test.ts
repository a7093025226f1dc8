// `condense inspect` and `condense audit` must never crash on a valid model, whatever its ops:
// every model of the ONNX backend test suite goes through both (data-free audit).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CondenseError } from '../../src/errors.js';
import { loadModel } from '../../src/onnx/model-file.js';
import { audit } from '../../src/pipeline/audit.js';
import { inspect } from '../../src/pipeline/inspect.js';
import { auditReport } from '../../src/report/audit-report.js';
import { inspectReport } from '../../src/report/inspect-report.js';

import { backendCorpusModels as corpusModels, isBackendCorpusPresent } from '../helpers/backend-corpus.js';

const present = isBackendCorpusPresent();

describe.skipIf(!present)('inspect and audit on the ONNX backend test suite', () => {
  it('report every model without crashing, and every layer found is either mergeable or says why not', async () => {
    const files = corpusModels();
    expect(files.length).toBeGreaterThan(1000);
    let layers = 0;
    const crashes: string[] = [];
    for (const file of files) {
      try {
        loadModel(file);
      } catch (error) {
        // A model the codec rejects must be rejected as bad input, never with a crash.
        if (!(error instanceof CondenseError)) crashes.push(`${file}: load: ${(error as Error).message}`);
        continue;
      }
      try {
        const shown = inspectReport(inspect(file));
        const report = auditReport(await audit(file));
        expect(shown.layers.length).toBe(report.layers.length);
        for (const l of report.layers) {
          layers++;
          expect(l.mergeable || (l.reason ?? '').length > 0).toBe(true);
        }
      } catch (error) {
        crashes.push(`${file}: ${(error as Error).stack ?? error}`);
      }
    }
    expect(crashes).toEqual([]);
    // Most node tests feed weights as inputs; the pytorch-converted models carry real layers.
    expect(layers).toBeGreaterThan(20);
  }, 180_000);
});
