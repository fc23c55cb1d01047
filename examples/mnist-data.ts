/**
 * MNIST as the example scripts feed it to a model: the tfjs backend chosen, the images scaled to
 * [0, 1] (flat rows of 784, or 28 × 28 × 1 grids for a convnet), the digits one-hot.
 */
import * as tf from '@tensorflow/tfjs';
import { loadMnist, selectBackend, type BackendChoice } from '../src/index.js';

/** Training and test images and one-hot labels as tensors. */
export interface MnistTensors {
  xTrain: tf.Tensor;
  yTrain: tf.Tensor;
  xTest: tf.Tensor;
  yTest: tf.Tensor;
}

/** Selects the backend tfjs evaluates on (and, with a backend named, trains on), then loads MNIST. */
export async function mnistTensors(options: { limit: number | undefined; backend: BackendChoice | undefined; images: 'flat' | 'grid' }): Promise<MnistTensors> {
  await selectBackend(options.backend ?? 'auto', (l) => process.stderr.write(`${l}\n`));
  const mnist = await loadMnist({ trainLimit: options.limit });
  const toTensors = (s: typeof mnist.train) =>
    tf.tidy(() => ({
      x: tf.div(options.images === 'flat' ? tf.tensor2d(s.images, [s.count, 784], 'float32') : tf.tensor4d(s.images, [s.count, 28, 28, 1], 'float32'), 255),
      y: tf.oneHot(tf.tensor1d(s.labels, 'int32'), 10).toFloat(),
    }));
  const train = toTensors(mnist.train);
  const test = toTensors(mnist.test);
  return { xTrain: train.x, yTrain: train.y, xTest: test.x, yTest: test.y };
}
