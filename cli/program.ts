// The `condense` command line: commander only. Parses options, calls the library, prints, and
// maps errors to the documented exit codes. The one place that catches errors.

import { Command, CommanderError, Option } from 'commander';
import {
  audit, auditReport, CondenseError, DEVICES, formatAuditTable, formatInspect, formatPruneSummary, inspect, inspectReport,
  OptionError, prune, pruneReport, type Device, type ProbeOptions,
} from '../src/index.js';

export const EXIT = { ok: 0, checkFailed: 1, usage: 2, verificationFailed: 3, runtime: 4, internal: 70 } as const;

export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Progress lines are drawn only when stderr is a terminal. */
  isStderrTTY: boolean;
}

const defaultIO: CliIO = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  isStderrTTY: !!process.stderr.isTTY,
};

function parseNumber(option: string, text: string, check: (x: number) => boolean, expected: string): number {
  const x = Number(text);
  if (text.trim() === '' || !Number.isFinite(x) || !check(x)) throw new OptionError(option, `expected ${expected}, got "${text}"`);
  return x;
}

function parseShapes(specs: string[]): Record<string, number[]> {
  const shapes: Record<string, number[]> = {};
  for (const spec of specs) {
    const m = /^(.+)=(\d+(?:x\d+)*)$/.exec(spec);
    if (!m) throw new OptionError('--shape', `expected name=1x3x32x32, got "${spec}"`);
    shapes[m[1]!] = m[2]!.split('x').map(Number);
  }
  return shapes;
}

interface CommonOptions {
  probe?: string[];
  random?: string;
  shape?: string[];
  seed?: string;
  batchSize?: string;
  threshold?: string;
  staticThreshold?: string;
  device?: string;
  json?: boolean;
}

function probeOptions(o: CommonOptions): ProbeOptions | undefined {
  const p: ProbeOptions = {};
  if (o.probe?.length) p.files = o.probe;
  if (o.random !== undefined) p.random = parseNumber('--random', o.random, (x) => Number.isInteger(x) && x >= 1, 'a positive whole number of samples');
  if (o.shape?.length) p.shapes = parseShapes(o.shape);
  if (o.seed !== undefined) p.seed = parseNumber('--seed', o.seed, Number.isInteger, 'a whole number');
  if (o.batchSize !== undefined) p.batchSize = parseNumber('--batch-size', o.batchSize, (x) => Number.isInteger(x) && x >= 1, 'a positive whole number');
  return Object.keys(p).length ? p : undefined;
}

function analysisOptions(o: CommonOptions) {
  return {
    ...(o.threshold !== undefined ? { similarityThreshold: parseNumber('--threshold', o.threshold, (x) => x > 0 && x <= 1, 'a number in (0, 1]') } : {}),
    ...(o.staticThreshold !== undefined ? { staticThreshold: parseNumber('--static-threshold', o.staticThreshold, (x) => x >= 0 && x < 1, 'a number in [0, 1)') } : {}),
  };
}

function sessionOptions(o: CommonOptions) {
  return { device: (o.device ?? 'cpu') as Device };
}

function addProbeOptions(cmd: Command): Command {
  return cmd
    .option('--probe <file...>', 'probe data: file.npy (single-input models), name=file.npy, or file.npz keyed by input name')
    .option('--random <n>', 'use n seeded Gaussian probe samples')
    .option('--shape <name=dims...>', 'fix dynamic input dimensions for random probes, e.g. x=1x3x32x32')
    .option('--seed <n>', 'seed for random probes', '0')
    .option('--batch-size <n>', 'samples per onnxruntime run', '32')
    .option('--threshold <s>', 'similarity at or above which neurons share a cluster', '0.95')
    .option('--static-threshold <f>', 'amplitude below this fraction of the layer maximum makes a neuron static', '0.01')
    .addOption(new Option('--device <name>', 'execution provider').choices([...DEVICES]).default('cpu'))
    .option('--json', 'print the JSON report instead of a table');
}

