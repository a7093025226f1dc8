// The `condense` command line: commander only. Parses options, calls the library, prints, and
// maps errors to the documented exit codes. The one place that catches errors.

import { Command, CommanderError, Option } from 'commander';
import {
  audit, auditReport, CondenseError, DEVICES, formatAuditTable, formatInspect, formatPruneSummary, inspect, inspectReport,
  OptionError, prune, pruneReport, terminalText, type Device, type ProbeOptions,
  DEFAULT_SWEEP, renderSweepHtml, type BudgetOptions,
  collectShard, writeStatisticsFile,
} from '../src/index.js';
import {
  auditPictures, check, checkReport, diffAuditFiles, diffReport, ensureOutputFolder, formatCheckTable, formatDiffTable, formatSeriesTable,
  loadCheckConfig, readAuditReport, renderGithubAnnotations, renderHtmlReport, renderJunitReport, renderMarkdownReport, renderPng, renderSvg,
  series, seriesFigure, seriesReport, writeReportFile, type AuditResult,
} from '../src/index.js';
import { IMAGE_PRESETS, parsePinnedValue, type ImagePreset } from '../src/index.js';
import { progressReporter, type Progress, type ProgressMode } from './progress.js';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const EXIT = { ok: 0, checkFailed: 1, usage: 2, verificationFailed: 3, runtime: 4, internal: 70 } as const;

export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Binary output to stdout (`--png -`); written as latin1 through `stdout` when absent. */
  stdoutBytes?: (bytes: Uint8Array) => void;
  /** A terminal redraws one progress line in place. */
  isStderrTTY: boolean;
  /** Progress: redrawn (terminal), a line per stage (CI logs, pipes) or none; from isStderrTTY when absent. */
  progress?: ProgressMode;
  /** Width the text tables are fitted to; unlimited when absent (the real CLI: COLUMNS, the terminal's width, or 100). */
  columns?: number;
  /** Environment read by `check` (GITHUB_ACTIONS); process.env when absent. */
  env?: Record<string, string | undefined>;
}

/** COLUMNS when set, else the terminal's width, else 100 (a CI log or a pipe). */
export function terminalColumns(env: Record<string, string | undefined> = process.env, stdout: { isTTY?: boolean; columns?: number } = process.stdout): number {
  const fromEnv = Number(env.COLUMNS);
  if (Number.isInteger(fromEnv) && fromEnv >= 40) return fromEnv;
  if (stdout.isTTY && stdout.columns) return Math.max(40, stdout.columns);
  return 100;
}

const defaultIO: CliIO = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  stdoutBytes: (b) => process.stdout.write(b),
  isStderrTTY: !!process.stderr.isTTY,
  progress: process.stderr.isTTY ? 'tty' : 'lines',
  columns: terminalColumns(),
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
  quiet?: boolean;
  input?: string[];
  batchAxis?: string[];
  images?: string;
  preset?: string;
  mean?: string;
  std?: string;
  count?: string;
}

function probeOptions(o: CommonOptions): ProbeOptions | undefined {
  const p: ProbeOptions = {};
  if (o.probe?.length) p.files = o.probe;
  if (o.random !== undefined) p.random = parseNumber('--random', o.random, (x) => Number.isInteger(x) && x >= 1, 'a positive whole number of samples');
  if (o.shape?.length) p.shapes = parseShapes(o.shape);
  if (o.seed !== undefined) p.seed = parseNumber('--seed', o.seed, Number.isInteger, 'a whole number');
  Object.assign(p, inputFeedOptions(o));
  if (o.batchSize !== undefined) p.batchSize = parseNumber('--batch-size', o.batchSize, (x) => Number.isInteger(x) && x >= 1, 'a positive whole number');
  return Object.keys(p).length ? p : undefined;
}

// ---- probe data people have (issue 13): pinned inputs, batch axes, image folders

function parseNameValue(option: string, spec: string, example: string): [string, string] {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new OptionError(option, `expected ${example}, got "${spec}"`);
  return [spec.slice(0, eq), spec.slice(eq + 1)];
}

function parseNumberList(option: string, text: string): number[] {
  const values = text.split(',').map((t) => parseNumber(option, t, () => true, 'comma-separated numbers, e.g. 0.485,0.456,0.406'));
  return values;
}

