// One worker thread of `--workers N`: collects the statistics of samples [from, to) of the probe
// set that prepareProbes makes for this model and options, and posts back the moments (their
// buffers transferred, not copied). See parallel-collect.ts.

import { parentPort, workerData } from 'node:worker_threads';
import { CondenseError } from '../errors.js';
import { collectRange, type WorkerTask } from './parallel-collect.js';

const task = workerData as WorkerTask;
try {
  const result = await collectRange(task);
  parentPort!.postMessage({ result }, result.layers.flatMap((l) => [l.mean.buffer as ArrayBuffer, l.scatter.buffer as ArrayBuffer]));
} catch (error) {
  const e = error as Error;
  parentPort!.postMessage({ error: error instanceof CondenseError ? { code: error.code, subject: error.subject, message: e.message } : { message: e.stack ?? e.message } });
}
