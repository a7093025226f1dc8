// Progress lines for CI logs: one per stage, and within a stage at most one every few seconds.

import { describe, expect, it } from 'vitest';
import { PROGRESS_LINE_INTERVAL_S, progressReporter } from '../../cli/progress.js';
import { runCliInProcess } from '../helpers/cli-runner.js';
import { fixturePath } from '../helpers/cli-runner.js';
import type { PruneReport } from '../../src/index.js';

describe('progress lines', () => {
  it('print each new stage at once and repeat a stage only after the interval, with the elapsed time', () => {
    let now = 1000;
    const lines: string[] = [];
    const p = progressReporter((t) => lines.push(t), 'lines', () => now);
    p.update('collecting statistics', { samplesDone: 0, samplesTotal: 100 });
    for (let i = 1; i <= 50; i++) {
      now += 200;
      p.update('collecting statistics', { samplesDone: 2 * i, samplesTotal: 100 });
    }
    p.update('verifying');
    p.end();
    // 10 s of updates every 0.2 s: the first line, one after 5 s, one after 10 s, then the new stage.
    expect(lines).toEqual([
      'condense: collecting statistics 0/100 samples (0.0 s elapsed)\n',
      `condense: collecting statistics 50/100 samples (${PROGRESS_LINE_INTERVAL_S.toFixed(1)} s elapsed)\n`,
      'condense: collecting statistics 100/100 samples (10 s elapsed)\n',
      'condense: verifying (10 s elapsed)\n',
    ]);
  });

  it('redraw one line on a terminal and clear it at the end; say nothing when off', () => {
    const tty: string[] = [];
    const p = progressReporter((t) => tty.push(t), 'tty', () => 0);
    p.update('verifying');
    p.end();
    expect(tty).toEqual(['\rverifying (0.0 s)\x1b[K', '\r\x1b[K']);
    const off: string[] = [];
    const q = progressReporter((t) => off.push(t), 'off');
    q.update('verifying');
    q.end();
    expect(off).toEqual([]);
  });
});

describe('the held-out label', () => {
  it('names the seed the held-out samples were really drawn with', async () => {
    const run = await runCliInProcess(['prune', fixturePath('mlp-relu-planted.onnx'), '--random', '64', '--seed', '7', '--dry-run', '--json']);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as PruneReport;
    expect(report.probe).toBe('random Gaussian (seed 7)');
    expect(report.holdout).toBe('random Gaussian (seed 1000010), drawn apart from the fitting samples');
  });
});