function inputFeedOptions(o: CommonOptions): Partial<ProbeOptions> {
  const p: Partial<ProbeOptions> = {};
  if (o.input?.length) {
    p.pinned = {};
    for (const spec of o.input) {
      const [name, text] = parseNameValue('--input', spec, 'name=value, e.g. sr=16000 or mask=[1,1,0]');
      const value = parsePinnedValue(text);
      if (!value) throw new OptionError('--input', `expected a number or a JSON array of numbers for "${name}", got "${text}"`);
      p.pinned[name] = value;
    }
  }
  if (o.batchAxis?.length) {
    p.batchAxes = {};
    for (const spec of o.batchAxis) {
      const [name, text] = parseNameValue('--batch-axis', spec, 'name=K, e.g. state=1');
      p.batchAxes[name] = parseNumber('--batch-axis', text, (x) => Number.isInteger(x) && x >= 0, `a non-negative axis for "${name}"`);
    }
  }
  const imageOnly = ([['--preset', o.preset], ['--mean', o.mean], ['--std', o.std], ['--count', o.count]] as const).find(([, v]) => v !== undefined);
  if (o.images === undefined) {
    if (imageOnly) throw new OptionError(imageOnly[0], 'applies to --images DIR; give --images too');
    return p;
  }
  if (o.preset !== undefined && !(o.preset in IMAGE_PRESETS)) throw new OptionError('--preset', `expected one of ${Object.keys(IMAGE_PRESETS).join(', ')}, got "${o.preset}"`);
  p.images = {
    dir: o.images,
    ...(o.preset !== undefined ? { preset: o.preset as ImagePreset } : {}),
    ...(o.mean !== undefined ? { mean: parseNumberList('--mean', o.mean) } : {}),
    ...(o.std !== undefined ? { std: parseNumberList('--std', o.std) } : {}),
    ...(o.count !== undefined ? { count: parseNumber('--count', o.count, (x) => Number.isInteger(x) && x >= 1, 'a positive whole number of images') } : {}),
  };
  return p;
}

function addInputFeedOptions(cmd: Command): Command {
  return cmd
    .option('--input <name=value...>', 'pin an input to a value in every run: a number or JSON array, e.g. sr=16000')
    .option('--batch-axis <name=K...>', 'the axis of an input that holds the samples (default 0), e.g. state=1; probe files still store samples first')
    .option('--images <dir>', 'probe with the PNG/JPEG images of a folder, resized and centre-cropped to the image input')
    .option('--preset <name>', `image normalisation: ${Object.keys(IMAGE_PRESETS).join(', ')} (default imagenet)`)
    .option('--mean <m,m,m>', 'image mean per channel on [0, 1] pixels (overrides --preset)')
    .option('--std <s,s,s>', 'image standard deviation per channel (overrides --preset)')
    .option('--count <n>', 'use n images (after a shuffle seeded by --seed; default all)');
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
  cmd
    .option('--probe <file...>', 'probe data: file.npy (single-input models), name=file.npy, or file.npz keyed by input name')
    .option('--random <n>', 'use n seeded Gaussian probe samples')
    .option('--shape <name=dims>', 'fix dynamic input dimensions for random probes, e.g. x=1x3x32x32 (repeat for each input)', (spec: string, specs: string[] = []) => [...specs, spec])
    .option('--seed <n>', 'seed for random probes and the image order', '0')
    .option('--batch-size <n>', 'samples per onnxruntime run (default: sized to the model)')
    .option('--threshold <s>', 'similarity at or above which neurons share a cluster', '0.95')
    .option('--static-threshold <f>', 'amplitude below this fraction of the layer maximum makes a neuron static', '0.01')
    .addOption(new Option('--device <name>', `execution provider: ${DEVICES.join(', ')}`).argParser(parseDevice).default('cpu'))
    .option('--json', 'print the JSON report instead of a table')
    .option('-q, --quiet', 'no progress lines on stderr');
  addInputFeedOptions(cmd.optionsGroup('Probe inputs and images:'));
  // Options the command adds after these go back under the default heading.
  return cmd.optionsGroup('Options:');
}

// ---- --help examples (issue 13): two or three commands people run, at the end of each command's help

