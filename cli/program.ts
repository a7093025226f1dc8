// The `condense` command line: commander only. Parses options, calls the library, prints, and
// maps errors to the documented exit codes. The one place that catches errors.

import { Command, CommanderError, Option } from 'commander';
import {
  audit, auditReport, CondenseError, DEVICES, formatAuditTable, formatInspect, formatPruneSummary, inspect, inspectReport,
  OptionError, prune, pruneReport, terminalText, type Device, type ProbeOptions,
  collectShard, writeStatisticsFile,
} from '../src/index.js';
import {
  auditPictures, check, checkReport, diffAuditFiles, diffReport, ensureOutputFolder, formatCheckTable, formatDiffTable, formatSeriesTable,
  loadCheckConfig, readAuditReport, renderGithubAnnotations, renderHtmlReport, renderJunitReport, renderMarkdownReport, renderPng, renderSvg,
  series, seriesFigure, seriesReport, writeReportFile, type AuditResult,
} from '../src/index.js';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const EXIT = { ok: 0, checkFailed: 1, usage: 2, verificationFailed: 3, runtime: 4, internal: 70 } as const;

export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Progress lines are drawn only when stderr is a terminal. */
  isStderrTTY: boolean;
  /** Environment read by `check` (GITHUB_ACTIONS); process.env when absent. */
  env?: Record<string, string | undefined>;
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
  stats?: string[];
  workers?: string;
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

/** An OptionError (not commander's two-line message) names --device first, like every other option. */
function parseDevice(text: string): Device {
  if (!(DEVICES as readonly string[]).includes(text)) throw new OptionError('--device', `expected one of ${DEVICES.join(', ')}, got "${text}"`);
  return text as Device;
}

function sessionOptions(o: CommonOptions) {
  return { device: (o.device ?? 'cpu') as Device };
}

function addProbeOptions(cmd: Command): Command {
  return cmd
    .option('--probe <file...>', 'probe data: file.npy (single-input models), name=file.npy, or file.npz keyed by input name')
    .option('--random <n>', 'use n seeded Gaussian probe samples')
    .option('--shape <name=dims>', 'fix dynamic input dimensions for random probes, e.g. x=1x3x32x32 (repeat for each input)', (spec: string, specs: string[] = []) => [...specs, spec])
    .option('--seed <n>', 'seed for random probes', '0')
    .option('--batch-size <n>', 'samples per onnxruntime run (default: sized to the model)')
    .option('--threshold <s>', 'similarity at or above which neurons share a cluster', '0.95')
    .option('--static-threshold <f>', 'amplitude below this fraction of the layer maximum makes a neuron static', '0.01')
    .addOption(new Option('--device <name>', `execution provider: ${DEVICES.join(', ')}`).argParser(parseDevice).default('cpu'))
    .option('--json', 'print the JSON report instead of a table');
}

/** --workers for the commands that collect statistics themselves (check does not take it yet). */
function addWorkersOption(cmd: Command): Command {
  return cmd.option('--workers <n>', 'collect statistics in n worker threads, each over a range of the probes (for machines with more cores than one session uses)');
}

function workerCount(o: CommonOptions): { workers?: number } {
  return o.workers === undefined ? {} : { workers: parseNumber('--workers', o.workers, (x) => Number.isInteger(x) && x >= 1 && x <= 256, 'a whole number from 1 to 256') };
}

/** --stats for the commands that can take their statistics from `condense collect` files. */
function addStatsOption(cmd: Command): Command {
  return cmd.option('--stats <files...>', "statistics files from `condense collect` to merge instead of running probes (a pattern like 'shard-*.stats' is expanded)");
}

