import type * as tf from '@tensorflow/tfjs';
import { checkOptionsObject } from '../_utils/checks.js';
import { InvalidOptionsError } from '../_utils/errors.js';
import { loadNative, requestedIsa, requestedThreads, type NativeIsa, type NativePlan } from '../engine/native.js';
import { EngineLearner } from './engine-learner.js';
import type { InnerStatePolicy } from './learner.js';

/** Options of `NativeLearner`. */
export interface NativeLearnerOptions {
  /** A tfjs Sequential model built from the supported layers; its weights are copied in. */
  model: tf.LayersModel;
  /** Inner-optimizer state between tasks; default `carry` (supervised-reptile). */
  innerState?: InnerStatePolicy;
  /** Batch normalisation uses the current batch's statistics also when predicting (the paper's protocol). Default true. */
  batchStatsAtTest?: boolean;
  /** Kernel instruction set; default `auto` (or `REPTILE_NATIVE_ISA`). */
  isa?: NativeIsa;
  /**
   * 1 or 2 threads per inner loop: each batch is split into two shards, run on a helper thread and
   * this one or both here, with bit-identical results. Default: `REPTILE_NATIVE_THREADS`, else 2
   * where the machine has two or more CPUs.
   */
  threads?: 1 | 2;
}

/**
 * The `Learner` on the C++ engine (native/) through the Node addon: a tfjs Sequential model is
 * compiled into a plan of native layers, and `adapt` runs a task's whole inner loop (paper §3: all
 * minibatches, forward, backward and the fused SGD/Adam step) in one call on a worker thread, with
 * buffers kept between calls. Minibatches are drawn with `core/miniBatches` from the same rng as
 * `TfjsLearner`, and the optimizers follow it operation for operation, so both learners give the
 * same weights within float32 rounding (docs/architecture.md, invariant 3). `writeToModel` puts the
 * weights back into the tfjs model for export.
 */
export class NativeLearner extends EngineLearner {
  constructor(options: NativeLearnerOptions) {
    checkOptionsObject(options, 'NativeLearner', '{ model }');
    if (options.threads !== undefined && options.threads !== 1 && options.threads !== 2) throw new InvalidOptionsError(`\`threads\` must be 1 or 2, got ${String(options.threads)}`, { option: 'threads' });
    const status = loadNative();
    if (!status.ok) throw new InvalidOptionsError(`the native engine is unavailable: ${status.reason}; set \`learner\` to 'tfjs' or 'auto'`, { option: 'learner' });
    const { addon } = status;
    const source = { className: 'NativeLearner', engineName: 'native engine', choice: 'native', create: (plan: NativePlan) => new addon.Engine(plan) };
    super(options, source, options.isa ?? requestedIsa(), options.threads ?? requestedThreads());
  }
}
