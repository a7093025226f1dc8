// The ONNX backend test suite (Debian's libonnx-testdata) as a corpus: where it is, and its models.
// Tests that walk it skip when it is missing, except in CI, which must install it (.ci/run does).

import * as fs from 'node:fs';
import * as path from 'node:path';

export const BACKEND_CORPUS_ROOT = process.env.ONNX_TESTDATA ?? '/usr/share/libonnx-testdata/data';

const SUITES = ['node', 'pytorch-converted', 'pytorch-operator', 'simple'];

/** Whether the corpus is installed; throws in CI when it is not, so a missing install cannot pass as a skip. */
export function isBackendCorpusPresent(root = BACKEND_CORPUS_ROOT): boolean {
  const present = fs.existsSync(root);
  if (!present && process.env.CI) throw new Error(`${root} is missing: CI must apt-get install libonnx-testdata`);
  return present;
}

/** Every `model.onnx` of the corpus's suites, in a stable order (suite, then test name). */
export function backendCorpusModels(root = BACKEND_CORPUS_ROOT): string[] {
  const files: string[] = [];
  for (const suite of SUITES) {
    const dir = path.join(root, suite);
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).sort()) {
      const file = path.join(dir, name, 'model.onnx');
      if (fs.existsSync(file)) files.push(file);
    }
  }
  return files;
}