/** Builds the program; `io` receives all output so tests can run it in process. */
export function buildProgram(io: CliIO = defaultIO): Command {
  const program = new Command('condense')
    .description('Measure neuron condensation in ONNX models and merge condensed neurons into a smaller, verified model')
    .version('0.1.0')
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      // commander's own usage errors (unknown option, missing argument) are one line like ours.
      outputError: (message, write) => write(`condense: ${message.trim().replace(/^error: /, '')} (run condense --help for usage)\n`),
    })
    .exitOverride();

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

  addWorkersOption(addProbeOptions(program.command('collect')))
    .description('run one shard of probe data and write its per-layer statistics, for `audit|prune --stats` to merge (docs/stats-format.md)')
    .argument('<model>', 'ONNX model file')
    .option('-o, --output <file>', 'where to write the statistics file')
    .action(async (model: string, o: CommonOptions & { output?: string }) => {
      if (!o.output) throw new OptionError('--output', 'is required: expected -o <file> for the statistics file');
      const probe = probeOptions(o);
      if (!probe || (!probe.files?.length && probe.random === undefined)) throw new OptionError('--probe', 'is required: collect needs probe data (--probe file or --random n)');
      const shard = await collectShard(model, { probe, session: sessionOptions(o), ...workerCount(o), onProgress: (p) => progress('collecting statistics', p) });
      endProgress();
      writeStatisticsFile(o.output, shard);
      const summary = { output: o.output, model: shard.header.model, samples: shard.header.samples, layers: shard.header.layers };
      io.stdout(o.json ? `${JSON.stringify(summary, null, 2)}\n` : `wrote ${o.output}: ${shard.header.samples} samples, ${shard.header.layers.length} layers, model sha256 ${shard.header.model.slice(0, 12)}\n`);
    });

  addWorkersOption(addStatsOption(addProbeOptions(program.command('audit'))))
    .description('measure condensation per layer (weights always; outputs with --probe or --random)')
    .argument('<model>', 'ONNX model file')
    .option('--html <file>', 'also write a self-contained HTML report with the pictures per layer')
    .option('--md <file>', 'also write a Markdown summary (for a pull-request comment or $GITHUB_STEP_SUMMARY)')
    .option('--png-dir <dir>', 'also write the pictures per layer as PNG files into this folder')
    .action(async (model: string, o: CommonOptions & AuditOutputOptions) => {
      const probe = probeOptions(o);
      const result = await audit(model, {
        ...(probe ? { probe } : {}),
        ...(o.stats?.length ? { statistics: o.stats } : {}),
        ...workerCount(o),
        analysis: analysisOptions(o),
        session: sessionOptions(o),
        onProgress: (p) => progress('collecting statistics', p),
      });
      endProgress();
      const report = auditReport(result);
      io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatAuditTable(report)}\n`);
      writeAuditOutputs(result, o, io, [model]);
    });

  addWorkersOption(addStatsOption(addProbeOptions(program.command('prune'))))
    .description('merge condensed neurons, verify against the original on held-out probes, write the smaller model')
    .argument('<model>', 'ONNX model file')
    .option('-o, --output <file>', 'where to write the pruned model (never the input)')
    .option('--approximate', 'also merge the rest of each cluster, refitting consumers by least squares on the probes')
    .option('--max-error <e>', 'largest relative output error accepted on held-out probes', '1e-4')
    .option('--exact-tolerance <t>', 'largest relative residual |u_j - t u_r| / |u_j| an exact merge accepts (--threshold does not drive exact merges)', '1e-6')
    .option('--dry-run', 'plan and verify, write nothing')
    .action(async (model: string, o: CommonOptions & { output?: string; approximate?: boolean; maxError: string; exactTolerance: string; dryRun?: boolean }) => {
      if (!o.output && !o.dryRun) throw new OptionError('--output', 'is required: expected -o <file> for the pruned model (or --dry-run)');
      const probe = probeOptions(o);
      const result = await prune(model, {
        output: o.output ?? '',
        ...(probe ? { probe } : {}),
        analysis: analysisOptions(o),
        merge: { approximate: !!o.approximate, exactTolerance: parseNumber('--exact-tolerance', o.exactTolerance, (x) => x >= 0 && x < 1, 'a number in [0, 1)') },
        verify: { maxError: parseNumber('--max-error', o.maxError, (x) => x >= 0, 'a non-negative number') },
        session: sessionOptions(o),
        dryRun: !!o.dryRun,
        ...(o.stats?.length ? { statistics: o.stats } : {}),
        ...workerCount(o),
        onProgress: progress,
      });
      endProgress();
      const report = pruneReport(result);
      io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatPruneSummary(report)}\n`);
    });

  addReportingCommands(program, io);
  return program;
}

