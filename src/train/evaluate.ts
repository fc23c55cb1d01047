import { Rng } from '../core/rng.js';
import type { InnerOptions, Learner } from '../learners/learner.js';
import { selectExamples, type Examples, type Task, type TaskSource } from '../tasks/task.js';

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
  const { learner, source, inner, samples } = options;
  if (!Number.isInteger(samples) || samples < 1) throw new Error(`samples must be a positive integer, got ${samples}`);
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
      perTask.push(score(learner, task, options.transductive ?? false));
      learner.setParams(phi);
      options.onTask?.(i + 1, samples);
    }
  } finally {
    learner.setParams(phi);
    learner.setOptimizerState(savedState);
  }
  const mean = perTask.reduce((a, b) => a + b, 0) / perTask.length;
  const variance = perTask.length > 1 ? perTask.reduce((a, b) => a + (b - mean) ** 2, 0) / (perTask.length - 1) : 0;
  return {
    metric: source.kind === 'classification' ? 'accuracy' : 'mse',
    mean,
    ci95: (1.96 * Math.sqrt(variance)) / Math.sqrt(perTask.length),
    samples,
    perTask,
  };
}

/**
 * The generators of test task `index` under `seed`: one samples the task, one draws its
 * minibatches. Anything that wants to look at the very tasks `evaluate` scores uses these.
 */
export function evalTaskStreams(seed: number, index: number): { task: Rng; batches: Rng } {
  return { task: Rng.derive(seed, index, 0), batches: Rng.derive(seed, index, 1) };
}

function score(learner: Learner, task: Task, transductive: boolean): number {
  if (task.kind === 'regression') return mse(learner.predict(task.query), task.query.targets);
  const predicted = classifyQueries(learner, task, transductive);
  let correct = 0;
  for (let q = 0; q < task.query.count; q++) if (predicted[q] === task.query.targets[q]) correct++;
  return correct / task.query.count;
}

/**
 * The class the learner's current parameters give each query of a classification task. Not
 * transductive (supervised-reptile's default): each query is classified in one batch with the
 * whole support set, so batch normalisation never sees the other queries. Transductive: all
 * queries in one batch.
 */
export function classifyQueries(learner: Learner, task: Task, transductive: boolean): number[] {
  const classes = task.numClasses ?? 0;
  const out: number[] = [];
  if (transductive) {
    const logits = learner.predict(task.query);
    for (let q = 0; q < task.query.count; q++) out.push(argmax(logits, q * classes, classes));
  } else {
    for (let q = 0; q < task.query.count; q++) {
      const batch = concatExamples(task.support, selectExamples(task.query, [q]));
      const logits = learner.predict(batch);
      out.push(argmax(logits, (batch.count - 1) * classes, classes));
    }
  }
  return out;
}

/** Mean squared error between two equally long vectors. */
export function mse(predicted: Float32Array, target: Float32Array): number {
  let s = 0;
  for (let i = 0; i < target.length; i++) s += (predicted[i]! - target[i]!) ** 2;
  return s / target.length;
}

function argmax(values: Float32Array, offset: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (values[offset + i]! > values[offset + best]!) best = i;
  return best;
}

/** `a` followed by `b`, as one set. */
export function concatExamples(a: Examples, b: Examples): Examples {
  const inputs = new Float32Array(a.inputs.length + b.inputs.length);
  inputs.set(a.inputs);
  inputs.set(b.inputs, a.inputs.length);
  const targets = new Float32Array(a.targets.length + b.targets.length);
  targets.set(a.targets);
  targets.set(b.targets, a.targets.length);
  return { count: a.count + b.count, inputs, inputShape: a.inputShape, targets, targetShape: a.targetShape };
}
