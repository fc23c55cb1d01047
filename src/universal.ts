/**
 * The universal entry of reptile-ml (`reptile-ml/universal`, and `reptile-ml` under the `browser`
 * export condition): the algorithm without file I/O, the native engine or the data loaders, so a
 * bundler can take it to a web page (docs/architecture.md, invariant 7). Everything here runs on any tfjs
 * backend; pick one with `tf.setBackend` (the Node entry's `selectBackend` probes Node packages).
 * Nothing reachable from this file may import a Node built-in: test/universal-bundle.test.ts holds it.
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
export { readBinarySet, type BinarySet } from './tasks/binary-set.js';

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
export { WasmLearner, type WasmLearnerOptions } from './learners/wasm-learner.js';
export { loadWasmEngine, wasmEngineStatus, type WasmStatus, type WasmSource, type WasmBuilds } from './engine/wasm-module.js';
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
export { registerWasmConvKernels } from './engine/wasm-kernels.js';

// The in-process executor (the others need threads or Redis).
export type { Executor, MetaBatchRequest, EvalRequest, SyncMode, AsyncProgress, AsyncCounters, AsyncSpanRequest, AsyncSpanResult } from './exec/executor.js';
export { InlineExecutor } from './exec/inline.js';

// Meta-training (in memory: checkpoints on disk are the Node entry's) and evaluation.
export { DEFAULT_META_CONFIG, resolveMetaConfig, type MetaConfig } from './train/config.js';
export {
  runMetaLoop as metaTrain,
  type MetaLoopOptions as MetaTrainOptions,
  type MetaTrainResult,
  type MetaTrainStore,
  type MetaCallbacks,
  type MetaIterLogs,
  type Checkpoint,
} from './train/meta-loop.js';
export { evaluate, evaluateMany, mse, concatExamples, taskScoring, type EvaluateOptions, type EvaluateResult, type EvaluationSet } from './train/evaluate.js';
