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
  /**
   * The previous meta-batch's results, which the caller no longer reads: an executor that adapts
   * in this thread writes task i's result into the i-th (see `AdaptCallOptions.into`).
   */
  readonly into?: readonly AdaptResult[];
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
  /**
   * Removes what the runs so far keep outside this process (the Redis executor's queues and stored
   * values), so that nothing of a finished training is left if the process dies in what follows
   * (an evaluation); the executor stays usable. `close` does it too.
   */
  endRuns?(): Promise<void>;
  /** Stops the executor's workers and connections; the executor is not used after. */
  close(): Promise<void>;
  /** `async` when the training loop should call {@link Executor.runAsyncSpan} instead of `runMetaBatch` (default `sync`). */
  readonly sync?: SyncMode;
  /** The asynchronous mode: applies `metaBatch` task results as they arrive (docs/distributed.md). */
  runAsyncSpan?(request: AsyncSpanRequest): Promise<AsyncSpanResult>;
  /** The counters of the asynchronous mode so far (undefined in the synchronous mode). */
  readonly asyncCounters?: AsyncCounters;
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

/** How a parallel executor applies its tasks' results: all of a meta-batch at once (`sync`), or each as it arrives (`async`). */
export type SyncMode = 'sync' | 'async';

/** Where an asynchronous run stands: the next task number never sent, and the tasks sent but not applied. */
export interface AsyncProgress {
  /** The lowest task number not yet sent (task n is task n % metaBatch of meta-iteration ⌊n / metaBatch⌋). */
  readonly next: number;
  /** Tasks below `next` that are not applied: out on workers, or dropped as stale and to be sent again. */
  readonly owed: readonly number[];
}

/** Counters of an executor's asynchronous runs: every task sent is eventually applied once, dropped as stale, or still out. */
export interface AsyncCounters {
  /** Tasks sent to workers (a task dropped as stale is sent again and counted again). */
  readonly sent: number;
  readonly applied: number;
  /** Answers dropped because φ had moved more than `maxStaleness` updates since their task was sent. */
  readonly stale: number;
  /** Answers for a task that was not out (already applied): ignored. */
  readonly duplicates: number;
}

/** One span of an asynchronous run: apply `metaBatch` answers, whichever tasks they come from. */
export interface AsyncSpanRequest {
  readonly learner: Learner;
  readonly source: TaskSource;
  readonly seed: number;
  /** The meta-iteration of the schedule this span counts as (its ε is the caller's). */
  readonly iteration: number;
  readonly metaBatch: number;
  /** Tasks in the run: `metaIters × metaBatch`. */
  readonly totalTasks: number;
  readonly inner: InnerOptions;
  readonly foml: boolean;
  /** Moves φ by ε/metaBatch toward one task's result; returns what is wrong with the result, or undefined. */
  apply(result: AdaptResult): string | undefined;
  /** Starts afresh from this progress (a resumed run's checkpoint); undefined continues the run this executor is in. */
  readonly resume?: AsyncProgress;
}

/** What a span applied. */
export interface AsyncSpanResult {
  /** The task numbers applied, in the order they were applied. */
  readonly tasks: readonly number[];
  /** How many updates old each applied task's φ was. */
  readonly staleness: readonly number[];
  readonly losses: readonly number[];
  /** Answers dropped as stale during the span (their tasks are sent again). */
  readonly dropped: number;
  /** Where the run stands once the span's answers are applied (what a checkpoint saved now owes). */
  readonly progress: AsyncProgress;
  /** Set when `apply` refused a result: φ is left as it was before it. */
  readonly problem?: string;
}
