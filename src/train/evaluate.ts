import type { Executor } from '../exec/executor.js';
import { evalTaskStreams, scoreTask, taskScoring } from '../exec/score.js';
import { validateInnerOptions, type InnerOptions, type Learner } from '../learners/learner.js';
import type { TaskSource } from '../tasks/task.js';
import { checkHasMethods, checkInteger, checkOptionsObject } from '../_utils/checks.js';
import { InvalidOptionsError } from '../_utils/errors.js';

/** Test tasks handed to a learner's `scoreTasks` at a time: enough to keep every core busy, few enough for progress lines. */
const SCORE_CHUNK = 32;

export { classifyQueries, concatExamples, evalTaskStreams, mse, queryBatches, scoreFromOutputs, scoreTask, taskScoring } from '../exec/score.js';

/** Options of `evaluate`. */
export interface EvaluateOptions {
  learner: Learner;
  source: TaskSource;
  /** Inner loop used to adapt to each test task (`evalIters` steps of `evalBatch`). */
  inner: InnerOptions;
  /** Number of test tasks. */
  samples: number;
  seed: number;
  /** Classify all queries in one batch (batch norm sees them together). Default false. */
  transductive?: boolean;
  /** Called after each task with the running count. */
  onTask?: (done: number, total: number) => void;
  /**
   * Runs the test tasks; default in this thread. A parallel executor (threads, redis) spreads them
   * over its workers with the same scores, task for task.
   */
  executor?: Executor;
}

/** Mean score over test tasks with its 95% confidence half-width. */
export interface EvaluateResult {
  /** `accuracy` for classification, `mse` for regression. */
  metric: 'accuracy' | 'mse';
  mean: number;
  ci95: number;
  samples: number;
  perTask: number[];
}

/**
 * Few-shot evaluation as in the paper (§5): for each sampled test task, adapt from φ on the support
 * set, score the adapted model on the query set, then restore φ and the inner optimizer's state,
 * so every task starts from the same point. Reports the mean over tasks with a normal-approximation
 * 95% interval (1.96·s/√n).
 *
 * Classification is non-transductive by default, as supervised-reptile evaluates: each query is
 * classified in one batch together with the whole support set, so batch normalisation never sees
 * the other queries. `transductive` classifies all queries in one batch.
 */
export async function evaluate(options: EvaluateOptions): Promise<EvaluateResult> {
  checkEvaluateOptions(options);
  checkHasMethods('source', options.source, ['sample', 'describe'], 'a task source, e.g. new SineTaskSource() or new FewShotTaskSource({ dataset, classes, shots })');
  checkInteger('samples', options.samples, 1);
  checkInteger('seed', options.seed, 0, 0xffffffff);
  if (options.onTask !== undefined && typeof options.onTask !== 'function') throw new InvalidOptionsError('`onTask` must be a function (done, total) => void', { option: 'onTask' });
  const { learner, source, inner, samples } = options;
  if (options.executor?.evaluateTasks !== undefined) {
    return summarize(source, await options.executor.evaluateTasks({ learner, source, inner, seed: options.seed, samples, transductive: options.transductive ?? false, ...(options.onTask ? { onTask: options.onTask } : {}) }));
  }
  const transductive = options.transductive ?? false;
  if (learner.scoreTasks !== undefined) {
    // A learner that runs independent tasks side by side gets them in chunks (for progress reports).
    const perTask: number[] = [];
    const scoring = taskScoring(transductive);
    for (let start = 0; start < samples; start += SCORE_CHUNK) {
      const items = [];
      for (let i = start; i < Math.min(samples, start + SCORE_CHUNK); i++) {
        const streams = evalTaskStreams(options.seed, i);
        items.push({ task: source.sample(streams.task), rng: streams.batches });
      }
      for (const s of await learner.scoreTasks(items, inner, scoring)) {
        perTask.push(s);
        options.onTask?.(perTask.length, samples);
      }
    }
    return summarize(source, perTask);
  }
  const phi = learner.getParams();
  const savedState = learner.getOptimizerState();
  const perTask: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const streams = evalTaskStreams(options.seed, i);
      const task = source.sample(streams.task);
      const adapted = await learner.adapt(task, inner, streams.batches);
      learner.setOptimizerState(savedState);
      learner.setParams(adapted.params);
      perTask.push(scoreTask(learner, task, transductive));
      learner.setParams(phi);
      options.onTask?.(i + 1, samples);
    }
  } finally {
    learner.setParams(phi);
    learner.setOptimizerState(savedState);
  }
  return summarize(source, perTask);
}