/**
 * The library names options by their API names (`maxError`, `similarityThreshold`); a CLI user
 * typed flags, so messages are shown with the flag for each API name.
 */
const FLAG_FOR_OPTION: Record<string, string> = {
  maxError: '--max-error',
  exactTolerance: '--exact-tolerance',
  similarityThreshold: '--threshold',
  staticThreshold: '--static-threshold',
  approximate: '--approximate',
  output: '--output',
  random: '--random',
  files: '--probe',
  shapes: '--shape',
  alpha: '--alpha',
  batchSize: '--batch-size',
  paths: '<checkpoints>',
};

/** An error's message as a CLI user reads it: the option it is about, and camelCase API names, as flags. */
export function inFlagNames(error: CondenseError): string {
  const flag = error.code === 'BAD_OPTION' ? FLAG_FOR_OPTION[error.subject] : undefined;
  const message = flag ? `${flag}${error.message.slice(error.subject.length)}` : error.message;
  return message.replace(/\b(maxError|exactTolerance|similarityThreshold|staticThreshold|batchSize)\b/g, (name: string) => FLAG_FOR_OPTION[name] ?? name);
}

/** Runs the CLI on `args` (without node and script) and returns the exit code. */
export async function runCli(args: string[], io: CliIO = defaultIO): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(args, { from: 'user' });
    return EXIT.ok;
  } catch (error) {
    if (io.isStderrTTY) io.stderr('\r\x1b[K');
    if (error instanceof CheckFailed) {
      io.stderr(`condense: ${terminalText(error.message)}\n`);
      return EXIT.checkFailed;
    }
    if (error instanceof CommanderError) {
      // Help and version exit through here with code 0; commander already printed the message.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof CondenseError) {
      // Messages quote names from the model: escaped, so the error stays one line and colourless.
      io.stderr(`condense: ${terminalText(inFlagNames(error))}\n`);
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

// ---- reports people read and CI gates on (issue 4): audit outputs, check, series, diff

/** Thrown by `check` after its report is printed, when a rule failed: runCli maps it to EXIT.checkFailed. */
class CheckFailed extends Error {}

interface AuditOutputOptions {
  html?: string;
  md?: string;
  pngDir?: string;
}

function writeAuditOutputs(result: AuditResult, o: AuditOutputOptions, io: CliIO, inputs: string[]): void {
  if (o.html !== undefined) io.stderr(`condense: wrote ${writeReportFile(o.html, renderHtmlReport(result), '--html', inputs)}\n`);
  if (o.md !== undefined) io.stderr(`condense: wrote ${writeReportFile(o.md, renderMarkdownReport(auditReport(result)), '--md', inputs)}\n`);
  if (o.pngDir !== undefined) {
    ensureOutputFolder(o.pngDir, '--png-dir');
    const pictures = auditPictures(result);
    for (const p of pictures) writeReportFile(path.join(o.pngDir, p.fileName), p.bytes, '--png-dir', inputs);
    io.stderr(`condense: wrote ${pictures.length} pictures to ${o.pngDir}\n`);
  }
}

/** The options the user typed (not commander's defaults), so they override a config file key by key. */
function explicitOptions<T extends object>(o: T, command: Command): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([key]) => command.getOptionValueSource(key) === 'cli')) as Partial<T>;
}

