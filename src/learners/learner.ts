import type { Layout, Params } from '../core/params.js';
import type { Rng } from '../core/rng.js';
import type { Examples, Task } from '../tasks/task.js';
import { checkOptionsObject, describeValue } from '../_utils/checks.js';
import { InvalidOptionsError } from '../_utils/errors.js';

/**
 * The inner loop's settings (paper §3, supervised-reptile's `--inner-iters`, `--inner-batch`,
 * `--learning-rate`, `--sgd`). Adam uses β1 = 0 by default, as supervised-reptile does.
 */
export interface InnerOptions {
  optimizer: 'sgd' | 'adam';
  learningRate: number;
  innerIters: number;
  innerBatch: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /**
   * The per-example losses of a minibatch are summed and divided by this; by default by the
   * minibatch's size (their mean). supervised-reptile sums them (TF1 minimises the vector of
   * per-example losses), and because Adam's moments are carried from training (minibatches of
   * `innerBatch`) into evaluation (minibatches of `evalBatch`), the sum gives evaluation steps
   * `evalBatch / innerBatch` times the size the mean gives. A fixed divisor reproduces that; the
   * few-shot recipes use the training `innerBatch` (see `FewShotSettings.loss`).
   */
  lossDivisor?: number;
}

/** The result of adapting to one task. */
export interface AdaptResult {
  /** The adapted weights W (the learner itself is back at φ afterwards). */
  readonly params: Params;
  /** W − W⁽ᵏ⁻¹⁾: the change made by the last inner step, which FOMAML uses. */
  readonly lastStep: Params;
  /** Mean training loss over the inner steps. */
  readonly loss: number;
}

/** Options of one `adapt` call. */
export interface AdaptCallOptions {
  /**
   * An earlier result of this learner that the caller no longer reads: the engine learners write
   * the new result into its arrays and return them, instead of allocating 2·4·P bytes, whose
   * garbage collection costs a large model several milliseconds a call. Its arrays are overwritten;
   * learners that allocate their results anyway (tfjs) ignore it.
   */
  readonly into?: AdaptResult;
}

/**
 * Inner-optimizer state as flat vectors (Adam's moment estimates and step count), so that it can
 * be checkpointed and restored exactly.
 */
export interface OptimizerState {
  readonly kind: 'sgd' | 'adam';
  readonly step: number;
  readonly m?: Float32Array;
  readonly v?: Float32Array;
}

/**
 * What carries over between tasks: `carry` keeps the inner optimizer's state from task to task
 * (supervised-reptile: only the model's weights are reset to φ, Adam's moments persist), which
 * chains the tasks of a meta-batch; `shared` starts every task of meta-iteration i from the same
 * state Sᵢ and makes Sᵢ₊₁ the element-wise mean of the tasks' final states (in task-index order),
 * so the tasks are independent and can run anywhere; `reset` starts every task from a fresh
 * optimizer. A learner itself keeps its state between calls under `carry` and `shared`; the
 * executor does the sharing.
 */
export type InnerStatePolicy = 'carry' | 'shared' | 'reset';

/** The inner-state policies, for checks and messages. */
export const INNER_STATE_POLICIES: readonly InnerStatePolicy[] = ['carry', 'shared', 'reset'];

/** What scoring a task needs of a learner: its outputs on examples. */
export type Predictor = Pick<Learner, 'predict'>;

/**
 * How a test task is scored: the batches to predict with the adapted weights, and the score
 * (accuracy, or mean squared error) from their outputs.
 */
export interface TaskScoring {
  /** The batches of `task` to predict with the adapted weights. */
  batches(task: Task): Examples[];
  /** The task's score (accuracy, or mean squared error) from the outputs of those batches. */
  score(task: Task, outputs: readonly Float32Array[]): number;
}

/**
 * A model that can be adapted to a task: the contract shared by the tfjs learner (any LayersModel)
 * and the native learner. Parameters are the model's trainable weights as one flat vector.
 */
