import * as tf from '@tensorflow/tfjs';
import { DataError, InvalidOptionsError } from '../_utils/errors.js';
import { sizeOf } from '../core/params.js';
import type { Examples, Task } from '../tasks/task.js';

/**
 * The loss a model is trained with on a task, following its output as Keras users expect:
 * regression takes the mean squared error; classification takes the cross-entropy that matches the
 * last activation — categorical cross-entropy of a softmax output (`categorical-xent`), binary
 * cross-entropy of sigmoid outputs (`binary-xent`: one unit for two classes, or one unit per
 * class against the one-hot label), and otherwise softmax cross-entropy of the outputs taken as
 * logits (`softmax-xent`, the paper's networks). Both learners use it, so they train the same loss.
 */
export type TaskLoss = 'softmax-xent' | 'categorical-xent' | 'binary-xent' | 'mse';

/** The activation the layer computing a model's output ends with (`undefined` for none or linear); inside a nested model, its own output layer's. */
export function outputActivation(model: tf.LayersModel): string | undefined {
  let last: tf.layers.Layer | undefined = model.outputs[0]?.sourceLayer ?? model.layers[model.layers.length - 1];
  while (last instanceof tf.LayersModel) last = last.outputs[0]?.sourceLayer;
  if (!last) return undefined;
  const cls = last.getClassName();
  if (cls === 'Softmax') return 'softmax';
  const activation = (last.getConfig() as Record<string, unknown>).activation;
  return typeof activation === 'string' && activation !== 'linear' ? activation : undefined;
}

/** The loss `model` is trained with on `task` (see `TaskLoss`). */
export function taskLoss(model: tf.LayersModel, task: Task): TaskLoss {
  if (task.kind !== 'classification') return 'mse';
  const activation = outputActivation(model);
  if (activation === 'softmax') return 'categorical-xent';
  if (activation === 'sigmoid') return 'binary-xent';
  return 'softmax-xent';
}

/** Values per example of a model's output. */
export function outputSize(model: tf.LayersModel): number {
  return sizeOf(model.outputs[0]!.shape.slice(1) as number[]);
}

/**
 * The targets of `examples` as the loss reads them, one row per example: the class label (cross-
 * entropies over a softmax or logits), the one-hot label or, for one sigmoid unit, the label 0 or
 * 1 (binary cross-entropy), or the regression targets. Checks that they fit the model's outputs.
 */
export function lossTargets(loss: TaskLoss, task: Task, examples: Examples, outputs: number): Float32Array {
  if (loss === 'mse') {
    if (sizeOf(examples.targetShape) !== outputs) throw new InvalidOptionsError(`targets of shape [${examples.targetShape.join(', ')}] do not fit the model's ${outputs} outputs`);
    return examples.targets;
  }
  const classes = task.numClasses;
  if (!classes) throw new InvalidOptionsError("a classification task must say how many classes it has: give the task source's tasks a `numClasses`");
  const binaryUnit = loss === 'binary-xent' && outputs === 1 && classes === 2;
  if (classes !== outputs && !binaryUnit) {
    const fix = loss === 'binary-xent' ? 'give the model one sigmoid output per class (or one for two classes)' : 'give the model one output per class';
    throw new InvalidOptionsError(`the task has ${classes} classes but the model outputs ${outputs} values: ${fix}`);
  }
  if (loss !== 'binary-xent' || binaryUnit) return examples.targets;
  const oneHot = new Float32Array(examples.count * classes);
  for (let i = 0; i < examples.count; i++) {
    const label = examples.targets[i]!;
    if (!(Number.isInteger(label) && label >= 0 && label < classes)) throw new DataError(`class label ${label} is not in 0..${classes - 1}`);
    oneHot[i * classes + label] = 1;
  }
  return oneHot;
}

/** `lossTargets` as a tensor of the model's output shape ([count, classes] one-hot for the softmax losses). */
export function lossTargetTensor(loss: TaskLoss, task: Task, examples: Examples, outputs: number): tf.Tensor {
  return tf.tidy(() => {
    const t = lossTargets(loss, task, examples, outputs);
    if (loss === 'mse') return tf.tensor(t, [examples.count, ...examples.targetShape], 'float32');
    if (loss === 'binary-xent') return tf.tensor(t, [examples.count, outputs], 'float32');
    return tf.oneHot(tf.tensor1d(Int32Array.from(t), 'int32'), task.numClasses!).toFloat();
  });
}

/** The mean loss over a batch, as tfjs computes it (targets from `lossTargetTensor`). */
export function lossValue(loss: TaskLoss, y: tf.Tensor, out: tf.Tensor): tf.Scalar {
  switch (loss) {
    case 'softmax-xent':
      return tf.losses.softmaxCrossEntropy(y, out) as tf.Scalar;
    case 'categorical-xent':
      return tf.mean(tf.metrics.categoricalCrossentropy(y, out));
    case 'binary-xent':
      return tf.mean(tf.metrics.binaryCrossentropy(y, out));
    case 'mse':
      return tf.losses.meanSquaredError(y, out) as tf.Scalar;
  }
}
