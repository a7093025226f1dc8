// Hostile input through the command line (issue 12): every case is refused with one line and the
// documented exit code, the input is never touched, and nothing is written.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { EXIT } from '../../cli/program.js';
import { encodeModel, encodeNpy, loadModel, saveModel } from '../../src/index.js';
import { Tensor } from '../../src/ir/tensor.js';
import { fixturePath, runCliInProcess, type CliResult } from '../helpers/cli-runner.js';
import { scratchFolder } from '../helpers/scratch-folder.js';

const { root: scratch, freshFolder } = scratchFolder('hostile');

const relu = fixturePath('mlp-relu-planted.onnx');

function expectOneLine(result: CliResult, code: number): string {
  expect(result.code).toBe(code);
  expect(result.stderr).toMatch(/^condense: [^\n]*\n$/);
  return result.stderr.trimEnd();
}

/** The relu fixture with its weights in an external file beside it; returns both paths. */
function externalCopy(folder: string): { model: string; data: string } {
  const model = path.join(folder, 'm.onnx');
  saveModel(loadModel(relu), model, { externalDataThresholdBytes: 64 });
  return { model, data: `${model}.data` };
}

describe('the output path is checked against every file the input uses', () => {
  it('refuses -o onto the input model\'s external data file and leaves it intact', async () => {
    const { model, data } = externalCopy(freshFolder());
    const before = fs.readFileSync(data);
    const message = expectOneLine(await runCliInProcess(['prune', model, '-o', data, '--random', '32']), EXIT.usage);
    expect(message).toMatch(/--output: .*m\.onnx\.data" is a file the input model uses/);
    expect(fs.readFileSync(data).equals(before)).toBe(true);
  });

  it('refuses -o through a hard link to the input model (same device and inode)', async () => {
    const folder = freshFolder();
    const model = path.join(folder, 'm.onnx');
    fs.copyFileSync(relu, model);
    fs.linkSync(model, path.join(folder, 'link.onnx'));
    const message = expectOneLine(await runCliInProcess(['prune', model, '-o', path.join(folder, 'link.onnx'), '--random', '32']), EXIT.usage);
    expect(message).toMatch(/--output: .*link\.onnx" is the input model/);
  });

  it('refuses -o onto something that is not a regular file (a FIFO, a folder)', async () => {
    // A FIFO stands in for a character device: a test must never risk replacing a real /dev entry.
    const folder = freshFolder();
    const fifo = path.join(folder, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const message = expectOneLine(await runCliInProcess(['prune', relu, '-o', fifo, '--random', '32']), EXIT.usage);
    expect(message).toMatch(/--output: ".*pipe" is not a regular file/);
    expect(fs.statSync(fifo).isFIFO()).toBe(true);
    expectOneLine(await runCliInProcess(['prune', relu, '-o', folder, '--random', '32']), EXIT.usage);
  });

  it('refuses -o when saving would overwrite an external data file of the input', async () => {
    // The pruned model's own external data goes to <output>.data: that must not be the input's either.
    const folder = freshFolder();
    const model = path.join(folder, 'w.onnx');
    const bytes = encodeModel(loadModel(relu), { externalData: { location: 'out.onnx.data', thresholdBytes: 64 } });
    fs.writeFileSync(model, bytes.modelBytes);
    fs.writeFileSync(path.join(folder, 'out.onnx.data'), Buffer.concat(bytes.externalChunks));
    const message = expectOneLine(await runCliInProcess(['prune', model, '-o', path.join(folder, 'out.onnx'), '--random', '32']), EXIT.usage);
    expect(message).toMatch(/out\.onnx\.data" is a file the input model uses/);
  });
});

describe('report outputs get the same checks as the model output', () => {
  it('refuses --md onto the input model and --html onto a FIFO, leaving both as they were', async () => {
    const folder = freshFolder();
    const model = path.join(folder, 'm.onnx');
    fs.copyFileSync(relu, model);
    const message = expectOneLine(await runCliInProcess(['audit', model, '--md', model]), EXIT.usage);
    expect(message).toMatch(/--md: .*m\.onnx" is the input model/);
    expect(fs.readFileSync(model).equals(fs.readFileSync(relu))).toBe(true);
    const fifo = path.join(folder, 'pipe');
    execFileSync('mkfifo', [fifo]);
    expect(expectOneLine(await runCliInProcess(['audit', model, '--html', fifo]), EXIT.usage)).toMatch(/--html: ".*pipe" is not a regular file/);
    expect(fs.statSync(fifo).isFIFO()).toBe(true);
  });
});

describe('writes leave recognisable temporary files, and the next write clears stale ones', () => {
  it('removes a temporary file left by a killed write (dead pid) and keeps unrelated hidden files', async () => {
    const folder = freshFolder();
    const stale = path.join(folder, '.out.onnx.condense-tmp-999999999-abcdef');
    fs.writeFileSync(stale, 'partial');
    fs.writeFileSync(path.join(folder, '.keep'), 'mine');
    const result = await runCliInProcess(['prune', relu, '-o', path.join(folder, 'out.onnx'), '--random', '64', '--json']);
    expect(result.code).toBe(EXIT.ok);
    expect(fs.readdirSync(folder).sort()).toEqual(['.keep', 'out.onnx']);
  });
});

describe('options and graphs that used to crash or mislead', () => {
  it('--shape is repeatable, not variadic: a model path after it stays the model', async () => {
    const result = await runCliInProcess(['audit', '--random', '4', '--shape', 'x=1x8', relu, '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(EXIT.ok);
    expect(JSON.parse(result.stdout).probe.samples).toBe(4);
  });

  it('inspect refuses a node that consumes its own output with exit 2, naming the node', async () => {
    const folder = freshFolder();
    const model = loadModel(relu);
    const node = model.graph.nodes[0]!;
    node.setInput(0, node.outputs[0]!);
    const file = path.join(folder, 'cycle.onnx');
    fs.writeFileSync(file, encodeModel(model).modelBytes);
    const message = expectOneLine(await runCliInProcess(['inspect', file]), EXIT.usage);
    expect(message).toMatch(/cycle through node/);
  });
});

describe('non-finite numbers and empty probe files are bad input, by rule', () => {
  const probeFile = (folder: string, rows: number, poison?: { row: number; value: number }): string => {
    const data = Float32Array.from({ length: rows * 8 }, (_, i) => Math.sin(i));
    if (poison) data[poison.row * 8 + 3] = poison.value;
    const file = path.join(folder, 'probe.npy');
    fs.writeFileSync(file, encodeNpy({ dtype: 'float32', shape: [rows, 8], data }));
    return file;
  };

  it('refuses NaN or Inf in a probe file with exit 2, naming the file and the sample', async () => {
    const folder = freshFolder();
    for (const value of [NaN, Infinity]) {
      const file = probeFile(folder, 40, { row: 17, value });
      const message = expectOneLine(await runCliInProcess(['audit', relu, '--probe', file]), EXIT.usage);
      expect(message).toMatch(new RegExp(`probe\\.npy: sample 17 holds ${value} .*expected finite numbers`));
    }
  });

  it('refuses a probe file with zero samples instead of silently auditing without data', async () => {
    const file = probeFile(freshFolder(), 0);
    const message = expectOneLine(await runCliInProcess(['audit', relu, '--probe', file]), EXIT.usage);
    expect(message).toMatch(/probe\.npy: has 0 samples; expected at least one/);
  });

  it('names the layers whose weights hold Inf or NaN instead of reporting every neuron static', async () => {
    const folder = freshFolder();
    const model = loadModel(relu);
    const w = model.graph.initializers.find((v) => v.name === 'fc1.weight')!;
    const values = w.initializer!.toFloat32();
    values[5] = Infinity;
    model.graph.setConstant(w, Tensor.fromFloat32([...w.initializer!.dims], values, 'fc1.weight'));
    const file = path.join(folder, 'inf.onnx');
    fs.writeFileSync(file, encodeModel(model).modelBytes);
    const message = expectOneLine(await runCliInProcess(['audit', file]), EXIT.usage);
    expect(message).toMatch(/inf\.onnx: .*layer "[^"]+" .*(Inf|non-finite)/);
    expect(message).toMatch(/fc1\.weight/);
  });

  it('names the layer whose outputs overflow on the probes (1e38 inputs) instead of failing inside the clusterer', async () => {
    const folder = freshFolder();
    const data = Float32Array.from({ length: 40 * 8 }, (_, i) => (i % 3 === 0 ? 1e38 : -1e38));
    const file = path.join(folder, 'huge.npy');
    fs.writeFileSync(file, encodeNpy({ dtype: 'float32', shape: [40, 8], data }));
    const message = expectOneLine(await runCliInProcess(['audit', relu, '--probe', file]), EXIT.usage);
    expect(message).toMatch(/layer "[^"]+": outputs on the probe data are not finite/);
  });
});

describe('names from a model are escaped wherever they are shown', () => {
  const forged = 'h\n\x1b[32mFAKE: all checks passed\x1b[0m <b>`|';
  /** The relu fixture with its first node and every intermediate value renamed to `forged`. */
  function forgedModel(folder: string): string {
    const model = loadModel(relu);
    model.graph.nodes[0]!.name = forged;
    for (const n of model.graph.nodes) for (const v of n.outputs) if (!v.isGraphOutput) v.name = `${forged}${v.name}`;
    const file = path.join(folder, 'forged.onnx');
    fs.writeFileSync(file, encodeModel(model).modelBytes);
    return file;
  }
  const noRawControls = (text: string): void => {
    expect(text).not.toContain('\x1b');
    expect(text).not.toMatch(/^\x1b?\[?3?2?m?FAKE/m);
    expect(text.split('\n').some((line) => line.startsWith('FAKE') || line.includes('\x1b[32mFAKE'))).toBe(false);
  };

  it('keeps terminal output of inspect and audit free of control characters and forged lines', async () => {
    const file = forgedModel(freshFolder());
    for (const args of [['inspect', file], ['audit', file], ['audit', file, '--random', '8']]) {
      const result = await runCliInProcess(args);
      expect(result.code).toBe(EXIT.ok);
      noRawControls(result.stdout);
      expect(result.stdout).toContain('h\\n\\x1b[32mFAKE');
    }
  });

  it('escapes the names in Markdown, HTML and JUnit outputs', async () => {
    const folder = freshFolder();
    const file = forgedModel(folder);
    const md = path.join(folder, 'a.md');
    const html = path.join(folder, 'a.html');
    const junit = path.join(folder, 'a.xml');
    expect((await runCliInProcess(['audit', file, '--md', md, '--html', html])).code).toBe(EXIT.ok);
    const config = path.join(folder, 'c.json');
    fs.writeFileSync(config, JSON.stringify({ rules: { maxRedundancy: 0.999 } }));
    const checked = await runCliInProcess(['check', file, '--config', config, '--junit', junit]);
    expect([EXIT.ok, EXIT.checkFailed]).toContain(checked.code);
    noRawControls(checked.stdout);
    for (const out of [md, html, junit]) noRawControls(fs.readFileSync(out, 'utf8'));
    // In Markdown the name stays a code span (where <b> is text), fenced past its backtick.
    expect(fs.readFileSync(md, 'utf8')).toContain('``h\\n\\x1b[32mFAKE: all checks passed\\x1b[0m <b>`\\|``');
    expect(fs.readFileSync(html, 'utf8')).not.toContain('<b>`');
    expect(XMLValidator.validate(fs.readFileSync(junit, 'utf8'))).toBe(true);
  });

  it('prints an error about a forged name on one line', async () => {
    const folder = freshFolder();
    const model = loadModel(relu);
    model.graph.nodes[0]!.name = forged;
    model.graph.nodes[0]!.setInput(0, model.graph.nodes[0]!.outputs[0]!);
    const file = path.join(folder, 'cycle.onnx');
    fs.writeFileSync(file, encodeModel(model).modelBytes);
    const result = await runCliInProcess(['inspect', file]);
    expect(result.code).toBe(EXIT.usage);
    expect(result.stderr).toMatch(/^condense: [^\n\x1b]*\n$/);
  });
});