const EXAMPLES: Record<string, string[]> = {
  inspect: [
    'condense inspect model.onnx',
    'condense inspect model.onnx --json > inspect.json',
  ],
  audit: [
    'condense audit model.onnx --random 512 --html report.html',
    'condense audit cnn.onnx --images photos/ --preset imagenet --md -',
    'condense audit vad.onnx --random 256 --input sr=16000 --batch-axis state=1',
  ],
  prune: [
    'condense prune model.onnx -o small.onnx',
    'condense prune model.onnx --probe data.npy --max-error 1e-2 -o small.onnx',
    'condense prune model.onnx --random 1024 --sweep --html tradeoff.html',
  ],
  check: [
    'condense check model.onnx --config condense.config.json --junit results.xml',
    'condense check model.onnx --random 256 --baseline main-audit.json',
  ],
  series: [
    'condense series ckpt-0.onnx ckpt-1.onnx ckpt-2.onnx --png series.png',
    'condense series ckpt-*.onnx --alpha 64 --json',
  ],
  diff: [
    'condense diff before.json after.json',
    'condense audit a.onnx --json > a.json && condense audit b.onnx --json > b.json && condense diff a.json b.json',
  ],
};

function addExamples(program: Command): void {
  for (const command of program.commands) {
    const examples = EXAMPLES[command.name()];
    if (examples) command.addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n`);
  }
}

/** --workers for the commands that collect statistics themselves (check does not take it yet). */
function addWorkersOption(cmd: Command): Command {
  return cmd.option('--workers <n>', 'collect statistics in n worker threads, each over a range of the probes (for machines with more cores than one session uses)');
}

function workerCount(o: CommonOptions): { workers?: number } {
  return o.workers === undefined ? {} : { workers: parseNumber('--workers', o.workers, (x) => Number.isInteger(x) && x >= 1 && x <= 256, 'a whole number from 1 to 256') };
}

/** --stats for the commands that can take their statistics from `condense collect` files (audit, prune, check). */
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

  const width = io.columns;

  program
    .command('inspect')
    .description('list the ops, parameters and discovered layers of a model, and why layers are not mergeable')
    .argument('<model>', 'ONNX model file')
    .option('--json', 'print JSON')
    .action((model: string, o: { json?: boolean }) => {
      const report = inspectReport(inspect(model));
      io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatInspect(report, { width })}\n`);
    });

  addWorkersOption(addProbeOptions(program.command('collect')))
    .description('run one shard of probe data and write its per-layer statistics, for `audit|prune --stats` to merge (docs/stats-format.md)')
    .argument('<model>', 'ONNX model file')
    .option('-o, --output <file>', 'where to write the statistics file')
    .action(async (model: string, o: CommonOptions & { output?: string }) => {
      if (!o.output) throw new OptionError('--output', 'is required: expected -o <file> for the statistics file');
      const probe = probeOptions(o);
      if (!probe || (!probe.files?.length && probe.random === undefined)) throw new OptionError('--probe', 'is required: collect needs probe data (--probe file or --random n)');
      const progress = progressFor(io, o);
      const shard = await collectShard(model, { probe, session: sessionOptions(o), ...workerCount(o), onProgress: (p) => progress.update('collecting statistics', p) });
      progress.end();
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
      const reportToStdout = stdoutOption(o, ['html', 'md']);
      const progress = progressFor(io, o);
      progress.update('auditing: loading the model');
      const result = await audit(model, {
        ...(probe ? { probe } : {}),
        ...(o.stats?.length ? { statistics: o.stats } : {}),
        ...workerCount(o),
        analysis: analysisOptions(o),
        session: sessionOptions(o),
        onProgress: (p) => progress.update('collecting statistics', p),
        onStage: (stage) => progress.update(stage),
      });
      progress.end();
      const report = auditReport(result);
      if (!reportToStdout) io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatAuditTable(report, { width })}\n`);
      writeAuditOutputs(result, o, io, [model]);
    });

  addWorkersOption(addStatsOption(addProbeOptions(program.command('prune'))))
    .description('merge condensed neurons, verify against the original on held-out probes, write the smaller model; with a budget, the largest verified reduction within it')
    .argument('<model>', 'ONNX model file')
    .option('-o, --output <file>', 'where to write the pruned model (never the input)')
    .option('--approximate', 'also merge the rest of each cluster, refitting consumers by least squares on the probes (all or nothing)')
    .option('--max-error <e>', 'budget: the largest reduction whose relative output error on held-out probes is at most e (without a budget: exact merges, checked against 1e-4)')
    .option('--target-params <fraction>', 'budget: keep at most this fraction of the parameters (0.5: half) and report the verified error')
    .option('--target-flops <fraction>', 'budget: keep at most this fraction of the layers\' multiply-add FLOPs')
    .option('--min-top1 <share>', 'budget: top-1 agreement with the original on held-out probes at least this (0.99)')
    .option('--labels <file.npy>', 'class labels of the probe samples (1-D integers): report accuracy; a budget with --max-accuracy-drop')
    .option('--max-accuracy-drop <d>', 'budget: accuracy against --labels at most d below the original\'s (0.01: one point)')
    .option('--sweep [budgets]', `trade-off curve: the verified reduction at each relative-error budget (default ${DEFAULT_SWEEP.join(',')}); writes no model`)
    .option('--html <file>', 'with --sweep: also write the curve as an HTML page with a plot')
    .option('--exact-tolerance <t>', 'largest relative residual |u_j - t u_r| / |u_j| an exact merge accepts (--threshold does not drive exact merges)', '1e-6')
    .option('--dry-run', 'plan and verify, write nothing')
    .action(async (model: string, o: CommonOptions & PruneFlags) => {
      const budget = budgetOptions(o);
      if (!o.output && !o.dryRun && !budget?.sweep) throw new OptionError('--output', 'is required: expected -o <file> for the pruned model (or --dry-run)');
      if (o.html !== undefined && !budget?.sweep) throw new OptionError('--html', 'is the trade-off curve of --sweep; add --sweep');
      const probe = probeOptions(o);
      const progress = progressFor(io, o);
      const maxError = o.maxError === undefined ? undefined : parseNumber('--max-error', o.maxError, (x) => x >= 0, 'a non-negative number');
      const result = await prune(model, {
        output: o.output ?? '',
        ...(probe ? { probe } : {}),
        analysis: analysisOptions(o),
        merge: { approximate: !!o.approximate, exactTolerance: parseNumber('--exact-tolerance', o.exactTolerance, (x) => x >= 0 && x < 1, 'a number in [0, 1)') },
        verify: { ...(maxError !== undefined && !budget ? { maxError } : {}) },
        session: sessionOptions(o),
        dryRun: !!o.dryRun,
        ...(budget ? { budget } : {}),
        ...(o.stats?.length ? { statistics: o.stats } : {}),
        ...workerCount(o),
        onProgress: (stage, p) => progress.update(stage, p),
      });
      progress.end();
      const report = pruneReport(result);
      io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatPruneSummary(report, { width })}\n`);
      if (o.html !== undefined) writeOutput(io, o.html, renderSweepHtml(report), '--html', [model]);
    });

  addReportingCommands(program, io);
  addExamples(program);
  return program;
}