export interface Learner {
  readonly layout: Layout;
  readonly innerState: InnerStatePolicy;
  /** A copy of the current parameters φ. */
  getParams(): Params;
  /** Replaces φ with `params` (same layout). */
  setParams(params: Params): void;
  /**
   * Starts from the current parameters φ, runs `innerIters` optimizer steps on minibatches of the
   * task's support set drawn with `rng`, returns the adapted weights, and restores φ.
   */
  adapt(task: Task, inner: InnerOptions, rng: Rng, options?: AdaptCallOptions): Promise<AdaptResult>;
  /**
   * Optional: adapts to several tasks in order, with exactly the results of awaiting `adapt` for
   * each in turn, in one call (a learner that runs elsewhere, such as the native engine, saves a
   * hand-off per task). An item's `into` is as `adapt`'s.
   */
  adaptTasks?(items: readonly { task: Task; rng: Rng; into?: AdaptResult }[], inner: InnerOptions): Promise<AdaptResult[]>;
  /**
   * Optional: few-shot evaluation's inner step (paper §5) for independent test tasks. Each task
   * adapts from the current φ and optimizer state, the adapted model predicts the batches
   * `scoring` names, `scoring` scores their outputs, and φ and the state are left as they were.
   * The scores are exactly those of adapting, scoring and restoring task by task; a learner with
   * this method may run several tasks at once (the native engine puts one on each core).
   */
  scoreTasks?(items: readonly { task: Task; rng: Rng }[], inner: InnerOptions, scoring: TaskScoring): Promise<number[]>;
  /**
   * Optional: the Reptile meta-update (paper, Algorithm 2) applied to this learner's φ in place,
   * φ ← φ + ε·(mean_i W_i − φ), with exactly the bits of core's `reptileUpdate` (a learner whose
   * weights live elsewhere, such as the native engine, saves two copies of φ and a pass in
   * JavaScript per meta-iteration). Returns undefined, or what is wrong with the result (a value
   * that is not finite), in which case φ is left as it was.
   */
  applyReptileUpdate?(adapted: readonly Params[], epsilon: number): string | undefined;
  /** Model outputs for `examples` (logits or regression values), `count × outputSize` floats. */
  predict(examples: Examples): Float32Array;
  /** The inner optimizer's state, in arrays of their own that the caller may keep or transfer. */
  getOptimizerState(): OptimizerState | undefined;
  /** Replaces the inner optimizer's state (`undefined`: a fresh one), as `carry` and `shared` hand it on. */
  setOptimizerState(state: OptimizerState | undefined): void;
  /** Frees what the learner holds (tensors, engine buffers); the model stays the caller's. */
  dispose(): void;
}

/**
 * Throws one {@link InvalidOptionsError} line when inner-loop options are missing or out of range;
 * it names every bad option, and its `option` is the first of them.
 */
export function validateInnerOptions(inner: InnerOptions): void {
  checkOptionsObject(inner, 'the inner loop', "{ optimizer: 'adam', learningRate: 0.001, innerIters: 5, innerBatch: 10 }");
  const problems: [string, string][] = [];
  const bad = (option: string, text: string) => problems.push([option, `\`${option}\` ${text}`]);
  if (inner.optimizer !== 'sgd' && inner.optimizer !== 'adam') bad('optimizer', `must be 'sgd' or 'adam', got ${describeValue(inner.optimizer)}`);
  if (typeof inner.learningRate !== 'number' || !(inner.learningRate > 0) || !Number.isFinite(inner.learningRate)) bad('learningRate', `must be a positive number, got ${describeValue(inner.learningRate)}`);
  if (!Number.isInteger(inner.innerIters) || inner.innerIters < 1) bad('innerIters', `must be a whole number ≥ 1, got ${describeValue(inner.innerIters)}`);
  if (!Number.isInteger(inner.innerBatch) || inner.innerBatch < 1) bad('innerBatch', `must be a whole number ≥ 1, got ${describeValue(inner.innerBatch)}`);
  const b1 = inner.beta1 ?? 0;
  const b2 = inner.beta2 ?? 0.999;
  if (typeof b1 !== 'number' || !(b1 >= 0 && b1 < 1)) bad('beta1', `must be in [0, 1), got ${describeValue(b1)}`);
  if (typeof b2 !== 'number' || !(b2 >= 0 && b2 < 1)) bad('beta2', `must be in [0, 1), got ${describeValue(b2)}`);
  if (inner.lossDivisor !== undefined && !(typeof inner.lossDivisor === 'number' && inner.lossDivisor > 0 && Number.isFinite(inner.lossDivisor))) bad('lossDivisor', `must be a positive number, got ${describeValue(inner.lossDivisor)}`);
  if (problems.length > 0) throw new InvalidOptionsError(problems.map(([, text]) => text).join('; '), { option: problems[0]![0] });
}
