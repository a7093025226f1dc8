// Every failure of the command line: one line on stderr that starts "condense: <subject>", the
// documented exit code (README: 2 bad usage or input, 3 verification failed, 4 runtime or
// provider), nothing on stdout, and nothing written: the output folder is left exactly as it was.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../cli/program.js';
import { encodeModel, encodeNpy, encodeNpz, loadModel, type NpyArray } from '../../src/index.js';
import { fixturePath, repoRoot, runCliInProcess, type CliResult } from '../helpers/cli-runner.js';
import { scratchFolder } from '../helpers/scratch-folder.js';

const { root: scratch, freshFolder } = scratchFolder('errors');

/** Every file under `dir` with its bytes, so a test can see that nothing was added or changed. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const full = path.join(entry.parentPath, entry.name);
      files[path.relative(dir, full)] = fs.readFileSync(full).toString('base64');
    }
  }
  return files;
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Runs the CLI expecting it to fail with `code` and a single stderr line starting
 * "condense: <subject>: "; checks `folder` is byte for byte unchanged. Returns the message.
 */
async function expectFailure(args: string[], expected: { code: number; subject: string; folder: string }): Promise<string> {
  const before = snapshot(expected.folder);
  const result: CliResult = await runCliInProcess(args);
  expect(result.code).toBe(expected.code);
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(/^[^\n]*\n$/);
  expect(result.stderr).toMatch(new RegExp(`^condense: ${escape(expected.subject)}: \\S`));
  expect(snapshot(expected.folder)).toEqual(before);
  return result.stderr.trimEnd();
}

const relu = fixturePath('mlp-relu-planted.onnx');
const float32 = (shape: number[]): NpyArray => ({ dtype: 'float32', shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i)) });

