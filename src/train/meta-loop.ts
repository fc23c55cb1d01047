import { fomamlUpdate, reptileUpdate } from '../core/meta-update.js';
import { checkParams, type Params } from '../core/params.js';
import { linearSchedule } from '../core/schedule.js';
import { checkHasMethods, checkInteger, checkOptionsObject } from '../_utils/checks.js';
import { CheckpointError, DivergenceError, InvalidOptionsError } from '../_utils/errors.js';
import { checkPolicyFor, type Executor } from '../exec/executor.js';
import { InlineExecutor } from '../exec/inline.js';
import type { AdaptResult, Learner, OptimizerState } from '../learners/learner.js';
import type { TaskSource } from '../tasks/task.js';
import { asyncResumePoint } from './async-steps.js';
import { innerOptionsOf, resolveMetaConfig, type MetaConfig } from './config.js';

/** Everything needed to resume a meta-training run bit for bit (docs/architecture.md, invariant 4). */
export interface Checkpoint {
  /** Meta-iterations completed. */
  readonly iteration: number;
  readonly params: Params;
  readonly optimizer: OptimizerState | undefined;
  /** The run's full configuration, task source and model description (JSON). */
  readonly meta: Record<string, unknown>;
}

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
  /**
   * The asynchronous mode: the task numbers applied in this span (task n is task n % metaBatch of
   * meta-iteration ⌊n / metaBatch⌋), how many updates old each one's φ was, and how many answers
   * were dropped as stale.
   */
  async?: { tasks: number[]; staleness: number[]; dropped: number };
}

/** Training hooks in the style of tfjs `CustomCallbackArgs`; each may return a promise. */
export interface MetaCallbacks {
  /** Before the first meta-iteration (of this call, when resuming). */
  onTrainBegin?(info: { startIteration: number; config: MetaConfig }): void | Promise<void>;
  /** Before meta-iteration `iteration` samples its tasks. */
  onMetaIterBegin?(iteration: number): void | Promise<void>;
  /** After meta-iteration `iteration`'s update, with its logs. */
  onMetaIterEnd?(iteration: number, logs: MetaIterLogs): void | Promise<void>;
  /** After the last meta-iteration, with the run's result. */
  onTrainEnd?(result: MetaTrainResult): void | Promise<void>;
}

/**
 * Where a run keeps its checkpoints and log, so that the training loop itself does no I/O: the
 * Node entry's `metaTrain` hands it one over a directory; a page may give one over IndexedDB.
 */
export interface MetaTrainStore {
  /** Names the checkpoint in error messages, e.g. `checkpoint in 'runs/sine'`. */
  readonly label: string;
  /** Where the checkpoint lives, reported in the result when the last state was already saved. */
  readonly location?: string;
  /** The checkpoint to resume from, or undefined to start afresh; throws when the store is unusable. */
  load(): Checkpoint | undefined | Promise<Checkpoint | undefined>;
  /** Saves a checkpoint (atomically, if it can) and returns where it went; without it nothing is saved. */
  save?(checkpoint: Checkpoint): string | Promise<string>;
  /** Records one meta-iteration's logs, before checkpoints and callbacks see it. */
  appendLog?(logs: MetaIterLogs): void | Promise<void>;
}

