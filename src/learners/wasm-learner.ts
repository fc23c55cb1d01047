import type * as tf from '@tensorflow/tfjs';
import { checkOptionsObject } from '../_utils/checks.js';
import { InvalidOptionsError } from '../_utils/errors.js';
import type { NativePlan } from '../engine/native-plan.js';
import { WasmEngine } from '../engine/wasm-engine.js';
import { wasmEngineStatus } from '../engine/wasm-module.js';
import { EngineLearner } from './engine-learner.js';
import type { InnerStatePolicy } from './learner.js';

/** Options of `WasmLearner`. */
export interface WasmLearnerOptions {
  /** A tfjs Sequential model built from the layers the native engine supports; its weights are copied in. */
  model: tf.LayersModel;
  /** Inner-optimizer state between tasks; default `carry` (supervised-reptile). */
  innerState?: InnerStatePolicy;
  /** Batch normalisation uses the current batch's statistics also when predicting (the paper's protocol). Default true. */
  batchStatsAtTest?: boolean;
}

/**
 * The `Learner` on the native engine compiled to WebAssembly (SIMD128 kernels, one thread): the
 * same C++ code, plan (`compileModel`) and results as `NativeLearner`, for every place the addon
 * does not reach — a web page, a Web Worker, Node on a platform without a prebuilt binary or a
 * compiler. In Node the module is read from the package on first use; in a page, await
 * `loadWasmEngine()` before constructing one.
 */
export class WasmLearner extends EngineLearner {
  constructor(options: WasmLearnerOptions) {
    checkOptionsObject(options, 'WasmLearner', '{ model }');
    const status = wasmEngineStatus();
    if (!status.ok) throw new InvalidOptionsError(`the WebAssembly engine is unavailable: ${status.reason}; set \`learner\` to 'tfjs' or 'auto'`, { option: 'learner' });
    const { exports } = status;
    super(options, { className: 'WasmLearner', engineName: 'WebAssembly engine', choice: 'wasm', create: (plan: NativePlan) => new WasmEngine(exports, plan) }, 'auto', 1);
  }
}
