// The public API is what src/index.ts exports: this list locks it, so a rename or a removal is a
// decision made here, in review, not an accident of a refactor. Types are listed too (read with
// the TypeScript compiler), values are also checked at run time.

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';

const INDEX = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'index.ts');

const VALUES = [
  'CondenseError', 'ConfigError', 'DEFAULT_EXACT_TOLERANCE', 'DEVICES', 'DataType', 'ExternalDataError', 'FileNotFoundError', 'FileWriteError', 'Graph', 'Model',
  'ModelFormatError', 'ModelSession', 'Node', 'OptionError', 'ProbeDataError', 'ProviderUnavailableError', 'RuntimeError', 'Tensor', 'Value',
  'VerificationError', 'applyMergePlan', 'audit', 'auditPictures', 'auditReport', 'check', 'checkReport', 'cleanUp', 'clusterNeurons', 'compareModels', 'couplingRules',
  'dataTypeName', 'decodeModel', 'decodeNpy', 'decodeNpz', 'decodeTensorFile', 'diffAuditFiles', 'diffAuditReports', 'diffReport', 'encodeModel', 'encodeNpy',
  'encodeNpz', 'encodeTensorFile', 'ensureOutputFolder', 'findChannelGroups', 'findLayers', 'formatAuditTable', 'formatCheckTable', 'formatDiffTable', 'formatInspect',
  'formatPruneSummary', 'formatSeriesTable', 'inspect', 'inspectReport', 'joinProblems', 'layerFigures', 'layerReport', 'listDevices', 'loadCheckConfig', 'loadModel',
  'loadProbeFiles', 'measureCondensation', 'measureModel', 'measureOptionsForPrune', 'parseAuditReport', 'parseCheckConfig', 'planMerges', 'predictRegime', 'prune',
  'pruneMeasured', 'pruneReport', 'randomProbes', 'readAuditReport', 'redundancy', 'renderGithubAnnotations', 'renderHtmlReport', 'renderJunitReport',
  'renderMarkdownReport', 'renderPng', 'renderSvg', 'saveModel', 'seriesFigure', 'seriesReport', 'series', 'writeReportFile',
  // Sharded statistics (issue 14): condense collect / --stats.
  'STATISTICS_FORMAT_VERSION', 'StatisticsFileError', 'collectShard', 'decodeStatisticsFile', 'encodeStatisticsFile', 'expandStatisticsPaths', 'modelFingerprint',
  'readStatisticsShards', 'writeStatisticsFile',
  // Escaping of model text for each output (issue 12): the CLI escapes what it prints.
  'markdownCode', 'markdownText', 'terminalText', 'xmlText',
  // Probe data people have (issue 13): images, pinned inputs.
  'IMAGE_PRESETS', 'imageProbes', 'parsePinnedValue',
  // Attention heads (issue 10b).
  'findAttention', 'auditHeads', 'planHeadMerges', 'applyHeadMerges',
  // Coverage and quantized layers named (issue 9b).
  'describeCoverage', 'findUnsupportedLayers', 'measureCoverage',
  // Compression within a budget (issue 11): prune --max-error / --target-* / --sweep.
  'BUDGET_HOLDOUT_SAMPLES', 'DEFAULT_SWEEP', 'rankGroupRemovals', 'rankLayerRemovals', 'renderSweepHtml', 'searchBudget', 'sweepFigure',
];

const TYPES = [
  'AnalysisOptions', 'Attribute', 'AttributeValue', 'AuditOptions', 'AuditReport', 'AuditResult', 'Baseline', 'Blocker', 'BlockerCode', 'ChannelGroup', 'CheckConfig',
  'CheckOptions', 'CheckReport', 'CheckResult', 'CondenseErrorCode', 'Consumer', 'CouplingRule', 'DependencyGroup', 'Device', 'DiffReport', 'DiffResult', 'Dim', 'Fidelity',
  'Figure', 'GroupMember', 'HostTensor', 'IndexMap', 'InspectResult', 'LayerCondensation', 'LayerFigures', 'LayerMeasures', 'LayerMergePlan', 'LayerReport',
  'MeasureOptions', 'Measurement', 'MergeOptions', 'MergePlan', 'NeuronLayer', 'NodeSpec', 'NpyArray', 'OpsetImport', 'Picture', 'ProbeOptions', 'ProbeSet',
  'PruneOptions', 'PruneReport', 'PruneResult', 'Regime', 'RuleOutcome', 'SeriesOptions', 'SeriesReport', 'SeriesResult', 'SessionOptions', 'TwoLayerEstimate', 'Use',
  'ValueType', 'VerifyOptions',
  // Sharded statistics (issue 14).
  'CollectedShard', 'CollectOptions', 'MergedShards', 'StatisticsHeader',
  // Probe data people have (issue 13).
  'ImagePreset', 'ImageProbeOptions', 'InputFeedOptions', 'PinnedValue',
  // Attention heads (issue 10b).
  'AttentionAudit', 'AttentionBlock', 'AttentionForm', 'AttentionReport', 'DuplicateHead', 'HeadMeasures', 'HeadMergePlan', 'ProjectionPart', 'WithinHeadMerges',
  // Coverage and quantized layers named (issue 9b).
  'BlockerCount', 'Coverage', 'UnsupportedLayer',
  // Compression within a budget (issue 11).
  'BudgetOptions', 'BudgetReport', 'BudgetSearchResult', 'CandidateSummary', 'GroupRankContext', 'RemovalCandidate', 'SweepPoint',
].sort();

/** Every name src/index.ts exports, types included. */
function exportedNames(): string[] {
  const program = ts.createProgram([INDEX], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, noEmit: true, skipLibCheck: true });
  const checker = program.getTypeChecker();
  const symbol = checker.getSymbolAtLocation(program.getSourceFile(INDEX)!)!;
  return checker.getExportsOfModule(symbol).map((s) => s.name).sort();
}

describe('the public API', () => {
  it('exports exactly the listed values at run time', () => {
    expect(Object.keys(api).sort()).toEqual([...VALUES].sort());
  });

  it('exports exactly the listed names, types included', () => {
    const names = exportedNames();
    const types = names.filter((n) => !VALUES.includes(n));
    expect(names.filter((n) => VALUES.includes(n)).sort()).toEqual([...VALUES].sort());
    expect(types).toEqual(TYPES);
  });
});
