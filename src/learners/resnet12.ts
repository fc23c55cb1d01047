import * as tf from '@tensorflow/tfjs';
import { InvalidOptionsError } from '../_utils/errors.js';
import { DEFAULT_CONV_INIT, kernelInit, type ConvInit } from './models.js';

/** Options of `createResNet12`. */
export interface ResNet12Options {
  /** Number of output classes (the task's N). */
  classes: number;
  /** Filters of the four residual blocks; default MetaOptNet's 64-160-320-640. */
  widths?: readonly [number, number, number, number];
  /** Input side length in pixels; default 84 (Mini-ImageNet). */
  size?: number;
  /** Input channels; default 3. */
  channels?: number;
  /** What follows the last block: `avg`, global average pooling (default), or `flatten`. */
  head?: 'avg' | 'flatten';
  /** Seed of the weight initialisers. */
  seed?: number;
  /** Kernel initialisation; default `fan-in`. */
  init?: ConvInit;
}

/**
 * ResNet-12 as MetaOptNet (Lee et al. 2019) and learn2learn's benchmarks use it, a functional
 * `tf.model`: four residual blocks, each three 3×3 convolutions without bias, each followed by
 * batch normalisation (ε 1e-3) and, but for the last, a leaky ReLU of slope 0.1; a shortcut of a
 * 1×1 convolution and batch normalisation added to the third; a leaky ReLU of slope 0.1 and a 2×2
 * max pool (stride 2, 'same'). Then global average pooling (or a flatten) and a dense layer to the
 * class count (logits). DropBlock is left out. The native engine compiles it.
 */
export function createResNet12(options: ResNet12Options): tf.LayersModel {
  const widths = options.widths ?? [64, 160, 320, 640];
  if (widths.length !== 4 || !widths.every((w) => Number.isInteger(w) && w > 0)) throw new InvalidOptionsError(`\`widths\` must be four positive integers, got ${JSON.stringify(widths)}`, { option: 'widths' });
  const size = options.size ?? 84;
  const channels = options.channels ?? 3;
  const seed = options.seed ?? 0;
  const init = options.init ?? DEFAULT_CONV_INIT;
  let index = 0;
  const conv = (x: tf.SymbolicTensor, filters: number, kernelSize: number): tf.SymbolicTensor =>
    tf.layers.conv2d({ filters, kernelSize, padding: 'same', useBias: false, kernelInitializer: kernelInit(init, seed * 1009 + ++index) }).apply(x) as tf.SymbolicTensor;
  const bn = (x: tf.SymbolicTensor): tf.SymbolicTensor => tf.layers.batchNormalization({ epsilon: 1e-3 }).apply(x) as tf.SymbolicTensor;
  const leaky = (x: tf.SymbolicTensor): tf.SymbolicTensor => tf.layers.leakyReLU({ alpha: 0.1 }).apply(x) as tf.SymbolicTensor;
  const input = tf.input({ shape: [size, size, channels] });
  let x = input;
  for (const width of widths) {
    const a = leaky(bn(conv(x, width, 3)));
    const b = leaky(bn(conv(a, width, 3)));
    const c = bn(conv(b, width, 3));
    const shortcut = bn(conv(x, width, 1));
    const sum = tf.layers.add().apply([c, shortcut]) as tf.SymbolicTensor;
    x = tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same' }).apply(leaky(sum)) as tf.SymbolicTensor;
  }
  const pooled = (options.head === 'flatten' ? tf.layers.flatten() : tf.layers.globalAveragePooling2d({})).apply(x) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: options.classes, kernelInitializer: kernelInit(init, seed * 1009 + 999) }).apply(pooled) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits });
}
