import * as fs from 'node:fs';
import * as path from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { check } from '../../src/pipeline/check.js';
import { parseCheckConfig } from '../../src/pipeline/check-config.js';
import { condense, fixturePath, scratchDir } from '../report/run-condense.js';

const dir = scratchDir('check');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function writeConfig(name: string, config: unknown): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config));
  return file;
}

const SMALL_INIT = fixturePath('two-layer-small-init.onnx');
const STANDARD_INIT = fixturePath('two-layer-standard-init.onnx');
const RELU_PLANTED = fixturePath('mlp-relu-planted.onnx');

describe('check config', () => {
  it('lists every problem at once, naming the file and each key', () => {
    const json = {
      rules: { maxRedundancy: 1.5, minEffectiveWidht: 8, prune: { maxParameterShare: 0.5, foo: 1 } },
      layers: { fc1: { maxRedundancy: null, bar: 2 } },
      extra: true,
    };
    let error: unknown;
    try {
      parseCheckConfig(json, 'condense.config.json');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toMatch(/^condense\.config\.json: 5 problems: /);
    for (const key of ['"extra"', '"rules.minEffectiveWidht"', '"rules.maxRedundancy"', '"rules.prune.foo"', '"layers.fc1.bar"']) expect(message).toContain(key);
    expect((error as ConfigError).code).toBe('BAD_CONFIG');
  });

  it('accepts null to switch a rule off for one layer, and resolves the baseline beside the config', () => {
    const config = parseCheckConfig({ rules: { maxRedundancy: 0.5 }, layers: { fc1: { maxRedundancy: null } }, baseline: 'base.json', probe: { random: 8 } }, '/ci/condense.config.json');
    expect(config.layers.fc1).toEqual({ maxRedundancy: null });
    expect(config.baseline).toBe(path.resolve('/ci/base.json'));
    expect(config.probe).toEqual({ random: 8 });
  });

  it('rejects null at the top level, where it would switch nothing', () => {
    expect(() => parseCheckConfig({ rules: { maxRedundancy: null } }, 'c.json')).toThrow(/"rules.maxRedundancy": expected a number in \[0, 1\], got null/);
  });
});

describe('condense check exit codes', () => {
  it('exits 0 when every rule passes, printing a table', async () => {
    const config = writeConfig('pass.json', { rules: { maxRedundancy: 0.5, minEffectiveWidth: 8, maxStaticShare: 0.2 } });
    const run = await condense(['check', RELU_PLANTED, '--config', config]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/PASSED: 0 failed, 3 passed/);
    expect(run.stdout).toMatch(/maxRedundancy\s+fc1\s+50%\s+\d+(\.\d)?%\s+PASS/);
    expect(run.stderr).toBe('');
  });

  it('exits 1 when a rule fails, naming the layer, the measure and the limit', async () => {
    const config = writeConfig('fail.json', { rules: { maxRedundancy: 0.5, minEffectiveWidth: 8 } });
    const run = await condense(['check', SMALL_INIT, '--config', config]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/FAILED: 2 failed/);
    expect(run.stdout).toMatch(/FAIL maxRedundancy fc1: redundancy 9\d(\.\d)?% \(\d effective of 64 neurons, weights\) is above the limit 50%/);
    expect(run.stdout).toMatch(/FAIL minEffectiveWidth fc1: effective width \d of 64 \(weights\) is below the minimum 8/);
    expect(run.stderr).toBe('condense: check failed: 2 of 4 rules failed\n');
  });

  it('exits 2 for a config with unknown keys, naming the file and the key', async () => {
    const config = writeConfig('typo.json', { rules: { maxRedundancyy: 0.5 } });
    const run = await condense(['check', SMALL_INIT, '--config', config]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`${config}: unknown key "rules.maxRedundancyy"`);
  });

  it('exits 2 for a config that is not JSON, or is missing', async () => {
    const broken = writeConfig('broken.json', '{ "rules": ');
    let run = await condense(['check', SMALL_INIT, '--config', broken]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(new RegExp(`^condense: ${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: is not valid JSON`));
    run = await condense(['check', SMALL_INIT, '--config', path.join(dir, 'nope.json')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('nope.json: no such file');
  });

  it('exits 2 when the config names a layer the model lacks, listing the model\'s layers', async () => {
    const config = writeConfig('layers.json', { layers: { fc9: { maxRedundancy: 0.1 } } });
    const run = await condense(['check', SMALL_INIT, '--config', config]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('"layers.fc9" names a layer the model does not have (its layers: fc1, fc2)');
  });

  it('exits 2 for maxRedundancyGrowth without a baseline, and for a bad model path', async () => {
    const config = writeConfig('growth.json', { rules: { maxRedundancyGrowth: 0.1 } });
    let run = await condense(['check', SMALL_INIT, '--config', config]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('"rules.maxRedundancyGrowth" needs a baseline report');
    run = await condense(['check', path.join(dir, 'missing.onnx')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('missing.onnx: no such file');
  });

  it('passes with a note when no rules are configured', async () => {
    const run = await condense(['check', SMALL_INIT, '--json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ schemaVersion: 1, kind: 'check', passed: true, results: [], summary: { passed: 0, failed: 0, skipped: 0 } });
    expect(report.notes[0]).toMatch(/no rules configured/);
  });
});

describe('rules', () => {
  it('skips read-out layers unless a layer section names them', async () => {
    const config = { rules: { minEffectiveWidth: 2 }, layers: {} as Record<string, object> };
    let result = await check(SMALL_INIT, { config: parseCheckConfig(config, 'c.json') });
    expect(result.outcomes.find((o) => o.layer === 'fc2')).toMatchObject({ status: 'skip', message: expect.stringMatching(/read-out layer/) });
    config.layers.fc2 = { minEffectiveWidth: 2 };
    result = await check(SMALL_INIT, { config: parseCheckConfig(config, 'c.json') });
    expect(result.outcomes.find((o) => o.layer === 'fc2')).toMatchObject({ status: 'fail', actual: 1, limit: 2 });
  });

  it('lets a layer section override or switch off a rule', async () => {
    const config = parseCheckConfig({ rules: { maxRedundancy: 0.5 }, layers: { fc1: { maxRedundancy: 0.99 } } }, 'c.json');
    const result = await check(SMALL_INIT, { config });
    expect(result.passed).toBe(true);
    expect(result.outcomes).toEqual([expect.objectContaining({ rule: 'maxRedundancy', layer: 'fc1', status: 'pass', limit: 0.99 }), expect.objectContaining({ layer: 'fc2', status: 'skip' })]);
    const off = await check(SMALL_INIT, { config: parseCheckConfig({ rules: { maxRedundancy: 0.5 }, layers: { fc1: { maxRedundancy: null } } }, 'c.json') });
    expect(off.outcomes.filter((o) => o.layer === 'fc1')).toEqual([]);
  });

  it('uses output measures when the config asks for probe data', async () => {
    const config = parseCheckConfig({ rules: { maxRedundancy: 1 }, probe: { random: 32 } }, 'c.json');
    const result = await check(SMALL_INIT, { config });
    expect(result.audit.probeSamples).toBe(32);
    expect(result.outcomes[0]!.message).toContain('outputs');
  });

  it('gates on "prunes to at most X% of the parameters with max relative error at most Y"', async () => {
    // mlp-relu-planted merges exactly from 341 to 229 parameters (67%).
    const pass = await check(RELU_PLANTED, { config: parseCheckConfig({ rules: { prune: { maxParameterShare: 0.7, maxRelativeError: 1e-4 } } }, 'c.json') });
    expect(pass.outcomes).toEqual([expect.objectContaining({ rule: 'prune', layer: null, status: 'pass' })]);
    expect(pass.outcomes[0]!.actual).toBeCloseTo(229 / 341, 6);
    const fail = await check(RELU_PLANTED, { config: parseCheckConfig({ rules: { prune: { maxParameterShare: 0.5, maxRelativeError: 1e-4 } } }, 'c.json') });
    expect(fail.passed).toBe(false);
    expect(fail.outcomes[0]!.message).toMatch(/^prunes to 67\.2% of the parameters \(341 -> 229\), above the limit 50%/);
  });

  it('gates a budgeted prune rule on the largest reduction within its error, where the all-or-nothing rule fails', async () => {
    // two-layer-standard-init: no exact merges, and --approximate misses every small budget; a search within 5e-2 cuts it.
    const rule = { maxParameterShare: 0.9, maxRelativeError: 5e-2 };
    const plain = await check(STANDARD_INIT, { config: parseCheckConfig({ rules: { prune: rule } }, 'c.json'), probe: { random: 256, seed: 0 } });
    expect(plain.outcomes[0]).toMatchObject({ rule: 'prune', status: 'fail' });
    const searched = await check(STANDARD_INIT, { config: parseCheckConfig({ rules: { prune: { ...rule, budget: true } } }, 'c.json'), probe: { random: 256, seed: 0 } });
    expect(searched.outcomes[0]).toMatchObject({ rule: 'prune', status: 'pass' });
    expect(searched.outcomes[0]!.actual).toBeLessThan(0.9);
    expect(searched.outcomes[0]!.message).toMatch(/max relative error (\S+) \(limit 0\.05\)/);
    const reached = Number(/max relative error (\S+) \(limit/.exec(searched.outcomes[0]!.message)![1]);
    expect(reached).toBeLessThanOrEqual(5e-2);
    expect(() => parseCheckConfig({ rules: { prune: { ...rule, budget: 'yes' } } }, 'c.json')).toThrow(/"rules\.prune\.budget": expected true or false, got "yes"/);
    expect(() => parseCheckConfig({ rules: { prune: { ...rule, budget: true, approximate: true } } }, 'c.json')).toThrow(/expected one of them/);
  }, 60_000);
});

describe('baseline', () => {
  let standardAudit: string;
  let smallAudit: string;
  beforeAll(async () => {
    standardAudit = path.join(dir, 'standard-audit.json');
    smallAudit = path.join(dir, 'small-audit.json');
    fs.writeFileSync(standardAudit, (await condense(['audit', STANDARD_INIT, '--json'])).stdout);
    fs.writeFileSync(smallAudit, (await condense(['audit', SMALL_INIT, '--json'])).stdout);
  });

  it('fails when a layer\'s redundancy grew by more than the limit', async () => {
    const config = writeConfig('growth-limit.json', { rules: { maxRedundancyGrowth: 0.05 } });
    const run = await condense(['check', SMALL_INIT, '--config', config, '--baseline', standardAudit, '--json']);
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout);
    expect(report.baseline).toBe(standardAudit);
    const growth = report.results.find((r: { rule: string; layer: string }) => r.rule === 'maxRedundancyGrowth' && r.layer === 'fc1');
    expect(growth.status).toBe('fail');
    expect(growth.actual).toBeGreaterThan(0.05);
    expect(growth.message).toMatch(/redundancy \d+(\.\d)?% -> 9\d(\.\d)?% \(weights\), growth/);
  });

  it('passes against itself, and takes the baseline from the config, relative to its folder', async () => {
    const config = writeConfig('with-baseline.json', { baseline: path.basename(smallAudit) });
    const run = await condense(['check', SMALL_INIT, '--config', config]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/maxRedundancyGrowth\s+fc1\s+0%\s+0%\s+PASS/);
    expect(run.stdout).toContain('note: baseline given without rules.maxRedundancyGrowth');
  });

  it('exits 2 for a baseline that is not an audit report', async () => {
    const bogus = writeConfig('bogus-report.json', { kind: 'prune', schemaVersion: 1 });
    const run = await condense(['check', SMALL_INIT, '--baseline', bogus]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${bogus}: 3 problems: "kind" is "prune", expected "audit"`);
  });
});

describe('CI outputs', () => {
  const config = (): string => writeConfig('ci.json', { rules: { maxRedundancy: 0.5, maxStaticShare: 0.9 }, layers: { fc2: { maxRedundancy: 0.5 } } });

  it('writes JUnit XML with a testcase per rule and layer, failures carrying their messages', async () => {
    const junit = path.join(dir, 'check.xml');
    const run = await condense(['check', SMALL_INIT, '--config', config(), '--junit', junit]);
    expect(run.code).toBe(1);
    const xml = fs.readFileSync(junit, 'utf8');
    expect(XMLValidator.validate(xml)).toBe(true);
    const parsed = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (name) => name === 'testcase' || name === 'testsuite' }).parse(xml);
    const suite = parsed.testsuites.testsuite[0];
    expect(suite.name).toBe(`condense check: ${SMALL_INIT}`);
    expect(Number(suite.tests)).toBe(4);
    expect(Number(suite.failures)).toBe(1);
    expect(Number(suite.skipped)).toBe(0);
    const cases = suite.testcase.map((c: { classname: string; name: string; failure?: { message: string } }) => [c.classname, c.name, c.failure ? 'fail' : 'pass']);
    expect(cases).toEqual([
      ['condense.check.maxRedundancy', 'fc1', 'fail'],
      ['condense.check.maxStaticShare', 'fc1', 'pass'],
      ['condense.check.maxRedundancy', 'fc2', 'pass'],
      ['condense.check.maxStaticShare', 'fc2', 'pass'],
    ]);
    expect(suite.testcase[0].failure.message).toMatch(/^redundancy 9\d(\.\d)?% .* above the limit 50%$/);
    expect(suite.testcase[0].failure.type).toBe('maxRedundancy');
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('prints GitHub Actions annotations when GITHUB_ACTIONS=true, and only then', async () => {
    const cfg = config();
    const onActions = await condense(['check', SMALL_INIT, '--config', cfg], { GITHUB_ACTIONS: 'true' });
    expect(onActions.code).toBe(1);
    const annotations = onActions.stdout.split('\n').filter((l) => l.startsWith('::'));
    expect(annotations).toHaveLength(2);
    expect(annotations[0]).toMatch(/^::error title=condense check%3A maxRedundancy \(fc1\)::.*two-layer-small-init\.onnx: layer fc1: redundancy 9\d(\.\d)?%25 .* above the limit 50%25$/);
    expect(annotations[1]).toMatch(/^::notice title=condense check::.*: failed \(1 failed, 3 passed, 0 skipped\)$/);
    const elsewhere = await condense(['check', SMALL_INIT, '--config', cfg]);
    expect(elsewhere.stdout).not.toContain('::error');
  });

  it('keeps --json output valid JSON on GitHub Actions', async () => {
    const run = await condense(['check', SMALL_INIT, '--config', config(), '--json'], { GITHUB_ACTIONS: 'true' });
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout);
    expect(report.summary).toEqual({ passed: 3, failed: 1, skipped: 0 });
    expect(report.audit.kind).toBe('audit');
  });
});
