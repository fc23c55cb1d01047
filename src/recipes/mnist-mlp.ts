import * as tf from '@tensorflow/tfjs';
import { Rng } from '../core/rng.js';
import type { MnistData, MnistSplit } from '../data/mnist.js';
import { epochOrder, fit } from '../fit/fit.js';

/** Per-epoch figures of {@link trainMnistMlp}, as Keras prints them. */
export interface MnistEpochLogs {
  epoch: number;
  epochs: number;
  loss: number;
  accuracy: number;
  testLoss: number;
  testAccuracy: number;
  seconds: number;
}

/** Result of {@link trainMnistMlp}. */
export interface MnistMlpResult {
  testAccuracy: number;
  testLoss: number;
  epochs: number;
  trainExamples: number;
  testExamples: number;
  seconds: number;
  history: MnistEpochLogs[];
  /** True when the loss became NaN or infinite and training stopped early. */
  diverged: boolean;
  /** Where the network trained: the native engine, or tfjs's `model.fit`. */
  engine: 'native' | 'tfjs';
}

/** Options of {@link trainMnistMlp}. */
export interface MnistMlpOptions {
  data: MnistData;
  /** The optimizer (any tf.Optimizer, e.g. a {@link Reptile}); it is disposed at the end. */
  optimizer: tf.Optimizer;
  epochs: number;
  /** Minibatch size (default 32, Keras's default). */
  batchSize?: number;
  /** Seeds the weight initialisation and the per-epoch shuffles. */
  seed?: number;
  /** `'softmax'` (default): 10-way softmax with categorical cross-entropy. `'one-vs-rest'`: 10 sigmoids with binary cross-entropy. */
  head?: 'softmax' | 'one-vs-rest';
  /** Hidden units of the ReLU layer (default 10, the documentation's network). */
  hiddenUnits?: number;
  /** Called after each epoch with its loss and test accuracy. */
  onEpochEnd?: (logs: MnistEpochLogs) => void;
  /**
   * `'native'` (default): the engine's {@link fit}, or tfjs's `model.fit` with one line to
   * `onInfo` saying why where the engine cannot run; `'tfjs'`: `model.fit` on the current tfjs
   * backend. Both take the same seeded order of examples in every epoch.
   */
  engine?: 'native' | 'tfjs';
  /** Where a line about falling back to tfjs goes (default `console.warn`). */
  onInfo?: (line: string) => void;
}

/**
 * Trains the documentation's MNIST network (784 inputs → 10 ReLU units → 10 outputs) with the
 * given optimizer through `model.compile` and `fit` — the native engine's `model.fit`, or tfjs's
 * own with `engine: 'tfjs'` — exactly as a Keras user would, and
 * measures loss and accuracy on the test split after every epoch. Shuffling and initialisation
 * come from the seeded {@link Rng}, so a run is a function of its options; a loss that turns NaN
 * or infinite stops the run and is reported as `diverged`.
 */