interface PruneFlags {
  output?: string;
  approximate?: boolean;
  maxError?: string;
  targetParams?: string;
  targetFlops?: string;
  minTop1?: string;
  labels?: string;
  maxAccuracyDrop?: string;
  sweep?: string | boolean;
  html?: string;
  exactTolerance: string;
  dryRun?: boolean;
}

/** The budget the flags ask for; undefined for a plain (exact, or --approximate all-or-nothing) prune. */
function budgetOptions(o: PruneFlags): BudgetOptions | undefined {
  const fraction = (flag: string, text: string): number => parseNumber(flag, text, (x) => x > 0 && x <= 1, 'a fraction in (0, 1]');
  const b: BudgetOptions = {};
  if (o.targetParams !== undefined) b.targetParams = fraction('--target-params', o.targetParams);
  if (o.targetFlops !== undefined) b.targetFlops = fraction('--target-flops', o.targetFlops);
  if (o.minTop1 !== undefined) b.minTop1 = parseNumber('--min-top1', o.minTop1, (x) => x >= 0 && x <= 1, 'a share in [0, 1]');
  if (o.maxAccuracyDrop !== undefined) b.maxAccuracyDrop = parseNumber('--max-accuracy-drop', o.maxAccuracyDrop, (x) => x >= 0 && x <= 1, 'a share in [0, 1]');
  if (o.sweep !== undefined) b.sweep = o.sweep === true ? DEFAULT_SWEEP : parseNumberList('--sweep', String(o.sweep)).map((x) => {
    if (!(x > 0)) throw new OptionError('--sweep', `expected positive relative-error budgets, got "${o.sweep}"`);
    return x;
  });
  if (b.sweep && (b.targetParams !== undefined || b.targetFlops !== undefined)) throw new OptionError('--sweep', 'walks a ladder of error budgets; it cannot be combined with --target-params or --target-flops');
  const asked = Object.keys(b).length > 0;
  if (o.approximate) {
    if (asked) throw new OptionError('--approximate', 'merges every cluster at once; it cannot be combined with --target-params, --target-flops, --min-top1, --max-accuracy-drop or --sweep, which search for the largest reduction themselves');
    if (o.labels !== undefined) throw new OptionError('--labels', 'is read by a budgeted prune, not by --approximate');
    return undefined;
  }
  if (o.maxError !== undefined) b.maxError = parseNumber('--max-error', o.maxError, (x) => x >= 0, 'a non-negative number');
  if (o.labels !== undefined) {
    if (b.maxAccuracyDrop === undefined && Object.keys(b).length === 0) throw new OptionError('--labels', 'needs a budget to report accuracy under: add --max-accuracy-drop d, --max-error e, --min-top1 a or a --target-*');
    b.labels = o.labels;
  } else if (b.maxAccuracyDrop !== undefined) throw new OptionError('--max-accuracy-drop', 'needs --labels labels.npy (the class of each probe sample)');
  return Object.keys(b).length > 0 ? b : undefined;
}

