import { Rng } from '../core/rng.js';
import type { Predictor } from '../learners/learner.js';
import { selectExamples, type Examples, type Task } from '../tasks/task.js';

/**
 * The generators of test task `index` under `seed`: one samples the task, one draws its
 * minibatches. Anything that wants to look at the very tasks `evaluate` scores uses these.
 */
export function evalTaskStreams(seed: number, index: number): { task: Rng; batches: Rng } {
  return { task: Rng.derive(seed, index, 0), batches: Rng.derive(seed, index, 1) };
}

/**
 * The score of the learner's current parameters on a task's query set: accuracy for
 * classification (transductive or not, see {@link classifyQueries}), mean squared error for
 * regression. Every executor scores evaluation tasks with this one function.
 */
export function scoreTask(learner: Predictor, task: Task, transductive: boolean): number {
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
export function classifyQueries(learner: Predictor, task: Task, transductive: boolean): number[] {
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
