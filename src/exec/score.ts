import { Rng } from '../core/rng.js';
import type { Predictor, TaskScoring } from '../learners/learner.js';
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
 * classification (transductive or not, see {@link queryBatches}), mean squared error for
 * regression. Every executor scores evaluation tasks with this one function (or, where the
 * learner predicts elsewhere, with {@link taskScoring}, which is the same computation).
 */
export function scoreTask(learner: Predictor, task: Task, transductive: boolean): number {
  return scoreFromOutputs(task, transductive, queryBatches(task, transductive).map((b) => learner.predict(b)));
}

/** `scoreTask` in two halves, for a learner that predicts the batches itself (`Learner.scoreTasks`). */
export function taskScoring(transductive: boolean): TaskScoring {
  return { batches: (task) => queryBatches(task, transductive), score: (task, outputs) => scoreFromOutputs(task, transductive, outputs) };
}

/**
 * The batches a task's queries are predicted in. Regression, and transductive classification:
 * all queries in one batch. Not transductive (supervised-reptile's default): each query in a batch
 * of its own with the whole support set, so batch normalisation never sees the other queries.
 */
export function queryBatches(task: Task, transductive: boolean): Examples[] {
  if (task.kind === 'regression' || transductive) return [task.query];
  return Array.from({ length: task.query.count }, (_, q) => concatExamples(task.support, selectExamples(task.query, [q])));
}

/** The score of a task from the outputs of its {@link queryBatches}. */
export function scoreFromOutputs(task: Task, transductive: boolean, outputs: readonly Float32Array[]): number {
  if (task.kind === 'regression') return mse(outputs[0]!, task.query.targets);
  const predicted = classesFromOutputs(task, transductive, outputs);
  let correct = 0;
  for (let q = 0; q < task.query.count; q++) if (predicted[q] === task.query.targets[q]) correct++;
  return correct / task.query.count;
}

/** The class the learner's current parameters give each query of a classification task (see {@link queryBatches}). */
export function classifyQueries(learner: Predictor, task: Task, transductive: boolean): number[] {
  return classesFromOutputs(task, transductive, queryBatches(task, transductive).map((b) => learner.predict(b)));
}

/**
 * The class of each query from the outputs: the argmax of its `numClasses` outputs or, for a
 * two-way task and a model with one (sigmoid) output, as the binary cross-entropy trains it
 * (see `taskLoss`), class 1 when that output is above 0.5.
 */
function classesFromOutputs(task: Task, transductive: boolean, outputs: readonly Float32Array[]): number[] {
  const classes = task.numClasses ?? 0;
  // Outputs per example: the batches hold all queries (transductive) or the support set and one query.
  const perExample = transductive ? outputs[0]!.length / task.query.count : (outputs[0]?.length ?? 0) / (task.support.count + 1);
  const width = classes === 2 && perExample === 1 ? 1 : classes;
  const classOf = (values: Float32Array, offset: number): number => (width === 1 ? (values[offset]! > 0.5 ? 1 : 0) : argmax(values, offset, classes));
  if (transductive) return Array.from({ length: task.query.count }, (_, q) => classOf(outputs[0]!, q * width));
  // Each query is the last example of its batch.
  return outputs.map((logits) => classOf(logits, logits.length - width));
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