/**
 * The library names options by their API names (`maxError`, `similarityThreshold`); a CLI user
 * typed flags, so messages are shown with the flag for each API name.
 */
const FLAG_FOR_OPTION: Record<string, string> = {
  maxError: '--max-error',
  labels: '--labels',
  exactTolerance: '--exact-tolerance',
  similarityThreshold: '--threshold',
  staticThreshold: '--static-threshold',
  approximate: '--approximate',
  output: '--output',
  random: '--random',
  files: '--probe',
  images: '--images',
  pinned: '--input',
  batchAxes: '--batch-axis',
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

/** Options that take a list: commander reads every argument after them up to the next option. */
const VARIADIC_OPTIONS = ['--probe', '--stats', '--input', '--batch-axis'];

/**
 * `condense audit --probe x.npy model.onnx`: the list option swallows the model, and commander
 * would only say the model argument is missing. An .onnx file in such a list is that mistake.
 */
function modelInVariadicOption(args: readonly string[]): { option: string; model: string } | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--') return undefined;
    if (!VARIADIC_OPTIONS.includes(args[i]!)) continue;
    for (let j = i + 1; j < args.length && !args[j]!.startsWith('-'); j++) {
      if (args[j]!.toLowerCase().endsWith('.onnx')) return { option: args[i]!, model: args[j]! };
    }
  }
  return undefined;
}

