import * as fs from 'node:fs';
import { fomamlUpdate, reptileUpdate } from '../core/meta-update.js';
import { checkParams, type Params } from '../core/params.js';
import { linearSchedule } from '../core/schedule.js';
import { ReptileError } from '../_utils/errors.js';
import type { Executor } from '../exec/executor.js';
import { InlineExecutor } from '../exec/inline.js';
import type { Learner } from '../learners/learner.js';
import type { TaskSource } from '../tasks/task.js';
import { ensureWritableDir, hasCheckpoint, readCheckpoint, writeCheckpoint, checkpointPath } from './checkpoint.js';
import { innerOptionsOf, resolveMetaConfig, type MetaConfig } from './config.js';

/** What `onMetaIterEnd` receives after each meta-iteration. */
export interface MetaIterLogs {
  /** 0-based index of the meta-iteration just finished. */
  iteration: number;
  /** The meta step size ε used. */
  epsilon: number;
  /** Mean inner-loop training loss over the meta-batch. */
  loss: number;
  /** Wall time of this meta-iteration, in seconds. */
  seconds: number;
}

/** Training hooks in the style of tfjs `CustomCallbackArgs`; each may return a promise. */
export interface MetaCallbacks {
  onTrainBegin?(info: { startIteration: number; config: MetaConfig }): void | Promise<void>;
  onMetaIterBegin?(iteration: number): void | Promise<void>;
  onMetaIterEnd?(iteration: number, logs: MetaIterLogs): void | Promise<void>;
  onTrainEnd?(result: MetaTrainResult): void | Promise<void>;
}

/** Options of `metaTrain`. */
export interface MetaTrainOptions {
  learner: Learner;
  source: TaskSource;
  config: Partial<MetaConfig>;
  executor?: Executor;
  callbacks?: MetaCallbacks | MetaCallbacks[];
  /** Directory for the checkpoint; a checkpoint already there is resumed. */
  checkpointDir?: string;
  /** Write a checkpoint every this many meta-iterations (and always at the end or when stopped). Default 100. */
  checkpointEvery?: number;
  /** Append one JSON line per meta-iteration to this file. */
  logFile?: string;
  /** Stops training after the current meta-iteration; a checkpoint is written first. */
  signal?: AbortSignal;
  /** Extra JSON stored in the checkpoint (e.g. the model's architecture). */
  checkpointMeta?: Record<string, unknown>;
}

/** What `metaTrain` returns. */
export interface MetaTrainResult {
  params: Params;
  /** Meta-iterations completed in total (including those before a resume). */
  iterations: number;
  startIteration: number;
  stopped: boolean;
  config: MetaConfig;
  checkpoint?: string;
}

/**
 * Meta-trains the learner's parameters φ with Reptile (paper, Algorithm 2) or first-order MAML:
 * each meta-iteration samples `metaBatch` tasks (task t of iteration i is a pure function of
 * (seed, i, t)), adapts to each from φ with the inner optimizer, and moves φ by ε toward the mean
 * of the adapted weights (or by ε along the mean last-step difference under `foml`). ε is annealed
 * linearly from `metaStep` to `metaStepFinal`. With `checkpointDir` the run is resumable bit for
 * bit: the checkpoint holds φ, the inner optimizer's state, the iteration and the configuration.
 */