/** Options of the universal `metaTrain`: no file I/O, persistence only through `store`. */
export interface MetaLoopOptions {
  learner: Learner;
  source: TaskSource;
  config: Partial<MetaConfig>;
  executor?: Executor;
  callbacks?: MetaCallbacks | MetaCallbacks[];
  /** Save to and resume from this store; without one nothing is saved. */
  store?: MetaTrainStore;
  /** Save a checkpoint every this many meta-iterations (and always at the end or when stopped). Default 100. */
  checkpointEvery?: number;
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
 * linearly from `metaStep` to `metaStepFinal`. This is the loop without file I/O, safe in a
 * browser; with a `store` the run is resumable bit for bit.
 */
export async function runMetaLoop(options: MetaLoopOptions): Promise<MetaTrainResult> {
  checkLoopOptions(options);
  const { learner, source, store } = options;
  let config = resolveMetaConfig(options.config);
  const executor: Executor = options.executor ?? new InlineExecutor();
  const callbacks = options.callbacks === undefined ? [] : Array.isArray(options.callbacks) ? options.callbacks : [options.callbacks];
  const every = options.checkpointEvery ?? 100;
  checkInteger('checkpointEvery', every, 1);
  // Before the store is opened: a usage mistake leaves no checkpoint folder or log behind.
  checkPolicyFor(executor, config.innerState);

  let start = 0;
  const ckpt = await store?.load();
  if (store !== undefined && ckpt !== undefined) {
    const problem = checkParams(ckpt.params, learner.layout);
    if (problem !== undefined) {
      throw new CheckpointError(
        `${store.label} was written for a different model (${problem}): use the same architecture, or a new \`checkpointDir\``,
      );
    }
    config = reconcileConfig(ckpt.meta['config'] as MetaConfig | undefined, config, store.label);
    learner.setParams(ckpt.params);
    learner.setOptimizerState(ckpt.optimizer);
    start = ckpt.iteration;
  }

  // The asynchronous mode: where its tasks stand (saved in the checkpoint), handed to the first span.
  let progress = asyncResumePoint(executor, ckpt?.meta['async'], start, config.metaBatch, store?.label ?? 'the checkpoint');
  let resume = progress;
  const schedule = linearSchedule(config.metaStep, config.metaStepFinal, config.metaIters);
  const inner = innerOptionsOf(config);
  for (const cb of callbacks) await cb.onTrainBegin?.({ startIteration: start, config });

  let iteration = start;
  // A resumed run that stops before its next meta-iteration leaves the checkpoint it read as it was.
  let lastSaved = ckpt !== undefined ? start : -1;
  const save = async (): Promise<string | undefined> => {
    if (store?.save === undefined || lastSaved === iteration) return undefined;
    lastSaved = iteration;
    return store.save({
      iteration,
      params: learner.getParams(),
      // Under `reset` no state survives a task, so none is saved (whichever executor ran the tasks).
      optimizer: config.innerState === 'reset' ? undefined : learner.getOptimizerState(),
      meta: { config, source: source.describe(), ...options.checkpointMeta, ...(progress !== undefined ? { async: progress } : {}) },
    });
  };

  // The last meta-batch's results (see MetaBatchRequest.into).
  let spent: readonly AdaptResult[] | undefined;
  while (iteration < config.metaIters && !options.signal?.aborted) {
    const began = performance.now();
    for (const cb of callbacks) await cb.onMetaIterBegin?.(iteration);
    const epsilon = schedule(iteration);
    let problem: string | undefined;
    let losses: readonly number[];
    let spanLogs: MetaIterLogs['async'];
    if (progress !== undefined) {
      // Each result moves φ by ε/metaBatch as it arrives, from whatever φ its task was sent with.
      const span = await executor.runAsyncSpan!({
        learner, source, seed: config.seed, iteration, metaBatch: config.metaBatch, totalTasks: config.metaIters * config.metaBatch, inner, foml: config.foml,
        apply: (r) => metaUpdateOf(learner, config.foml, epsilon / config.metaBatch)([r]),
        ...(resume !== undefined ? { resume } : {}),
      });
      resume = undefined;
      progress = span.progress;
      problem = span.problem;
      losses = span.losses;
      spanLogs = { tasks: [...span.tasks], staleness: [...span.staleness], dropped: span.dropped };
    } else {
      const update = metaUpdateOf(learner, config.foml, epsilon);
      const results = await executor.runMetaBatch({ learner, source, seed: config.seed, iteration, metaBatch: config.metaBatch, inner, foml: config.foml, ...(spent ? { into: spent } : {}) });
      problem = update(results);
      losses = results.map((r) => r.loss);
      // Read by nothing after the update: the next meta-batch's results are written into them.
      spent = results;
    }
    if (problem !== undefined) {
      throw new DivergenceError(
        `training diverged at meta-iteration ${iteration} (${problem}): lower \`learningRate\` or \`metaStep\`; the last good checkpoint is untouched`,
      );
    }
    const logs: MetaIterLogs = {
      iteration,
      epsilon,
      loss: losses.reduce((s, l) => s + l, 0) / losses.length,
      seconds: (performance.now() - began) / 1000,
      ...(spanLogs !== undefined ? { async: spanLogs } : {}),
    };
    iteration += 1;
    await store?.appendLog?.(logs);
    if (iteration % every === 0) await save();
    for (const cb of callbacks) await cb.onMetaIterEnd?.(iteration - 1, logs);
  }
  const checkpoint = (await save()) ?? store?.location;
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

// What a JavaScript caller hands the loop, checked before anything runs or is written: each
// missing or wrong option is one line naming it, not a TypeError from deep inside.
function checkLoopOptions(options: MetaLoopOptions): void {
  checkOptionsObject(options, 'metaTrain', '{ learner, source, config }');
  checkHasMethods('learner', options.learner, ['getParams', 'setParams', 'adapt', 'getOptimizerState', 'setOptimizerState'], 'a Learner, e.g. createLearner({ model })');
  checkHasMethods('source', options.source, ['sample', 'describe'], 'a task source, e.g. new SineTaskSource() or new FewShotTaskSource({ dataset, classes, shots })');
  if (options.executor !== undefined) checkHasMethods('executor', options.executor, ['runMetaBatch'], 'an Executor, e.g. from createExecutor()');
  if (options.executor?.sync === 'async') checkHasMethods('executor', options.executor, ['runAsyncSpan'], "an asynchronous Executor, e.g. from createExecutor({ executor: 'threads', sync: 'async' })");
  if (options.store !== undefined) checkHasMethods('store', options.store, ['load'], 'a MetaTrainStore with load()');
  const callbacks = options.callbacks === undefined ? [] : Array.isArray(options.callbacks) ? options.callbacks : [options.callbacks];
  for (const cb of callbacks) {
    if (cb === null || typeof cb !== 'object') throw new InvalidOptionsError('`callbacks` must be an object of hooks (onMetaIterEnd, ...) or a list of them', { option: 'callbacks' });
  }
  if (options.signal !== undefined && (options.signal === null || typeof options.signal.aborted !== 'boolean')) {
    throw new InvalidOptionsError('`signal` must be an AbortSignal, e.g. new AbortController().signal', { option: 'signal' });
  }
}

// The meta-update of one meta-iteration, reading φ before its tasks run; applied to the results, it
// sets the new φ and returns undefined, or returns what is wrong with it and leaves φ as it was. A
// learner that applies the Reptile update to its own φ (the native engine) gives the same bits as
// core's reptileUpdate and saves two copies of φ.
function metaUpdateOf(learner: Learner, foml: boolean, epsilon: number): (results: readonly AdaptResult[]) => string | undefined {
  const inPlace = foml ? undefined : learner.applyReptileUpdate;
  if (inPlace !== undefined) return (results) => inPlace.call(learner, results.map((r) => r.params), epsilon);
  const phi = learner.getParams();
  return (results) => {
    const next = foml
      ? fomamlUpdate(phi, results.map((r) => r.lastStep), epsilon)
      : reptileUpdate(phi, results.map((r) => r.params), epsilon);
    const problem = checkParams(next, learner.layout);
    if (problem === undefined) learner.setParams(next);
    return problem;
  };
}

// A resumed run must continue the same schedule and sampling, so every setting but the total
// length has to match what the checkpoint was written with.
function reconcileConfig(saved: MetaConfig | undefined, asked: MetaConfig, label: string): MetaConfig {
  if (!saved) return asked;
  for (const key of Object.keys(saved) as (keyof MetaConfig)[]) {
    if (saved[key] !== asked[key]) {
      throw new InvalidOptionsError(
        `${label} was trained with \`${key}\` = ${String(saved[key])}, not ${String(asked[key])}: resume with the same settings, or use a new \`checkpointDir\``,
        { option: key },
      );
    }
  }
  return saved;
}
