import * as tf from '@tensorflow/tfjs';

/** Options of `createSineModel`. */
export interface SineModelOptions {
  hidden?: readonly number[];
  activation?: 'tanh' | 'relu';
  seed?: number;
}

/**
 * The paper's sine-regression network (§5.1): 1 → 64 → 64 → 1. The authors' demo uses tanh,
 * which it notes works slightly better than ReLU; that is the default here.
 */
export function createSineModel(options: SineModelOptions = {}): tf.Sequential {
  const hidden = options.hidden ?? [64, 64];
  const seed = options.seed ?? 0;
  const layers: tf.layers.Layer[] = hidden.map((units, i) =>
    tf.layers.dense({
      units,
      activation: options.activation ?? 'tanh',
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 101 + i + 1 }),
      ...(i === 0 ? { inputShape: [1] } : {}),
    }),
  );
  layers.push(tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 101 + 99 }) }));
  return tf.sequential({ layers });
}