/** One of the task sets of `evaluateMany`: its own source, seed and task count. */
export interface EvaluationSet {
  source: TaskSource;
  seed: number;
  samples: number;
}

/**
 * Several `evaluate` calls at once, one result per set, each equal to what `evaluate` gives for
 * that set alone (the same tasks, the same per-task scores). A learner that runs independent tasks
 * side by side (`scoreTasks`) gets all the sets' tasks in one call, so a handful of tasks (the
 * sampled training and test task of a progress line) keeps every core busy instead of running
 * one after the other on one engine.
 */
export async function evaluateMany(options: Omit<EvaluateOptions, 'source' | 'seed' | 'samples' | 'onTask'> & { sets: readonly EvaluationSet[] }): Promise<EvaluateResult[]> {
  checkEvaluateOptions(options);
  if (!Array.isArray(options.sets)) throw new InvalidOptionsError('`sets` must be a list of { source, seed, samples }', { option: 'sets' });
  for (const set of options.sets as readonly EvaluationSet[]) {
    checkOptionsObject(set, 'each of `sets`', '{ source, seed, samples }');
    checkHasMethods('source', set.source, ['sample', 'describe'], 'a task source');
    checkInteger('samples', set.samples, 1);
    checkInteger('seed', set.seed, 0, 0xffffffff);
  }
  const { learner, inner, sets } = options;
  const total = sets.reduce((a, s) => a + s.samples, 0);
  if (learner.scoreTasks === undefined || options.executor?.evaluateTasks !== undefined || total > SCORE_CHUNK) {
    const results: EvaluateResult[] = [];
    for (const set of sets) results.push(await evaluate({ ...options, ...set }));
    return results;
  }
  const items = sets.flatMap((set) =>
    Array.from({ length: set.samples }, (_, i) => {
      const streams = evalTaskStreams(set.seed, i);
      return { task: set.source.sample(streams.task), rng: streams.batches };
    }),
  );
  const scores = await learner.scoreTasks(items, inner, taskScoring(options.transductive ?? false));
  let at = 0;
  return sets.map((set) => summarize(set.source, scores.slice(at, (at += set.samples))));
}

// What evaluate and evaluateMany share, checked before any task runs.
function checkEvaluateOptions(options: Omit<EvaluateOptions, 'source' | 'seed' | 'samples' | 'onTask'>): void {
  checkOptionsObject(options, 'evaluate', '{ learner, source, inner, samples, seed }');
  checkHasMethods('learner', options.learner, ['getParams', 'setParams', 'adapt', 'predict', 'getOptimizerState', 'setOptimizerState'], 'a Learner, e.g. createLearner({ model })');
  validateInnerOptions(options.inner);
  if (options.transductive !== undefined && typeof options.transductive !== 'boolean') throw new InvalidOptionsError('`transductive` must be true or false', { option: 'transductive' });
  if (options.executor !== undefined) checkHasMethods('executor', options.executor, ['runMetaBatch'], 'an Executor, e.g. from createExecutor()');
}

function summarize(source: TaskSource, perTask: number[]): EvaluateResult {
  const mean = perTask.reduce((a, b) => a + b, 0) / perTask.length;
  const variance = perTask.length > 1 ? perTask.reduce((a, b) => a + (b - mean) ** 2, 0) / (perTask.length - 1) : 0;
  return {
    metric: source.kind === 'classification' ? 'accuracy' : 'mse',
    mean,
    ci95: (1.96 * Math.sqrt(variance)) / Math.sqrt(perTask.length),
    samples: perTask.length,
    perTask,
  };
}

