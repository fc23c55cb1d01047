import type { Executor } from '../exec/executor.js';
import { innerStateFor } from '../exec/create-executor.js';
import { createLearner, type LearnerChoice } from '../learners/create-learner.js';
import type { InnerStatePolicy } from '../learners/learner.js';
import { createSineModel } from '../learners/models.js';
import { SineTaskSource } from '../tasks/sine.js';
import { evaluate, type EvaluateResult } from '../train/evaluate.js';
import type { MetaConfig } from '../train/config.js';
import { metaTrain, type MetaCallbacks, type MetaTrainResult } from '../train/meta-train.js';
import { PRESETS, SINE_DEFAULTS } from './presets.js';

/** Options of {@link trainSine}; anything left out takes the `sine` preset's value. */
export interface SineTrainOptions {
  /** Overrides of the `sine` preset's meta-training settings. */
  config?: Partial<MetaConfig>;
  seed: number;
  /** Support points per task. */
  shots?: number;
  hidden?: readonly number[];
  /** Held-out tasks evaluated after training. */
  evalSamples?: number;
  /** Adaptation steps on each held-out task. */
  evalIters?: number;
  learner?: LearnerChoice;
  innerState?: InnerStatePolicy;
  /** Runs the meta-batches and the held-out evaluation (default inline); a parallel one defaults the inner state to `shared`. */
  executor?: Executor;
  checkpointDir?: string;
  checkpointEvery?: number;
  logFile?: string;
  signal?: AbortSignal;
  callbacks?: MetaCallbacks[];
  /** Where the learner choice says why it fell back to tfjs. */
  log?: (line: string) => void;
}

/** What {@link trainSine} returns: the training result and, unless it was stopped, the held-out evaluation. */
export interface SineTrainResult {
  result: MetaTrainResult;
  evaluation?: EvaluateResult;
  shots: number;
  evalIters: number;
  hidden: readonly number[];
}

/**
 * Sine-wave regression (paper §5.1) as `reptile train --task sine` runs it: meta-trains the
 * 1 → 64 → 64 → 1 tanh network with the `sine` preset (the authors' demo settings) and the given
 * overrides, then adapts to `evalSamples` held-out tasks for `evalIters` steps of the same inner
 * optimizer and learning rate as training, and reports their mean MSE on the task's grid.
 */
export async function trainSine(options: SineTrainOptions): Promise<SineTrainResult> {
  const shots = options.shots ?? SINE_DEFAULTS.shots;
  const hidden = options.hidden ?? SINE_DEFAULTS.hidden;
  const evalIters = options.evalIters ?? SINE_DEFAULTS.evalIters;
  const source = new SineTaskSource({ shots });
  const innerState = innerStateFor(options.executor, options.innerState);
  const model = createSineModel({ hidden, seed: options.seed });
  const learner = createLearner({ model, learner: options.learner ?? 'auto', ...(innerState !== undefined ? { innerState } : {}), ...(options.log ? { log: options.log } : {}) });
  try {
    const result = await metaTrain({
      learner,
      source,
      config: { ...PRESETS.sine.meta, ...options.config, seed: options.seed, ...(innerState !== undefined ? { innerState } : {}) },
      ...(options.executor ? { executor: options.executor } : {}),
      ...(options.callbacks ? { callbacks: options.callbacks } : {}),
      ...(options.checkpointDir !== undefined ? { checkpointDir: options.checkpointDir } : {}),
      ...(options.checkpointEvery !== undefined ? { checkpointEvery: options.checkpointEvery } : {}),
      ...(options.logFile !== undefined ? { logFile: options.logFile } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      checkpointMeta: { task: 'sine', modelTopology: model.toJSON(null, false), hidden },
    });
    if (result.stopped) return { result, shots, evalIters, hidden };
    const c = result.config;
    const evaluation = await evaluate({
      learner,
      source,
      inner: { optimizer: c.optimizer, learningRate: c.learningRate, innerIters: evalIters, innerBatch: shots, beta1: c.beta1, beta2: c.beta2 },
      samples: options.evalSamples ?? SINE_DEFAULTS.evalSamples,
      seed: options.seed + 1_000_000,
      ...(options.executor ? { executor: options.executor } : {}),
    });
    return { result, evaluation, shots, evalIters, hidden };
  } finally {
    learner.dispose();
    model.dispose();
  }
}
