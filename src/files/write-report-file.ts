// Writing reports and pictures: atomically (a temporary file renamed into place), with errors that
// name the option and the path.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileWriteError, OptionError } from '../errors.js';
import { checkOutputPath, writeAtomically } from '../onnx/model-file.js';

/**
 * Writes `content` to `file` atomically; `option` names the flag the path came from in errors.
 * `file` must be a regular file or absent, and none of `inputs` (the files the command reads).
 */
export function writeReportFile(file: string, content: string | Uint8Array, option: string, inputs: string[] = []): string {
  checkOutputPath(file, inputs, option, { withExternalData: false });
  try {
    return writeAtomically(file, [typeof content === 'string' ? Buffer.from(content, 'utf8') : content]);
  } catch (cause) {
    throw new FileWriteError(file, `cannot be written (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`, { cause });
  }
}

/** Creates `dir` (and its parents) for pictures; an existing file there is an error. */
export function ensureOutputFolder(dir: string, option: string): void {
  if (fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory()) throw new OptionError(option, `"${dir}" is a file; expected a folder`);
    return;
  }
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (cause) {
    throw new OptionError(option, `cannot create folder "${dir}" (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`);
  }
}
