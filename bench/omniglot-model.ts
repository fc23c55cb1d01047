import * as tf from '@tensorflow/tfjs';
import { Rng } from '../src/core/rng.js';
import type { Task } from '../src/tasks/task.js';

/**
 * The supervised-reptile Omniglot network (REFERENCE.md "Models"): 28×28×1 input, 4 × [conv 3×3,
 * 64 filters, stride 2, same padding → batch norm (ε 1e-3) → ReLU] → flatten → dense to `classes`.
 * Kept here for the benchmark and the native-engine tests until the library's own model factory
 * is shared by all of them.
 */
export function createOmniglotBenchModel(options: { classes?: number; seed?: number } = {}): tf.Sequential {
  const classes = options.classes ?? 5;
  const seed = options.seed ?? 0;
  const layers: tf.layers.Layer[] = [];
  for (let i = 0; i < 4; i++) {
    layers.push(
      tf.layers.conv2d({
        filters: 64,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 101 + i + 1 }),
        ...(i === 0 ? { inputShape: [28, 28, 1] } : {}),
      }),
      tf.layers.batchNormalization({ epsilon: 1e-3 }),
      tf.layers.reLU(),
    );
  }
  layers.push(tf.layers.flatten(), tf.layers.dense({ units: classes, kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 101 + 99 }) }));
  return tf.sequential({ layers });
}

/** A 5-way, 10-shot task of random 28×28 images (pure compute: no data pipeline), as the PyTorch reference uses. */
export function randomOmniglotTask(rng: Rng, classes = 5, shots = 10): Task {
  const count = classes * shots;
  const inputs = new Float32Array(count * 784);
  for (let i = 0; i < inputs.length; i++) inputs[i] = rng.uniform(0, 1);
  const targets = new Float32Array(count);
  for (let i = 0; i < count; i++) targets[i] = Math.floor(i / shots);
  const support = { count, inputs, inputShape: [28, 28, 1], targets, targetShape: [] };
  return { kind: 'classification', numClasses: classes, support, query: support };
}
