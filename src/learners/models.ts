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

/** Options of `createOmniglotModel` and `createMiniImageNetModel`. */
export interface ConvModelOptions {
  /** Number of output classes (the task's N). */
  classes: number;
  /** Seed of the weight initialisers. */
  seed?: number;
  /** Input side length in pixels (28 for Omniglot, 84 for Mini-ImageNet). */
  size?: number;
  /** Input channels (1 for Omniglot, 3 for Mini-ImageNet). */
  channels?: number;
  /** Kernel initialisation; default `fan-in`. */
  init?: ConvInit;
}

/**
 * How the conv and dense kernels start. `fan-in`: U(±1/√fan_in), the scheme PyTorch ports of the
 * paper use (PyTorch's default). `glorot`: glorot-uniform, TensorFlow's default and so what
 * supervised-reptile used. Batch norm makes the conv output independent of the kernels' scale,
 * but under Adam (steps of about the learning rate whatever the weights' size) smaller kernels
 * move relatively faster: at the 500-iteration budget `fan-in` reaches a clearly higher accuracy
 * (see docs/few-shot.md), so it is the default.
 */
export type ConvInit = 'fan-in' | 'glorot';

/** The kernel initialisation the few-shot networks get when none is named. */
export const DEFAULT_CONV_INIT: ConvInit = 'fan-in';

/** A conv or dense kernel initialiser of scheme `init` with this seed. */
export function kernelInit(init: ConvInit, seed: number): ReturnType<typeof tf.initializers.glorotUniform> {
  return init === 'glorot'
    ? tf.initializers.glorotUniform({ seed })
    : tf.initializers.varianceScaling({ scale: 1 / 3, mode: 'fanIn', distribution: 'uniform', seed });
}

// supervised-reptile builds its layers with tf.layers defaults: zero biases, batch norm with
// epsilon 1e-3 and momentum irrelevant (always training mode); kernels as `ConvInit` says.
function convBlock(options: { filters: number; strides: number; pool: boolean; seed: number; index: number; init: ConvInit; inputShape?: number[] }): tf.layers.Layer[] {
  const layers: tf.layers.Layer[] = [
    tf.layers.conv2d({
      filters: options.filters,
      kernelSize: 3,
      strides: options.strides,
      padding: 'same',
      kernelInitializer: kernelInit(options.init, options.seed * 101 + options.index + 1),
      ...(options.inputShape ? { inputShape: options.inputShape } : {}),
    }),
    tf.layers.batchNormalization({ epsilon: 1e-3 }),
  ];
  if (options.pool) layers.push(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same' }));
  layers.push(tf.layers.activation({ activation: 'relu' }));
  return layers;
}

/**
 * The paper's Omniglot network (§5, supervised-reptile `OmniglotModel`): 28×28×1 input,
 * 4 × [conv 3×3, 64 filters, stride 2, 'same' padding → batch norm (ε 1e-3) → ReLU], flatten,
 * dense to the class count (logits). Batch norm is meant to run with the current batch's
 * statistics, which `TfjsLearner` does by applying the model in training mode.
 */
export function createOmniglotModel(options: ConvModelOptions): tf.Sequential {
  return convNet({ filters: 64, strides: 2, pool: false, size: 28, channels: 1 }, options);
}

/**
 * The paper's Mini-ImageNet network (§5, supervised-reptile `MiniImageNetModel`): 84×84×3 input,
 * 4 × [conv 3×3, 32 filters, 'same' padding → batch norm (ε 1e-3) → 2×2 max-pool (stride 2,
 * 'same') → ReLU], flatten, dense to the class count (logits).
 */
export function createMiniImageNetModel(options: ConvModelOptions): tf.Sequential {
  return convNet({ filters: 32, strides: 1, pool: true, size: 84, channels: 3 }, options);
}

// Four conv blocks, flatten, dense: the shape both of the paper's networks share.
function convNet(block: { filters: number; strides: number; pool: boolean; size: number; channels: number }, options: ConvModelOptions): tf.Sequential {
  const size = options.size ?? block.size;
  const channels = options.channels ?? block.channels;
  const seed = options.seed ?? 0;
  const init = options.init ?? DEFAULT_CONV_INIT;
  const layers: tf.layers.Layer[] = [];
  for (let i = 0; i < 4; i++) {
    layers.push(...convBlock({ filters: block.filters, strides: block.strides, pool: block.pool, seed, index: i, init, ...(i === 0 ? { inputShape: [size, size, channels] } : {}) }));
  }
  layers.push(tf.layers.flatten());
  layers.push(tf.layers.dense({ units: options.classes, kernelInitializer: kernelInit(init, seed * 101 + 99) }));
  return tf.sequential({ layers });
}
