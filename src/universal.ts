/**
 * The universal entry of reptile-ml (`reptile-ml/universal`, and `reptile-ml` under the `browser`
 * export condition): the algorithm without file I/O, the native engine or the data loaders, so a
 * bundler can take it to a web page (DESIGN.md invariant 7). Everything here runs on any tfjs
 * backend; pick one with `tf.setBackend` (the Node entry's `selectBackend` probes Node packages).
 * Nothing reachable from this file may import a Node built-in: test/universal-bundle.test.ts holds it.
 */
export * from './core/index.js';
export * from './tasks/index.js';
export { CheckpointError, DataError, DivergenceError, InvalidOptionsError, ReptileError, UnsupportedModelError, UsageError } from './_utils/errors.js';
export * from './learners/learner.js';
export { TfjsLearner, type TfjsLearnerOptions } from './learners/tfjs.js';
export {
  createSineModel,
  createOmniglotModel,
  createMiniImageNetModel,
  type SineModelOptions,
  type ConvModelOptions,
  type ConvInit,
} from './learners/models.js';
export type { Executor, MetaBatchRequest } from './exec/executor.js';
export { taskStreams } from './exec/executor.js';
export { InlineExecutor } from './exec/inline.js';
export * from './train/config.js';
export {
  runMetaLoop as metaTrain,
  type MetaLoopOptions as MetaTrainOptions,
  type MetaTrainResult,
  type MetaTrainStore,
  type MetaCallbacks,
  type MetaIterLogs,
  type Checkpoint,
} from './train/meta-loop.js';
export * from './train/evaluate.js';
export { registerWasmConvKernels } from './engine/wasm-kernels.js';
export { Reptile, REPTILE_DEFAULTS, type ReptileOptions, type InnerOptimizerName } from './optim/reptile.js';