/** Builds the program; `io` receives all output so tests can run it in process. */
export function buildProgram(io: CliIO = defaultIO): Command {
  const program = new Command('condense')
    .description('Measure neuron condensation in ONNX models and merge condensed neurons into a smaller, verified model')
    .version('0.1.0')
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .exitOverride()
    .showHelpAfterError('(run condense --help for usage)');

  const progress = (stage: string, p?: { samplesDone: number; samplesTotal: number }): void => {
    if (!io.isStderrTTY) return;
    io.stderr(`\r${stage}${p ? ` ${p.samplesDone}/${p.samplesTotal} samples` : ''}\x1b[K`);
  };
  const endProgress = (): void => {
    if (io.isStderrTTY) io.stderr('\r\x1b[K');
  };

  program
    .command('inspect')
    .description('list the ops, parameters and discovered layers of a model, and why layers are not mergeable')
    .argument('<model>', 'ONNX model file')
    .option('--json', 'print JSON')
    .action((model: string, o: { json?: boolean }) => {
      const report = inspectReport(inspect(model));
      io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatInspect(report)}\n`);
    });

  addProbeOptions(program.command('audit'))
    .description('measure condensation per layer (weights always; outputs with --probe or --random)')
    .argument('<model>', 'ONNX model file')
    .action(async (model: string, o: CommonOptions) => {
      const probe = probeOptions(o);
      const result = await audit(model, {
        ...(probe ? { probe } : {}),
        analysis: analysisOptions(o),
        session: sessionOptions(o),
        onProgress: (p) => progress('collecting statistics', p),
      });
      endProgress();
      const report = auditReport(result);
      io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatAuditTable(report)}\n`);
    });

  addProbeOptions(program.command('prune'))
    .description('merge condensed neurons, verify against the original on held-out probes, write the smaller model')
    .argument('<model>', 'ONNX model file')
    .option('-o, --output <file>', 'where to write the pruned model (never the input)')
    .option('--approximate', 'also merge the rest of each cluster, refitting consumers by least squares on the probes')
    .option('--max-error <e>', 'largest relative output error accepted on held-out probes', '1e-4')
    .option('--dry-run', 'plan and verify, write nothing')
    .action(async (model: string, o: CommonOptions & { output?: string; approximate?: boolean; maxError: string; dryRun?: boolean }) => {
      if (!o.output && !o.dryRun) throw new OptionError('--output', 'is required: expected -o <file> for the pruned model (or --dry-run)');
      const probe = probeOptions(o);
      const result = await prune(model, {
        output: o.output ?? '',
        ...(probe ? { probe } : {}),
        analysis: analysisOptions(o),
        merge: { approximate: !!o.approximate },
        verify: { maxError: parseNumber('--max-error', o.maxError, (x) => x >= 0, 'a non-negative number') },
        session: sessionOptions(o),
        dryRun: !!o.dryRun,
        onProgress: progress,
      });
      endProgress();
      const report = pruneReport(result);
      io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatPruneSummary(report)}\n`);
    });

  return program;
}

/** Runs the CLI on `args` (without node and script) and returns the exit code. */
export async function runCli(args: string[], io: CliIO = defaultIO): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(args, { from: 'user' });
    return EXIT.ok;
  } catch (error) {
    if (io.isStderrTTY) io.stderr('\r\x1b[K');
    if (error instanceof CommanderError) {
      // Help and version exit through here with code 0; commander already printed the message.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof CondenseError) {
      io.stderr(`condense: ${error.message}\n`);
      switch (error.code) {
        case 'VERIFICATION_FAILED': return EXIT.verificationFailed;
        case 'RUNTIME': case 'PROVIDER_UNAVAILABLE': return EXIT.runtime;
        default: return EXIT.usage;
      }
    }
    io.stderr(`condense: internal error (a bug, please report it): ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    return EXIT.internal;
  }
}
