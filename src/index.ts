/**
 * The Node entry of reptile-ml (`reptile-ml`): everything in the universal entry, plus the
 * executors that use threads or Redis, the native engine, checkpoints on disk, the data loaders
 * and the recipes the CLI runs. The list is deliberate: test/public-api.test.ts pins it, so adding
 * or removing a name is a visible decision. Internals (job checks, wire codecs, progress lines)
 * are reached through their module paths inside the package only.
 * @module
 */

// The algorithm: flat parameters, seeded randomness, the meta-update and its schedule.
export { Params, createLayout, sizeOf, type Layout, type ParamSpec } from './core/params.js';
export { Rng } from './core/rng.js';
export { linearSchedule } from './core/schedule.js';
export { reptileUpdate, reptileSerialUpdate, fomamlUpdate } from './core/meta-update.js';

// Tasks and task sources.
export { type Examples, type Task, type TaskKind, type TaskSource } from './tasks/task.js';
export { SineTaskSource, type SineOptions, type SineTask, type SineWave } from './tasks/sine.js';
export {
  ArrayDataset,
  FewShotTaskSource,
  subsetClasses,
  withRotations,
  type ArrayDatasetOptions,
  type FewShotOptions,
  type LabeledDataset,
} from './tasks/labeled.js';

// Errors.
export { CheckpointError, DataError, DivergenceError, InvalidOptionsError, ReptileError, UnsupportedModelError, UsageError } from './_utils/errors.js';

// Learners and models.
export {
  type AdaptCallOptions,
  type AdaptResult,
  type InnerOptions,
  type InnerStatePolicy,
  type Learner,
  type OptimizerState,
  type Predictor,
  type TaskScoring,
} from './learners/learner.js';
export { TfjsLearner, type TfjsLearnerOptions } from './learners/tfjs.js';
export { NativeLearner, type NativeLearnerOptions } from './learners/native-learner.js';
export { WasmLearner, type WasmLearnerOptions } from './learners/wasm-learner.js';
export { NATIVE_LAYERS } from './learners/compile-model.js';
export { createLearner, type CreateLearnerOptions, type LearnerChoice } from './learners/create-learner.js';
export {
  createSineModel,
  createOmniglotModel,
  createMiniImageNetModel,
  type SineModelOptions,
  type ConvModelOptions,
  type ConvInit,
} from './learners/models.js';
export { createResNet12, type ResNet12Options } from './learners/resnet12.js';
export { Reptile, REPTILE_DEFAULTS, type ReptileOptions, type InnerOptimizerName } from './optim/reptile.js';
export { fit, epochOrder, type FitOptions, type FitEngine } from './fit/fit.js';

// Backends and the native engine.
export { selectBackend, type BackendChoice } from './engine/backend.js';
export { registerWasmConvKernels } from './engine/wasm-kernels.js';
export { loadNative, type NativeStatus, type NativeIsa } from './engine/native.js';
export { loadWasmEngine, wasmEngineStatus, type WasmStatus, type WasmSource, type WasmBuilds } from './engine/wasm-module.js';

// Executors: where the tasks of a meta-batch run.
export type { Executor, MetaBatchRequest, EvalRequest, SyncMode, AsyncProgress, AsyncCounters, AsyncSpanRequest, AsyncSpanResult } from './exec/executor.js';
export { InlineExecutor } from './exec/inline.js';
export { ThreadsExecutor, type ThreadsExecutorOptions } from './exec/threads.js';
export { RedisExecutor, runRedisWorker, type RedisExecutorOptions, type RedisWorkerOptions } from './exec/redis.js';
export { createExecutor, EXECUTOR_NAMES, type ExecutorName, type CreateExecutorOptions } from './exec/create-executor.js';

// Meta-training, evaluation and checkpoints.
export { DEFAULT_META_CONFIG, resolveMetaConfig, type MetaConfig } from './train/config.js';
export {
  metaTrain,
  type MetaTrainOptions,
  type MetaCallbacks,
  type MetaIterLogs,
  type MetaTrainResult,
  type MetaTrainStore,
} from './train/meta-train.js';
export { evaluate, evaluateMany, mse, concatExamples, taskScoring, type EvaluateOptions, type EvaluateResult, type EvaluationSet } from './train/evaluate.js';
export { hasCheckpoint, readCheckpoint, writeCheckpoint, type Checkpoint } from './train/checkpoint.js';

// Data.
export {
  loadOmniglot,
  splitOmniglot,
  OMNIGLOT_CLASS_SPLITS,
  type OmniglotData,
  type OmniglotLoadOptions,
  type OmniglotSplitOptions,
  type OmniglotClassSplit,
} from './data/omniglot.js';
export { packBinarySet, readBinarySet, type BinarySet } from './tasks/binary-set.js';
export { loadImageFolder, loadMiniImageNet, splitFolder, type ImageFolderOptions, type MiniImageNetOptions } from './data/folder.js';
export { loadMnistFewShot, type MnistFewShotOptions } from './data/mnist-fewshot.js';
export { openFewShotData, type FewShotData, type FewShotDatasetName, type OpenFewShotOptions } from './data/open.js';
export { downloadOmniglot } from './data/download.js';
export { defaultCacheDir } from './data/cache.js';
export { loadMnist, mnistExamples, type LoadMnistOptions, type MnistData, type MnistSplit } from './data/mnist.js';

// Recipes: the runs the CLI makes, as functions.
export { runSineDemo, type SineDemoOptions, type SineDemoResult } from './recipes/sine-demo.js';
export {
  createFewShotModel,
  resolveFewShotRun,
  fewShotTrain,
  fewShotEvaluate,
  loadFewShotCheckpoint,
  evaluateFewShotCheckpoint,
  exportLayersModel,
  type FewShotModelKind,
  type FewShotSettings,
  type FewShotRun,
  type FewShotProgress,
  type FewShotTrainOptions,
  type FewShotEvaluateOptions,
  type FewShotCheckpointInfo,
  type CheckpointEvaluationOptions,
  type CheckpointEvaluation,
} from './recipes/few-shot/index.js';
export { trainMnistMlp, type MnistMlpOptions, type MnistMlpResult, type MnistEpochLogs } from './recipes/mnist-mlp.js';
export {
  getPreset,
  PRESET_NAMES,
  type Preset,
  type PresetName,
  type FewShotDefaults,
  type FewShotLoss,
  type SineDefaults,
} from './recipes/presets.js';