export async function trainMnistMlp(options: MnistMlpOptions): Promise<MnistMlpResult> {
  const { data, optimizer, epochs } = options;
  const batchSize = options.batchSize ?? 32;
  const seed = options.seed ?? 0;
  const head = options.head ?? 'softmax';
  const began = performance.now();
  const rng = Rng.derive(seed, 0);
  const initSeed = () => rng.nextUint32() % 2147483647;
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: options.hiddenUnits ?? 10, activation: 'relu', inputShape: [784], kernelInitializer: tf.initializers.glorotUniform({ seed: initSeed() }) }),
      tf.layers.dense({ units: 10, activation: head === 'softmax' ? 'softmax' : 'sigmoid', kernelInitializer: tf.initializers.glorotUniform({ seed: initSeed() }) }),
    ],
  });
  model.compile({ optimizer, loss: head === 'softmax' ? 'categoricalCrossentropy' : 'binaryCrossentropy', metrics: [head === 'softmax' ? 'accuracy' : 'categoricalAccuracy'] });
  const train = splitTensors(data.train);
  const test = splitTensors(data.test);
  const history: MnistEpochLogs[] = [];
  let diverged = false;
  let engine: 'native' | 'tfjs' = options.engine ?? 'native';
  let t0 = performance.now();
  const endEpoch = (epoch: number, loss: number, accuracy: number): boolean => {
    const seconds = (performance.now() - t0) / 1000;
    const [testLoss, testAccuracy] = evaluate(model, test, head);
    const logs = { epoch: epoch + 1, epochs, loss, accuracy, testLoss, testAccuracy, seconds };
    history.push(logs);
    options.onEpochEnd?.(logs);
    diverged = !Number.isFinite(loss);
    return diverged;
  };
  const accuracyOf = (logs: Record<string, unknown>): number => {
    const v = logs['acc'] ?? logs['categoricalAccuracy'] ?? logs['accuracy'];
    return typeof v === 'number' ? v : Number.NaN;
  };
  try {
    if (engine === 'native') {
      // One fit for all epochs: the engine keeps its buffers, and epoch e's order is epochOrder(seed, e).
      await fit(model, train.x, train.y, {
        epochs,
        batchSize,
        seed,
        verbose: 0,
        log: (line) => {
          engine = 'tfjs';
          (options.onInfo ?? console.warn)(line);
        },
        callbacks: {
          onEpochBegin: () => {
            t0 = performance.now();
          },
          onEpochEnd: (epoch, logs) => {
            if (endEpoch(epoch, typeof logs?.['loss'] === 'number' ? logs['loss'] : Number.NaN, accuracyOf(logs ?? {}))) model.stopTraining = true;
          },
        },
      });
    } else {
      for (let epoch = 0; epoch < epochs; epoch++) {
        t0 = performance.now();
        const idx = tf.tensor1d(epochOrder(data.train.count, seed, epoch), 'int32');
        const xs = tf.gather(train.x, idx);
        const ys = tf.gather(train.y, idx);
        idx.dispose();
        let h: tf.History;
        try {
          h = await model.fit(xs, ys, { epochs: 1, batchSize, shuffle: false, verbose: 0 });
        } finally {
          tf.dispose([xs, ys]);
        }
        const logs = Object.fromEntries(Object.entries(h.history).map(([k, v]) => [k, v[v.length - 1]]));
        if (endEpoch(epoch, lastOf(h.history['loss']), accuracyOf(logs))) break;
      }
    }
  } finally {
    tf.dispose([train.x, train.y, test.x, test.y]);
    model.dispose();
    optimizer.dispose();
  }
  const last = history[history.length - 1];
  return {
    testAccuracy: last?.testAccuracy ?? Number.NaN,
    testLoss: last?.testLoss ?? Number.NaN,
    epochs: history.length,
    trainExamples: data.train.count,
    testExamples: data.test.count,
    seconds: (performance.now() - began) / 1000,
    history,
    diverged,
    engine,
  };
}

function lastOf(values: (number | tf.Tensor)[] | undefined): number {
  const v = values?.[values.length - 1];
  return typeof v === 'number' ? v : Number.NaN;
}

function splitTensors(split: MnistSplit): { x: tf.Tensor2D; y: tf.Tensor2D } {
  return tf.tidy(() => {
    const x = tf.div(tf.tensor2d(split.images, [split.count, split.rows * split.cols], 'float32'), 255) as tf.Tensor2D;
    const y = tf.oneHot(tf.tensor1d(split.labels, 'int32'), 10).toFloat() as tf.Tensor2D;
    return { x, y };
  });
}

// Test loss is the training loss on the test split; accuracy is argmax agreement for both heads
// (for one-vs-rest the predicted digit is the most confident of the ten binary classifiers).
function evaluate(model: tf.LayersModel, test: { x: tf.Tensor2D; y: tf.Tensor2D }, head: 'softmax' | 'one-vs-rest'): [number, number] {
  return tf.tidy(() => {
    const p = model.predict(test.x, { batchSize: 1000 }) as tf.Tensor2D;
    const loss = (head === 'softmax' ? tf.metrics.categoricalCrossentropy(test.y, p) : tf.metrics.binaryCrossentropy(test.y, p)).mean();
    const acc = tf.equal(tf.argMax(p, 1), tf.argMax(test.y, 1)).toFloat().mean();
    return [loss.dataSync()[0]!, acc.dataSync()[0]!];
  });
}
