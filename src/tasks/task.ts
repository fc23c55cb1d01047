import type { Rng } from '../core/rng.js';
import { InvalidOptionsError } from '../_utils/errors.js';

/**
 * A set of examples stored flat: `inputs` holds `count` examples of `inputShape` each, `targets`
 * holds `count` targets of `targetShape` (for classification a class index per example, stored
 * as a float, with `targetShape` []).
 */
export interface Examples {
  readonly count: number;
  readonly inputs: Float32Array;
  readonly inputShape: readonly number[];
  readonly targets: Float32Array;
  readonly targetShape: readonly number[];
}

/** What kind of learning problem a task is; it decides the loss (MSE or softmax cross-entropy). */
export type TaskKind = 'regression' | 'classification';

/**
 * One task of the meta-learning problem (paper §3): a support set to adapt on and a query set to
 * measure the adapted model on. For N-way classification the labels are 0..N−1.
 */
export interface Task {
  readonly kind: TaskKind;
  readonly numClasses?: number;
  readonly support: Examples;
  readonly query: Examples;
}

/**
 * Where tasks come from. `sample` must draw all of its randomness from `rng`, so that a task is a
 * pure function of the generator handed to it (docs/architecture.md, invariant 1).
 */
export interface TaskSource {
  readonly kind: TaskKind;
  readonly inputShape: readonly number[];
  readonly outputSize: number;
  /** A task, drawn with `rng` only. */
  sample(rng: Rng): Task;
  /** A JSON description of the source, stored in checkpoints. */
  describe(): Record<string, unknown>;
}

/** Examples `indices` of `set`, in that order, as a new set. */
export function selectExamples(set: Examples, indices: readonly number[]): Examples {
  const inSize = set.inputShape.reduce((a, b) => a * b, 1);
  const outSize = set.targetShape.reduce((a, b) => a * b, 1);
  const inputs = new Float32Array(indices.length * inSize);
  const targets = new Float32Array(indices.length * outSize);
  indices.forEach((idx, k) => {
    if (!Number.isInteger(idx) || idx < 0 || idx >= set.count) throw new InvalidOptionsError(`\`indices\` holds example ${idx}, outside 0..${set.count - 1}: pick examples of the set`, { option: 'indices' });
    inputs.set(set.inputs.subarray(idx * inSize, (idx + 1) * inSize), k * inSize);
    targets.set(set.targets.subarray(idx * outSize, (idx + 1) * outSize), k * outSize);
  });
  return { count: indices.length, inputs, inputShape: set.inputShape, targets, targetShape: set.targetShape };
}