/** Runs the CLI on `args` (without node and script) and returns the exit code. */
export async function runCli(args: string[], io: CliIO = defaultIO): Promise<number> {
  const swallowed = modelInVariadicOption(args);
  if (swallowed) {
    io.stderr(`condense: ${swallowed.option} takes one or more files and read the model "${terminalText(swallowed.model)}" as one of them; put the model before ${swallowed.option}, or end the list with -- (run condense --help for usage)\n`);
    return EXIT.usage;
  }
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

// ---- output: progress, `-` for standard output (issue 13)

function progressFor(io: CliIO, o: { quiet?: boolean }): Progress {
  return progressReporter(io.stderr, o.quiet ? 'off' : io.progress ?? (io.isStderrTTY ? 'tty' : 'lines'));
}

/** The one report option given as `-` (standard output), if any; two of them is an error. */
function stdoutOption(o: object, keys: string[]): string | undefined {
  const dashed = keys.filter((k) => (o as Record<string, unknown>)[k] === '-');
  const flag = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  if (dashed.length > 1) throw new OptionError(flag(dashed[1]!), `and ${flag(dashed[0]!)} both ask for standard output ("-"); give a file to one of them`);
  return dashed[0];
}

/** Writes a report to its file, or to standard output for `-`; says where on stderr (unless to stdout). */
function writeOutput(io: CliIO, target: string, content: string | Uint8Array, option: string, inputs: string[] = []): void {
  if (target === '-') {
    if (typeof content === 'string') io.stdout(content.endsWith('\n') ? content : `${content}\n`);
    else if (io.stdoutBytes) io.stdoutBytes(content);
    else io.stdout(Buffer.from(content).toString('latin1'));
    return;
  }
  io.stderr(`condense: wrote ${writeReportFile(target, content, option, inputs)}\n`);
}

function writeAuditOutputs(result: AuditResult, o: AuditOutputOptions, io: CliIO, inputs: string[]): void {
  if (o.html !== undefined) writeOutput(io, o.html, renderHtmlReport(result), '--html', inputs);
  if (o.md !== undefined) writeOutput(io, o.md, renderMarkdownReport(auditReport(result)), '--md', inputs);
  if (o.pngDir !== undefined) {
    if (o.pngDir === '-') throw new OptionError('--png-dir', 'is a folder for several pictures; "-" (standard output) is for single-file reports such as --html and --md');
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
  const width = io.columns;
  addStatsOption(addProbeOptions(program.command('check')))
    .description('CI gate: evaluate the rules of a config (redundancy, effective width, static share, prune target, baseline); exit 1 when one fails')
    .argument('<model>', 'ONNX model file')
    .option('--config <file>', 'rules as JSON (default: condense.config.json in the current folder, if present)')
    .option('--baseline <file>', 'a previous `condense audit --json` report: fail when a layer\'s redundancy grew')
    .option('--junit <file>', 'also write the results as JUnit XML (one testcase per rule and layer)')
    .action(async (model: string, o: CommonOptions & { config?: string; baseline?: string; junit?: string }, command: Command) => {
      const started = Date.now();
      const junitToStdout = stdoutOption(o, ['junit']);
      const progress = progressFor(io, o);
      const configPath = o.config ?? (fs.existsSync('condense.config.json') ? 'condense.config.json' : undefined);
      const config = configPath !== undefined ? loadCheckConfig(configPath) : undefined;
      const typed = explicitOptions(o, command);
      const probe = probeOptions(typed);
      const baselinePath = o.baseline ?? config?.baseline;
      progress.update('checking: auditing the model');
      const result = await check(model, {
        ...(config ? { config } : {}),
        ...(configPath !== undefined ? { configPath } : {}),
        ...(baselinePath !== undefined ? { baseline: { path: baselinePath, layers: readAuditReport(baselinePath).layers } } : {}),
        ...(probe ? { probe } : {}),
        ...(o.stats?.length ? { statistics: o.stats } : {}),
        analysis: analysisOptions(typed),
        session: sessionOptions(o),
      });
      progress.end();
      const report = checkReport(result);
      if (!junitToStdout) {
        io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatCheckTable(report, { width })}\n`);
        const env = io.env ?? process.env;
        if (env.GITHUB_ACTIONS === 'true' && !o.json) io.stdout(renderGithubAnnotations(report));
      }
      const inputs = [model, ...(configPath !== undefined ? [configPath] : []), ...(baselinePath !== undefined ? [baselinePath] : [])];
      if (o.junit !== undefined) {
        const xml = renderJunitReport(report, (Date.now() - started) / 1000);
        if (o.junit === '-') io.stdout(xml);
        else writeReportFile(o.junit, xml, '--junit', inputs);
      }
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
      if (!stdoutOption(o, ['svg', 'png'])) io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatSeriesTable(report, { width })}\n`);
      if (o.svg !== undefined) writeOutput(io, o.svg, renderSvg(seriesFigure(report)), '--svg', checkpoints);
      if (o.png !== undefined) writeOutput(io, o.png, renderPng(seriesFigure(report)), '--png', checkpoints);
    });

  program
    .command('diff')
    .description('compare two audit reports (condense audit --json) layer by layer')
    .argument('<a>', 'the earlier report')
    .argument('<b>', 'the later report')
    .option('--json', 'print the JSON report instead of a table')
    .action((a: string, b: string, o: { json?: boolean }) => {
      const report = diffReport(diffAuditFiles(a, b));
      io.stdout(o.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDiffTable(report, { width })}\n`);
      // The table carries the warnings; with --json, stderr says them too so a CI log shows them.
      if (o.json) for (const w of report.warnings) io.stderr(`condense: warning: ${w}\n`);
    });
}
