import { InvalidOptionsError } from '../_utils/errors.js';
import { Rng } from '../core/rng.js';
import type { AdaptResult, InnerOptions, InnerStatePolicy, Learner } from '../learners/learner.js';
import type { TaskSource } from '../tasks/task.js';

/** One meta-batch to adapt: `metaBatch` tasks of meta-iteration `iteration`, all from the same φ. */
export interface MetaBatchRequest {
  readonly learner: Learner;
  readonly source: TaskSource;
  readonly seed: number;
  readonly iteration: number;
  readonly metaBatch: number;
  readonly inner: InnerOptions;
  /** Whether the results' `lastStep` is used (FOMAML); executors that send results over a wire skip it otherwise. */
  readonly foml?: boolean;
}

/** The test tasks of an evaluation: task i is drawn with `evalTaskStreams(seed, i)`, adapted from φ and scored. */
export interface EvalRequest {
  readonly learner: Learner;
  readonly source: TaskSource;
  readonly inner: InnerOptions;
  readonly seed: number;
  readonly samples: number;
  readonly transductive: boolean;
  /** Called after each task with (done, total). */
  readonly onTask?: (done: number, total: number) => void;
}

/**
 * Runs the adaptations of a meta-batch and returns their results in task-index order, whatever
 * order they finished in (docs/architecture.md, invariant 1). A `parallel` executor runs tasks side by side,
 * so it cannot chain the inner optimizer's state (`carry`) and refuses it.
 */
export interface Executor {
  readonly name: string;
  readonly parallel: boolean;
  /** The adapted weights of each task of the meta-batch, in task-index order. */
  runMetaBatch(request: MetaBatchRequest): Promise<AdaptResult[]>;
  /** Scores of the evaluation's tasks in task-index order; without it `evaluate` runs them in this thread. */
  evaluateTasks?(request: EvalRequest): Promise<number[]>;
  /** Stops the executor's workers and connections; the executor is not used after. */
  close(): Promise<void>;
}

/**
 * The generators of task `taskIndex` of meta-iteration `iteration`: one for sampling the task, one
 * for its minibatches. A pure function of (seed, iteration, task index).
 */
export function taskStreams(seed: number, iteration: number, taskIndex: number): { task: Rng; batches: Rng } {
  return { task: Rng.derive(seed, iteration, taskIndex, 0), batches: Rng.derive(seed, iteration, taskIndex, 1) };
}

/** Refuses the `carry` policy on an executor that runs tasks side by side, with the way out. */
export function checkPolicyFor(executor: Pick<Executor, 'name' | 'parallel'>, policy: InnerStatePolicy): void {
  if (executor.parallel && policy === 'carry') {
    throw new InvalidOptionsError(
      `the ${executor.name} executor runs a meta-batch's tasks side by side, so it cannot carry the inner optimizer's state from task to task (\`innerState\` 'carry'): set \`innerState\` to 'shared' or 'reset', or \`executor\` to 'inline'`,
    );
  }
}
