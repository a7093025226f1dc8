// Reading a JSON file a user hands in (a check config, a saved report), with one-line typed
// errors. A leaf like errors.ts: imports nothing of ours but the errors.

import * as fs from 'node:fs';
import { ConfigError, FileNotFoundError } from '../errors.js';

/** Parsed JSON of `file`; `expected` ends the invalid-JSON message ("expected a report from ..."). */
export function readJsonFile(file: string, expected?: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') throw new FileNotFoundError(file, { cause });
    throw new ConfigError(file, `cannot be read (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(file, `is not valid JSON (${(cause as Error).message})${expected ? `; ${expected}` : ''}`, { cause });
  }
}