describe('bad model files exit 2 and name the file', () => {
  it('refuses a text file that is not an ONNX model', async () => {
    const folder = freshFolder();
    const file = path.join(folder, 'notes.onnx');
    fs.writeFileSync(file, 'this is not a model\nbut a note\n');
    const message = await expectFailure(['prune', file, '-o', path.join(folder, 'out.onnx')], { code: EXIT.usage, subject: file, folder });
    expect(message).toMatch(/not a valid ONNX model/);
  });

  it('refuses a model cut to half its bytes', async () => {
    const folder = freshFolder();
    const bytes = fs.readFileSync(relu);
    const file = path.join(folder, 'half.onnx');
    fs.writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await expectFailure(['prune', file, '-o', path.join(folder, 'out.onnx')], { code: EXIT.usage, subject: file, folder });
    await expectFailure(['inspect', file], { code: EXIT.usage, subject: file, folder });
  });

  it('reports a model path that does not exist', async () => {
    const folder = freshFolder();
    const file = path.join(folder, 'missing.onnx');
    const message = await expectFailure(['audit', file], { code: EXIT.usage, subject: file, folder });
    expect(message).toMatch(/no such file/);
  });

  it('refuses an empty file', async () => {
    const folder = freshFolder();
    const file = path.join(folder, 'empty.onnx');
    fs.writeFileSync(file, '');
    const message = await expectFailure(['prune', file, '-o', path.join(folder, 'out.onnx')], { code: EXIT.usage, subject: file, folder });
    expect(message).toMatch(/is empty/);
  });

  it('refuses external data whose location climbs out of the model folder, naming the tensor', async () => {
    const folder = freshFolder();
    fs.mkdirSync(path.join(folder, 'model'));
    // A real fixture with its weights moved to "../x.bin", which exists and holds the right bytes:
    // only the location is wrong.
    const { modelBytes, externalChunks } = encodeModel(loadModel(relu), { externalData: { location: '../x.bin', thresholdBytes: 64 } });
    expect(externalChunks.length).toBeGreaterThan(0);
    const file = path.join(folder, 'model', 'ext.onnx');
    fs.writeFileSync(file, modelBytes);
    fs.writeFileSync(path.join(folder, 'x.bin'), Buffer.concat(externalChunks));
    const message = await expectFailure(['prune', file, '-o', path.join(folder, 'model', 'out.onnx')], { code: EXIT.usage, subject: file, folder });
    expect(message).toMatch(/tensor "fc1\.weight": external data location "\.\.\/x\.bin" is outside the model's folder/);
  });
});

describe('bad probe data exits 2 and names the input', () => {
  it('says the model was read as a probe file when it follows --probe, and that -- ends the list', async () => {
    const run = await runCliInProcess(['audit', '--probe', fixturePath('mnist-probe.npy'), fixturePath('mnist-mlp.onnx')]);
    expect(run.code).toBe(EXIT.usage);
    expect(run.stderr).toMatch(/^condense: --probe takes one or more files and read the model ".*mnist-mlp\.onnx" as one of them; put the model before --probe, or end the list with -- /);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    const ended = await runCliInProcess(['audit', '--json', '--quiet', '--probe', fixturePath('mnist-probe.npy'), '--', fixturePath('mnist-mlp.onnx')]);
    expect(ended.code).toBe(0);
    expect(JSON.parse(ended.stdout).probe.samples).toBeGreaterThan(0);
  });

  it('reports a model input that an .npz with the wrong key does not cover', async () => {
    const folder = freshFolder();
    const probe = path.join(folder, 'probe.npz');
    fs.writeFileSync(probe, encodeNpz(new Map([['images', float32([8, 8])]])));
    const message = await expectFailure(['prune', relu, '-o', path.join(folder, 'out.onnx'), '--probe', probe], { code: EXIT.usage, subject: '--probe', folder });
    expect(message).toContain('model input "x" has no probe data');
    expect(message).toContain(`${probe}:images: feeds "images", which is not a model input`);
  });

  it('reports name=file for an input the model does not have', async () => {
    const folder = freshFolder();
    const probe = path.join(folder, 'probe.npy');
    fs.writeFileSync(probe, encodeNpy(float32([8, 8])));
    const message = await expectFailure(['audit', relu, '--probe', `pixels=${probe}`], { code: EXIT.usage, subject: '--probe', folder });
    expect(message).toContain('model input "x" has no probe data; expected --probe x=file.npy');
    expect(message).toContain('feeds "pixels", which is not a model input');
  });

  it('reports a probe with the wrong feature count, naming the input and both shapes', async () => {
    const folder = freshFolder();
    const probe = path.join(folder, 'narrow.npy');
    fs.writeFileSync(probe, encodeNpy(float32([8, 7])));
    const message = await expectFailure(['prune', relu, '-o', path.join(folder, 'out.onnx'), '--probe', probe], { code: EXIT.usage, subject: probe, folder });
    expect(message).toBe(`condense: ${probe}: input "x" expects shape [batch, 8], got [8, 7]`);
  });

  it('reports int64 probe data for a float input', async () => {
    const folder = freshFolder();
    const probe = path.join(folder, 'ints.npy');
    fs.writeFileSync(probe, encodeNpy({ dtype: 'int64', shape: [8, 8], data: new BigInt64Array(64).fill(1n) }));
    const message = await expectFailure(['audit', relu, '--probe', probe], { code: EXIT.usage, subject: probe, folder });
    expect(message).toBe(`condense: ${probe}: input "x" expects float data, got int64`);
  });
});

describe('bad options exit 2 and name the option', () => {
  it('names --threshold and its accepted range for 1.5', async () => {
    const folder = freshFolder();
    const message = await expectFailure(['prune', relu, '-o', path.join(folder, 'out.onnx'), '--threshold', '1.5'], { code: EXIT.usage, subject: '--threshold', folder });
    expect(message).toBe('condense: --threshold: expected a number in (0, 1], got "1.5"');
  });

  it('refuses --random 0', async () => {
    const folder = freshFolder();
    const message = await expectFailure(['audit', relu, '--random', '0'], { code: EXIT.usage, subject: '--random', folder });
    expect(message).toMatch(/positive whole number.*got "0"/);
  });

  it('lists the devices for --device nosuch', async () => {
    const folder = freshFolder();
    const message = await expectFailure(['audit', relu, '--device', 'nosuch'], { code: EXIT.usage, subject: '--device', folder });
    expect(message).toBe('condense: --device: expected one of cpu, cuda, webgpu, got "nosuch"');
  });

  it('keeps commander usage errors to one line', async () => {
    const folder = freshFolder();
    const result = await runCliInProcess(['audit', relu, '--no-such-option']);
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toMatch(/^condense: unknown option '--no-such-option'[^\n]*\n$/);
    expect(snapshot(folder)).toEqual({});
  });

  it('asks for -o when prune is given no output', async () => {
    const folder = freshFolder();
    fs.copyFileSync(relu, path.join(folder, 'model.onnx'));
    const message = await expectFailure(['prune', path.join(folder, 'model.onnx')], { code: EXIT.usage, subject: '--output', folder });
    expect(message).toMatch(/is required/);
  });

  it('never writes over its input, however the path is spelled', async () => {
    const folder = freshFolder();
    const model = path.join(folder, 'model.onnx');
    fs.copyFileSync(relu, model);
    for (const output of [model, path.join(folder, '.', 'model.onnx'), path.relative(process.cwd(), model)]) {
      const message = await expectFailure(['prune', model, '-o', output], { code: EXIT.usage, subject: '--output', folder });
      expect(message).toMatch(/is the input model/);
    }
    expect(fs.readFileSync(model).equals(fs.readFileSync(relu))).toBe(true);
  });
});

describe('runtime failures', () => {
  it('exits 3 when the pruned model misses --max-error, naming the layer at fault and writing nothing', async () => {
    const folder = freshFolder();
    const model = fixturePath('mnist-mlp.onnx');
    const message = await expectFailure(
      ['prune', model, '--probe', fixturePath('mnist-probe.npy'), '--approximate', '--max-error', '1e-9', '-o', path.join(folder, 'small.onnx')],
      { code: EXIT.verificationFailed, subject: model, folder },
    );
    expect(message).toMatch(/above --max-error 1e-9; layers at fault: fc1 \(/);
    expect(message).toMatch(/nothing was written$/);
  });

  // The package is installed with onnxruntime-node-install=skip (.npmrc), so the CUDA provider
  // library is absent unless someone ran the rebuild the README describes.
  const ortBin = path.join(repoRoot, 'node_modules', 'onnxruntime-node', 'bin');
  const hasCudaProvider = fs.existsSync(ortBin) && (fs.readdirSync(ortBin, { recursive: true }) as string[]).some((f) => /onnxruntime_providers_cuda/.test(f));

  it.skipIf(hasCudaProvider)('exits 4 for --device cuda without the CUDA provider, saying how to install it', async () => {
    const folder = freshFolder();
    const message = await expectFailure(['prune', relu, '--device', 'cuda', '-o', path.join(folder, 'out.onnx')], { code: EXIT.runtime, subject: '--device cuda', folder });
    expect(message).toMatch(/execution provider "cuda" is not available/);
    expect(message).toContain('npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12');
  });
});