export async function metaTrain(options: MetaTrainOptions): Promise<MetaTrainResult> {
  const { learner, source } = options;
  let config = resolveMetaConfig(options.config);
  const executor = options.executor ?? new InlineExecutor();
  const callbacks = options.callbacks === undefined ? [] : Array.isArray(options.callbacks) ? options.callbacks : [options.callbacks];
  const every = options.checkpointEvery ?? 100;
  if (!Number.isInteger(every) || every < 1) throw new ReptileError(`checkpointEvery must be a positive integer, got ${every}`);

  let start = 0;
  let resumed = false;
  if (options.checkpointDir !== undefined) {
    if (hasCheckpoint(options.checkpointDir)) {
      const ckpt = readCheckpoint(options.checkpointDir);
      const problem = checkParams(ckpt.params, learner.layout);
      if (problem !== undefined) {
        throw new ReptileError(
          `checkpoint in '${options.checkpointDir}' was written for a different model (${problem}): use the same architecture or a new --checkpoint directory`,
        );
      }
      config = reconcileConfig(ckpt.meta['config'] as MetaConfig | undefined, config, options.checkpointDir);
      learner.setParams(ckpt.params);
      learner.setOptimizerState(ckpt.optimizer);
      start = ckpt.iteration;
      resumed = true;
    } else {
      ensureWritableDir(options.checkpointDir);
    }
  }
  if (options.logFile !== undefined) prepareLogFile(options.logFile);

  const schedule = linearSchedule(config.metaStep, config.metaStepFinal, config.metaIters);
  const inner = innerOptionsOf(config);
  for (const cb of callbacks) await cb.onTrainBegin?.({ startIteration: start, config });

  let iteration = start;
  // A resumed run that stops before its next meta-iteration leaves the checkpoint it read as it was.
  let lastSaved = resumed ? start : -1;
  const save = (): string | undefined => {
    if (options.checkpointDir === undefined || lastSaved === iteration) return undefined;
    lastSaved = iteration;
    return writeCheckpoint(options.checkpointDir, {
      iteration,
      params: learner.getParams(),
      optimizer: learner.getOptimizerState(),
      meta: { config, source: source.describe(), ...options.checkpointMeta },
    });
  };

  while (iteration < config.metaIters && !options.signal?.aborted) {
    const began = performance.now();
    for (const cb of callbacks) await cb.onMetaIterBegin?.(iteration);
    const epsilon = schedule(iteration);
    const phi = learner.getParams();
    const results = await executor.runMetaBatch({ learner, source, seed: config.seed, iteration, metaBatch: config.metaBatch, inner });
    const next = config.foml
      ? fomamlUpdate(phi, results.map((r) => r.lastStep), epsilon)
      : reptileUpdate(phi, results.map((r) => r.params), epsilon);
    const problem = checkParams(next, learner.layout);
    if (problem !== undefined) {
      throw new ReptileError(
        `training diverged at meta-iteration ${iteration} (${problem}): lower --learning-rate or --meta-step; the last good checkpoint is untouched`,
      );
    }
    learner.setParams(next);
    const logs: MetaIterLogs = {
      iteration,
      epsilon,
      loss: results.reduce((s, r) => s + r.loss, 0) / results.length,
      seconds: (performance.now() - began) / 1000,
    };
    iteration += 1;
    if (options.logFile !== undefined) fs.appendFileSync(options.logFile, `${JSON.stringify(logs)}\n`);
    if (iteration % every === 0) save();
    for (const cb of callbacks) await cb.onMetaIterEnd?.(iteration - 1, logs);
  }
  const checkpoint = save() ?? (options.checkpointDir !== undefined ? checkpointPath(options.checkpointDir) : undefined);
  const result: MetaTrainResult = {
    params: learner.getParams(),
    iterations: iteration,
    startIteration: start,
    stopped: iteration < config.metaIters,
    config,
    ...(checkpoint !== undefined ? { checkpoint } : {}),
  };
  for (const cb of callbacks) await cb.onTrainEnd?.(result);
  return result;
}

// A resumed run must continue the same schedule and sampling, so every setting but the total
// length has to match what the checkpoint was written with.
function reconcileConfig(saved: MetaConfig | undefined, asked: MetaConfig, dir: string): MetaConfig {
  if (!saved) return asked;
  for (const key of Object.keys(saved) as (keyof MetaConfig)[]) {
    if (saved[key] !== asked[key]) {
      throw new ReptileError(
        `checkpoint in '${dir}' was trained with ${key} = ${String(saved[key])}, not ${String(asked[key])}: resume with the same settings, or use a new --checkpoint directory`,
      );
    }
  }
  return saved;
}

function prepareLogFile(file: string): void {
  try {
    fs.appendFileSync(file, '');
  } catch (e) {
    throw new ReptileError(`cannot write the log file '${file}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable --log path`);
  }
}
