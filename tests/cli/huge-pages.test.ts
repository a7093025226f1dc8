// The measuring commands re-run themselves under glibc's hugetlb tunable where it helps
// (cli/huge-pages.ts): which commands and machines, and a real re-run in a child process.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { currentSystem, HUGE_PAGES_TUNABLE, hugePagesEnvironment, type HugePagesSystem } from '../../cli/huge-pages.js';
import { repoRoot } from '../helpers/cli-runner.js';
import { scratchFolder } from '../helpers/scratch-folder.js';

const linuxMadvise = (): HugePagesSystem => ({ platform: 'linux', isGlibc: true, transparentHugePages: 'madvise' });
const { freshFolder } = scratchFolder('huge-pages');

describe('huge pages for the measuring commands', () => {
  it('adds the tunable for audit, prune, check, collect and series on Linux with glibc and THP in madvise mode', () => {
    for (const command of ['audit', 'prune', 'check', 'collect', 'series']) {
      expect(hugePagesEnvironment([command, 'model.onnx'], {}, linuxMadvise)?.GLIBC_TUNABLES).toBe(HUGE_PAGES_TUNABLE);
    }
    expect(hugePagesEnvironment(['--quiet', 'audit', 'm.onnx'], { PATH: '/bin' }, linuxMadvise)).toEqual({ PATH: '/bin', GLIBC_TUNABLES: HUGE_PAGES_TUNABLE });
  });

  it("keeps a user's other tunables and never overrides a hugetlb setting they chose", () => {
    expect(hugePagesEnvironment(['audit'], { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }, linuxMadvise)?.GLIBC_TUNABLES).toBe(`glibc.malloc.arena_max=2:${HUGE_PAGES_TUNABLE}`);
    expect(hugePagesEnvironment(['audit'], { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }, linuxMadvise)).toBeUndefined();
  });

  it('does not re-run other commands, an opt-out, or machines where the tunable cannot help', () => {
    expect(hugePagesEnvironment(['inspect', 'm.onnx'], {}, linuxMadvise)).toBeUndefined();
    expect(hugePagesEnvironment(['--help'], {}, linuxMadvise)).toBeUndefined();
    expect(hugePagesEnvironment(['audit'], { CONDENSE_HUGE_PAGES: '0' }, linuxMadvise)).toBeUndefined();
    for (const system of [
      { platform: 'linux', isGlibc: true, transparentHugePages: 'always' },
      { platform: 'linux', isGlibc: true, transparentHugePages: 'never' },
      { platform: 'linux', isGlibc: false, transparentHugePages: 'madvise' },
      { platform: 'darwin', isGlibc: false, transparentHugePages: undefined },
    ]) {
      expect(hugePagesEnvironment(['audit'], {}, () => system), JSON.stringify(system)).toBeUndefined();
    }
  });

  it('re-runs a process once under the tunable and exits with the re-run\'s status', () => {
    const script = path.join(freshFolder(), 'rerun.ts');
    fs.writeFileSync(script, [
      `import { rerunWithHugePages } from ${JSON.stringify(pathToFileURL(path.join(repoRoot, 'cli', 'huge-pages.ts')).href)};`,
      `rerunWithHugePages(process.argv.slice(2));`,
      `console.log('tunables: ' + (process.env.GLIBC_TUNABLES ?? 'none'));`,
      `process.exit(3);`,
    ].join('\n'));
    const env = { ...process.env };
    delete env.GLIBC_TUNABLES;
    delete env.CONDENSE_HUGE_PAGES;
    const child = spawnSync(process.execPath, ['--import', 'tsx', script, 'audit'], { cwd: repoRoot, encoding: 'utf8', env });
    expect(child.status, child.stderr).toBe(3);
    // One line: the re-run's (the first process exits without printing), or this process's own where no re-run helps.
    const expected = hugePagesEnvironment(['audit'], env, currentSystem) ? HUGE_PAGES_TUNABLE : 'none';
    expect(child.stdout).toBe(`tunables: ${expected}\n`);
  });
});
