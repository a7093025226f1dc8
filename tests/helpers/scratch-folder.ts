// A scratch folder per test file, removed after its tests, with fresh empty folders under it.

import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll } from 'vitest';

/** Makes `condense-<name>-*` in the temp folder (removed after the file's tests) and a maker of fresh empty folders under it. */
export function scratchFolder(name: string): { root: string; freshFolder: () => string } {
  const root = fs.mkdtempSync(path.join(tmpdir(), `condense-${name}-`));
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
  let count = 0;
  return {
    root,
    freshFolder: () => {
      const dir = path.join(root, `case-${count++}`);
      fs.mkdirSync(dir);
      return dir;
    },
  };
}
