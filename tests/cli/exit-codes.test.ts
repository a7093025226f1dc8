// The exit codes no other test reaches without special hardware, and help for every command:
// 4 when onnxruntime cannot run a model our codec accepts, 70 for an internal bug (an exception
// that is not a CondenseError), and `<command> --help` printing that command's usage, exit 0.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../../cli/program.js';
import { DataType, Tensor, saveModel } from '../../src/index.js';
import { GraphBuilder, int } from '../helpers/graph-builder.js';
import { fixturePath, runCliInProcess } from '../helpers/cli-runner.js';

const COMMANDS = ['inspect', 'audit', 'prune', 'check', 'series', 'diff'];

describe('condense <command> --help', () => {
  it('lists all six commands in the top-level help', async () => {
    const { code, stdout } = await runCliInProcess(['--help']);
    expect(code).toBe(EXIT.ok);
    for (const command of COMMANDS) expect(stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
  });

  for (const command of COMMANDS) {
    it(`prints the usage of ${command} and exits 0`, async () => {
      const { code, stdout, stderr } = await runCliInProcess([command, '--help']);
      expect(code).toBe(EXIT.ok);
      expect(stderr).toBe('');
      expect(stdout).toMatch(new RegExp(`^Usage: condense ${command} `, 'm'));
      expect(stdout).toMatch(/--help/);
    });
  }
});

describe('exit code 4: onnxruntime cannot run the model', () => {
  it('exits 4 naming the model when a layer feeds an op onnxruntime does not have', async () => {
    const g = new GraphBuilder('unknown-op');
    const x = g.input('x', DataType.FLOAT, ['N', 3]);
    const [z] = g.node('Gemm', [x, g.initializer('w', Tensor.fromNumbers(DataType.FLOAT, [4, 3], Array.from({ length: 12 }, (_, i) => Math.sin(i))))], { transB: int(1) }, { name: 'fc' });
    const [h] = g.node('Relu', [z!]);
    const [y] = g.node('NoSuchOperator', [h!], {}, { name: 'mystery', outputs: ['y'] });
    g.output(y!, DataType.FLOAT, ['N', 4]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'condense-exit4-'));
    const file = path.join(dir, 'unknown-op.onnx');
    saveModel(g.build(13), file);
    const { code, stdout, stderr } = await runCliInProcess(['audit', file, '--random', '4']);
    expect(code).toBe(EXIT.runtime);
    expect(stdout).toBe('');
    expect(stderr).toMatch(new RegExp(`^condense: [^\\n]*unknown-op\\.onnx[^\\n]*: onnxruntime cannot load the model`));
    expect(fs.readdirSync(dir)).toEqual(['unknown-op.onnx']);
  });
});

describe('exit code 70: an internal bug', () => {
  it('exits 70 and says it is a bug when something that is not a CondenseError escapes', async () => {
    let stderr = '';
    const code = await runCli(['inspect', fixturePath('mlp-relu-planted.onnx')], {
      stdout: () => {
        throw new TypeError('stdout went away');
      },
      stderr: (text) => {
        stderr += text;
      },
      isStderrTTY: false,
    });
    expect(code).toBe(EXIT.internal);
    expect(stderr).toMatch(/^condense: internal error \(a bug, please report it\): TypeError: stdout went away/);
  });
});
