import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// The public API is a deliberate list: src/index.ts and src/universal.ts export by name, and this
// test pins both lists, so adding, removing or renaming a public name shows up here as a decision.
// Internals (job checks, wire codecs, progress helpers, ...) are reached through their module
// paths inside the package only.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The Node entry's runtime names (functions, classes, constants). */
const INDEX_VALUES = [
  'ArrayDataset', 'CheckpointError', 'DEFAULT_META_CONFIG', 'DataError', 'DivergenceError',
  'EXECUTOR_NAMES', 'FewShotTaskSource', 'InlineExecutor', 'InvalidOptionsError', 'NATIVE_LAYERS',
  'NativeLearner', 'OMNIGLOT_CLASS_SPLITS', 'PRESET_NAMES', 'Params', 'REPTILE_DEFAULTS',
  'RedisExecutor', 'Reptile', 'ReptileError', 'Rng', 'SineTaskSource', 'TfjsLearner',
  'ThreadsExecutor', 'UnsupportedModelError', 'UsageError', 'WasmLearner', 'concatExamples', 'createExecutor',
  'createFewShotModel', 'createLayout', 'createLearner', 'createMiniImageNetModel',
  'createOmniglotModel', 'createResNet12', 'createSineModel', 'defaultCacheDir', 'downloadOmniglot', 'epochOrder',
  'evaluate', 'evaluateFewShotCheckpoint', 'evaluateMany', 'exportLayersModel', 'fewShotEvaluate',
  'fewShotTrain', 'fit', 'fomamlUpdate', 'getPreset', 'hasCheckpoint', 'linearSchedule',
  'loadFewShotCheckpoint', 'loadImageFolder', 'loadMiniImageNet', 'loadMnist', 'loadMnistFewShot',
  'loadNative', 'loadOmniglot', 'loadWasmEngine', 'metaTrain', 'mnistExamples', 'mse', 'openFewShotData', 'packBinarySet', 'readBinarySet',
  'readCheckpoint', 'registerWasmConvKernels', 'reptileSerialUpdate', 'reptileUpdate',
  'resolveFewShotRun', 'resolveMetaConfig', 'runRedisWorker', 'runSineDemo', 'selectBackend',
  'sizeOf', 'splitFolder', 'splitOmniglot', 'subsetClasses', 'taskScoring', 'trainMnistMlp', 'wasmEngineStatus',
  'withRotations', 'writeCheckpoint',
];

/** The Node entry's type-only names (interfaces and type aliases). */
const INDEX_TYPES = [
  'AdaptCallOptions', 'AdaptResult', 'ArrayDatasetOptions', 'AsyncCounters', 'AsyncProgress', 'AsyncSpanRequest', 'AsyncSpanResult', 'BackendChoice', 'BinarySet', 'Checkpoint', 'CheckpointEvaluation',
  'CheckpointEvaluationOptions', 'ConvInit', 'ConvModelOptions', 'CreateExecutorOptions',
  'CreateLearnerOptions', 'EvalRequest', 'EvaluateOptions', 'EvaluateResult', 'EvaluationSet',
  'Examples', 'Executor', 'ExecutorName', 'FewShotCheckpointInfo', 'FewShotData',
  'FewShotDatasetName', 'FewShotDefaults', 'FewShotEvaluateOptions', 'FewShotLoss',
  'FewShotModelKind', 'FewShotOptions', 'FewShotProgress', 'FewShotRun', 'FewShotSettings',
  'FewShotTrainOptions', 'FitEngine', 'FitOptions', 'ImageFolderOptions', 'InnerOptimizerName', 'InnerOptions',
  'InnerStatePolicy', 'LabeledDataset', 'Layout', 'Learner', 'LearnerChoice', 'LoadMnistOptions',
  'MetaBatchRequest', 'MetaCallbacks', 'MetaConfig', 'MetaIterLogs', 'MetaTrainOptions',
  'MetaTrainResult', 'MetaTrainStore', 'MiniImageNetOptions', 'MnistData', 'MnistEpochLogs',
  'MnistFewShotOptions', 'MnistMlpOptions', 'MnistMlpResult', 'MnistSplit', 'NativeIsa',
  'NativeLearnerOptions', 'NativeStatus', 'OmniglotClassSplit', 'OmniglotData', 'OmniglotLoadOptions',
  'OmniglotSplitOptions', 'OpenFewShotOptions', 'OptimizerState', 'ParamSpec', 'Predictor', 'Preset',
  'PresetName', 'RedisExecutorOptions', 'RedisWorkerOptions', 'ReptileOptions', 'ResNet12Options', 'SineDefaults',
  'SineDemoOptions', 'SineDemoResult', 'SineModelOptions', 'SineOptions', 'SineTask', 'SineWave',
  'SyncMode', 'Task', 'TaskKind', 'TaskScoring', 'TaskSource', 'TfjsLearnerOptions', 'ThreadsExecutorOptions', 'WasmBuilds', 'WasmLearnerOptions', 'WasmSource', 'WasmStatus',
];

