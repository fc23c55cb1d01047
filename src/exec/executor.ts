import { Rng } from '../core/rng.js';
import type { AdaptResult, InnerOptions, Learner } from '../learners/learner.js';
import type { TaskSource } from '../tasks/task.js';

/** One meta-batch to adapt: `metaBatch` tasks of meta-iteration `iteration`, all from the same φ. */
export interface MetaBatchRequest {
  readonly learner: Learner;
  readonly source: TaskSource;
  readonly seed: number;
  readonly iteration: number;
  readonly metaBatch: number;
  readonly inner: InnerOptions;
}

/**
 * Runs the adaptations of a meta-batch and returns their results in task-index order, whatever
 * order they finished in (DESIGN.md invariant 1).
 */
export interface Executor {
  readonly name: string;
  runMetaBatch(request: MetaBatchRequest): Promise<AdaptResult[]>;
  close(): Promise<void>;
}

/**
 * The generators of task `taskIndex` of meta-iteration `iteration`: one for sampling the task, one
 * for its minibatches. A pure function of (seed, iteration, task index).
 */
export function taskStreams(seed: number, iteration: number, taskIndex: number): { task: Rng; batches: Rng } {
  return { task: Rng.derive(seed, iteration, taskIndex, 0), batches: Rng.derive(seed, iteration, taskIndex, 1) };
}
