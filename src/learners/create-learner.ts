import type * as tf from '@tensorflow/tfjs';
import { checkChoice, checkOptionsObject } from '../_utils/checks.js';
import { InvalidOptionsError, UnsupportedModelError } from '../_utils/errors.js';
import { loadNative, type NativeIsa } from '../engine/native.js';
import { INNER_STATE_POLICIES, type InnerStatePolicy, type Learner } from './learner.js';
import { NativeLearner } from './native-learner.js';
import { TfjsLearner } from './tfjs.js';
import { WasmLearner } from './wasm-learner.js';
import { wasmEngineStatus } from '../engine/wasm-module.js';
import { checkNoRegularizers } from './weights.js';

/**
 * Which learner runs the inner loop: `auto` takes the native engine (the addon) when it can, else
 * the engine compiled to WebAssembly, else tfjs; `native`, `wasm` and `tfjs` insist on one.
 */
export type LearnerChoice = 'auto' | 'native' | 'wasm' | 'tfjs';

/** Options of `createLearner`. */
export interface CreateLearnerOptions {
  model: tf.LayersModel;
  learner?: LearnerChoice;
  innerState?: InnerStatePolicy;
  batchStatsAtTest?: boolean;
  isa?: NativeIsa;
  /** Threads of the native engine (1 or 2). */
  threads?: 1 | 2;
  /** Where `auto` says, once per process, why it fell back from the addon (to WebAssembly or tfjs). Default: console.warn. */
  log?: (line: string) => void;
}

let toldFallback = false;

/**
 * Builds the learner for a model: under `auto` the native C++ engine when the addon is built and
 * supports every layer (it is the fastest), else the same engine compiled to WebAssembly (one
 * thread), else the tfjs learner, saying once which and why; `native` and `wasm` insist on their
 * engine and fail with a clear error; `tfjs` always uses TensorFlow.js.
 */
export function createLearner(options: CreateLearnerOptions): Learner {
  checkOptionsObject(options, 'createLearner', '{ model }');
  // Not a model, or one with a regularizer: both learners refuse it, so refuse it before `auto` falls back.
  checkNoRegularizers(options.model);
  const choice = options.learner ?? 'auto';
  if (choice !== 'auto' && choice !== 'native' && choice !== 'wasm' && choice !== 'tfjs') throw new InvalidOptionsError(`unknown learner '${String(choice)}': \`learner\` must be 'auto', 'native', 'wasm' or 'tfjs'`, { option: 'learner' });
  if (options.innerState !== undefined) checkChoice('innerState', options.innerState, INNER_STATE_POLICIES);
  if (options.isa !== undefined) checkChoice('isa', options.isa, ['auto', 'avx512', 'avx2', 'generic']);
  if (options.threads !== undefined && options.threads !== 1 && options.threads !== 2) throw new InvalidOptionsError(`\`threads\` must be 1 or 2, got ${String(options.threads)}`, { option: 'threads' });
  if (options.log !== undefined && typeof options.log !== 'function') throw new InvalidOptionsError('`log` must be a function that takes a line', { option: 'log' });
  const common = { model: options.model, ...(options.innerState ? { innerState: options.innerState } : {}), ...(options.batchStatsAtTest === undefined ? {} : { batchStatsAtTest: options.batchStatsAtTest }) };
  if (choice === 'tfjs') return new TfjsLearner(common);
  if (choice === 'wasm') return new WasmLearner(common);
  if (choice === 'native') return new NativeLearner({ ...common, ...(options.isa ? { isa: options.isa } : {}), ...(options.threads ? { threads: options.threads } : {}) });
  const status = loadNative();
  let why: string;
  if (status.ok) {
    try {
      return new NativeLearner({ ...common, ...(options.isa ? { isa: options.isa } : {}), ...(options.threads ? { threads: options.threads } : {}) });
    } catch (e) {
      if (!(e instanceof UnsupportedModelError)) throw e;
      why = e.message.split(';')[0]!;
    }
  } else {
    why = `the native engine is unavailable: ${status.reason}`;
  }
  const tell = (line: string): void => {
    if (toldFallback) return;
    toldFallback = true;
    (options.log ?? ((l: string) => console.warn(l)))(line);
  };
  const wasm = wasmEngineStatus();
  if (wasm.ok && status.ok) {
    // The addon rejected the model: so would its WebAssembly build (the same plan).
  } else if (wasm.ok) {
    const learner = new WasmLearner(common);
    tell(`reptile: using the WebAssembly engine (one thread) because ${why}`);
    return learner;
  } else if (!status.ok) {
    why += `, and the WebAssembly engine is unavailable: ${wasm.reason}`;
  }
  tell(`reptile: using the tfjs learner (slower) because ${why}`);
  return new TfjsLearner(common);
}

/** Which engine a learner runs its inner loops on, as reported in results: `native`, `wasm` or `tfjs`. */
export function learnerKind(learner: Learner): 'native' | 'wasm' | 'tfjs' {
  return learner instanceof NativeLearner ? 'native' : learner instanceof WasmLearner ? 'wasm' : 'tfjs';
}