function addReportingCommands(program: Command, io: CliIO): void {
  addProbeOptions(program.command('check'))
    .description('CI gate: evaluate the rules of a config (redundancy, effective width, static share, prune target, baseline); exit 1 when one fails')
    .argument('<model>', 'ONNX model file')
    .option('--config <file>', 'rules as JSON (default: condense.config.json in the current folder, if present)')
    .option('--baseline <file>', 'a previous `condense audit --json` report: fail when a layer\'s redundancy grew')
    .option('--junit <file>', 'also write the results as JUnit XML (one testcase per rule and layer)')
    .action(async (model: string, o: CommonOptions & { config?: string; baseline?: string; junit?: string }, command: Command) => {
      const started = Date.now();
      const configPath = o.config ?? (fs.existsSync('condense.config.json') ? 'condense.config.json' : undefined);
      const config = configPath !== undefined ? loadCheckConfig(configPath) : undefined;
      const typed = explicitOptions(o, command);
      const probe = probeOptions(typed);
      const baselinePath = o.baseline ?? config?.baseline;
      const result = await check(model, {
        ...(config ? { config } : {}),
        ...(configPath !== undefined ? { configPath } : {}),
        ...(baselinePath !== undefined ? { baseline: { path: baselinePath, layers: readAuditReport(baselinePath).layers } } : {}),
        ...(probe ? { probe } : {}),
        analysis: analysisOptions(typed),
        session: sessionOptions(o),
      });
      const report = checkReport(result);
      io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatCheckTable(report)}\n`);
      const env = io.env ?? process.env;
      if (env.GITHUB_ACTIONS === 'true' && !o.json) io.stdout(renderGithubAnnotations(report));
      const inputs = [model, ...(configPath !== undefined ? [configPath] : []), ...(baselinePath !== undefined ? [baselinePath] : [])];
      if (o.junit !== undefined) writeReportFile(o.junit, renderJunitReport(report, (Date.now() - started) / 1000), '--junit', inputs);
      if (!report.passed) throw new CheckFailed(`check failed: ${report.summary.failed} of ${report.results.length} rules failed`);
    });

  program
    .command('series')
    .description('effective width and relative distance RD of input weights over training checkpoints; phase-diagram regime for two-layer networks')
    .argument('<checkpoints...>', 'ONNX files of one architecture, in training order (the first is the reference, ideally the initialisation)')
    .option('--alpha <a>', 'output scale of f(x) = (1/alpha) sum a_k s(w_k . x), for the phase diagram', '1')
    .option('--threshold <s>', 'similarity at or above which neurons share a cluster', '0.95')
    .option('--static-threshold <f>', 'amplitude below this fraction of the layer maximum makes a neuron static', '0.01')
    .option('--svg <file>', 'also write the plot as SVG')
    .option('--png <file>', 'also write the plot as PNG')
    .option('--json', 'print the JSON report instead of a table')
    .action(async (checkpoints: string[], o: CommonOptions & { alpha: string; svg?: string; png?: string }) => {
      const alpha = parseNumber('--alpha', o.alpha, (x) => x > 0, 'a positive number');
      const report = seriesReport(await series(checkpoints, { alpha, analysis: analysisOptions(o) }));
      io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatSeriesTable(report)}\n`);
      if (o.svg !== undefined) io.stderr(`condense: wrote ${writeReportFile(o.svg, renderSvg(seriesFigure(report)), '--svg', checkpoints)}\n`);
      if (o.png !== undefined) io.stderr(`condense: wrote ${writeReportFile(o.png, renderPng(seriesFigure(report)), '--png', checkpoints)}\n`);
    });

  program
    .command('diff')
    .description('compare two audit reports (condense audit --json) layer by layer')
    .argument('<a>', 'the earlier report')
    .argument('<b>', 'the later report')
    .option('--json', 'print the JSON report instead of a table')
    .action((a: string, b: string, o: { json?: boolean }) => {
      const report = diffReport(diffAuditFiles(a, b));
      io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDiffTable(report)}\n`);
    });
}