/** The universal entry's runtime names. */
const UNIVERSAL_VALUES = [
  'ArrayDataset', 'CheckpointError', 'DEFAULT_META_CONFIG', 'DataError', 'DivergenceError',
  'FewShotTaskSource', 'InlineExecutor', 'InvalidOptionsError', 'Params', 'REPTILE_DEFAULTS',
  'Reptile', 'ReptileError', 'Rng', 'SineTaskSource', 'TfjsLearner', 'UnsupportedModelError',
  'UsageError', 'WasmLearner', 'concatExamples', 'createLayout', 'createMiniImageNetModel', 'createOmniglotModel',
  'createResNet12', 'createSineModel', 'evaluate', 'evaluateMany', 'fomamlUpdate', 'linearSchedule', 'loadWasmEngine', 'metaTrain',
  'mse', 'readBinarySet', 'registerWasmConvKernels', 'reptileSerialUpdate', 'reptileUpdate', 'resolveMetaConfig',
  'sizeOf', 'subsetClasses', 'taskScoring', 'wasmEngineStatus', 'withRotations',
];

/** The universal entry's type-only names. */
const UNIVERSAL_TYPES = [
  'AdaptCallOptions', 'AdaptResult', 'ArrayDatasetOptions', 'AsyncCounters', 'AsyncProgress', 'AsyncSpanRequest', 'AsyncSpanResult', 'BinarySet', 'Checkpoint', 'ConvInit', 'ConvModelOptions', 'EvalRequest',
  'EvaluateOptions', 'EvaluateResult', 'EvaluationSet', 'Examples', 'Executor', 'FewShotOptions',
  'InnerOptimizerName', 'InnerOptions', 'InnerStatePolicy', 'LabeledDataset', 'Layout', 'Learner',
  'MetaBatchRequest', 'MetaCallbacks', 'MetaConfig', 'MetaIterLogs', 'MetaTrainOptions',
  'MetaTrainResult', 'MetaTrainStore', 'OptimizerState', 'ParamSpec', 'Predictor', 'ReptileOptions',
  'ResNet12Options', 'SineModelOptions', 'SineOptions', 'SineTask', 'SineWave', 'SyncMode', 'Task', 'TaskKind', 'TaskScoring',
  'TaskSource', 'TfjsLearnerOptions', 'WasmBuilds', 'WasmLearnerOptions', 'WasmSource', 'WasmStatus',
];

/** Every name an entry exports, split into runtime names and type-only names, from the type checker. */
function exportedNames(program: ts.Program, file: string): { values: string[]; types: string[] } {
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file);
  if (!source) throw new Error(`${file} is not in the program`);
  const values: string[] = [];
  const types: string[] = [];
  for (const symbol of checker.getExportsOfModule(checker.getSymbolAtLocation(source)!)) {
    const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
    (target.flags & ts.SymbolFlags.Value ? values : types).push(symbol.name);
  }
  return { values: values.sort(), types: types.sort() };
}

describe('the public API', () => {
  it("the Node entry's runtime exports are the pinned list", async () => {
    const entry = (await import('../src/index.js')) as Record<string, unknown>;
    expect(Object.keys(entry).sort()).toEqual(INDEX_VALUES);
  });

  it("the universal entry's runtime exports are the pinned list, all of them also the Node entry's", async () => {
    const entry = (await import('../src/universal.js')) as Record<string, unknown>;
    expect(Object.keys(entry).sort()).toEqual(UNIVERSAL_VALUES);
    expect(UNIVERSAL_VALUES.filter((name) => !INDEX_VALUES.includes(name))).toEqual([]);
  });

  it('the type-only exports of both entries are the pinned lists', () => {
    const files = ['src/index.ts', 'src/universal.ts'].map((f) => path.join(root, f));
    const program = ts.createProgram(files, {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      skipLibCheck: true,
      noEmit: true,
    });
    const index = exportedNames(program, files[0]!);
    const universal = exportedNames(program, files[1]!);
    expect(index.types).toEqual(INDEX_TYPES);
    expect(universal.types).toEqual(UNIVERSAL_TYPES);
    // The checker's runtime names agree with what the modules export when loaded.
    expect(index.values).toEqual(INDEX_VALUES);
    expect(universal.values).toEqual(UNIVERSAL_VALUES);
    expect(UNIVERSAL_TYPES.filter((name) => !INDEX_TYPES.includes(name))).toEqual([]);
  }, 60_000);
});
