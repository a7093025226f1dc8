// One measurement path: a check with a prune rule loads the model once and runs the probes
// through one statistics session once, however many rules use them. The two functions are
// wrapped (they still do their real work) so the test can count the calls.

import { describe, expect, it, vi } from 'vitest';
import { fixturePath } from '../helpers/cli-runner.js';

const calls = vi.hoisted(() => ({ loadModel: [] as string[], collectStatistics: 0 }));

vi.mock('../../src/onnx/model-file.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/onnx/model-file.js')>();
  return { ...real, loadModel: (...args: Parameters<typeof real.loadModel>) => (calls.loadModel.push(args[0]), real.loadModel(...args)) };
});
vi.mock('../../src/runtime/collect-statistics.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/runtime/collect-statistics.js')>();
  return { ...real, collectStatistics: (...args: Parameters<typeof real.collectStatistics>) => (calls.collectStatistics++, real.collectStatistics(...args)) };
});

const { check } = await import('../../src/pipeline/check.js');
const { audit } = await import('../../src/pipeline/audit.js');
const { prune } = await import('../../src/pipeline/prune.js');

function reset(): void {
  calls.loadModel.length = 0;
  calls.collectStatistics = 0;
}

describe('one measurement path', () => {
  const model = fixturePath('mlp-relu-planted.onnx');
  const config = { rules: { maxRedundancy: 0.9, prune: { maxParameterShare: 0.9, maxRelativeError: 1e-4, approximate: false } }, layers: {} };

  it('counts what it claims to: an audit with probes loads once and collects once', async () => {
    reset();
    await audit(model, { probe: { random: 16 } });
    expect(calls).toEqual({ loadModel: [model], collectStatistics: 1 });
  });

  it('lets a check with a prune rule load the model once and collect statistics once', async () => {
    reset();
    const result = await check(model, { config, probe: { random: 64 } });
    expect(result.outcomes.find((o) => o.rule === 'prune')?.status).toBe('pass');
    expect(calls).toEqual({ loadModel: [model], collectStatistics: 1 });
  });

  it('lets a check with a prune rule and no probes measure once on the default prune probes', async () => {
    reset();
    const result = await check(model, { config });
    expect(result.outcomes.find((o) => o.rule === 'prune')?.status).toBe('pass');
    expect(result.audit.probeSamples).toBe(256);
    expect(calls).toEqual({ loadModel: [model], collectStatistics: 1 });
  });

  it('gives the same plan from the check measurement as from prune on its own', async () => {
    reset();
    const alone = await prune(model, { output: '', dryRun: true, probe: { random: 64 } });
    const viaCheck = await check(model, { config, probe: { random: 64 } });
    const share = alone.params.after / alone.params.before;
    expect(viaCheck.outcomes.find((o) => o.rule === 'prune')?.actual).toBe(share);
  });
});
