/**
 * The documentation's MNIST example, done correctly: images flattened to 784 inputs, a 10-unit
 * ReLU layer, a 10-way softmax with categorical cross-entropy, trained with the Reptile optimizer
 * through the ordinary `model.compile` and `model.fit`'s contract — on the native engine with
 * `fit(model, x, y, args)`, or with tfjs's own `model.fit` on a tfjs backend (`--backend`).
 *
 *   npm run example:mnist -- [--epochs 10] [--limit N] [--json] [--one-vs-rest] [--backend wasm|cpu]
 *
 * `--one-vs-rest` is the original snippet's head (ten sigmoids with binary cross-entropy, i.e. ten
 * independent "is it digit d?" classifiers); the predicted digit is the most confident of them.
 * The same run, with seeded shuffling, is `reptile example mnist`.
 */
import * as tf from '@tensorflow/tfjs';
import { Reptile, fit, type BackendChoice } from '../src/index.js';
import { readFlags } from './flags.js';
import { mnistTensors } from './mnist-data.js';

const flags = readFlags({ epochs: '10', limit: '', backend: '' }, ['json', 'one-vs-rest']);
const epochs = flags.count('epochs');
const limit = flags.optional('limit') === undefined ? undefined : flags.count('limit');
const json = flags.on('json');
const oneVsRest = flags.on('one-vs-rest');
const backend = flags.optional('backend') as BackendChoice | undefined;
const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);

// tfjs evaluates the model (and, with --backend, trains it too).
const { xTrain, yTrain, xTest, yTest } = await mnistTensors({ limit, backend, images: 'flat' });

const model = tf.sequential({
  layers: [
    tf.layers.dense({ units: 10, activation: 'relu', inputShape: [784] }),
    tf.layers.dense({ units: 10, activation: oneVsRest ? 'sigmoid' : 'softmax' }),
  ],
});
model.compile({
  optimizer: new Reptile({ learningRate: 0.01 }),
  loss: oneVsRest ? 'binaryCrossentropy' : 'categoricalCrossentropy',
  metrics: [oneVsRest ? 'categoricalAccuracy' : 'accuracy'],
});

const began = performance.now();
let epochStart = began;
// fit(model, ...) is model.fit(...) on the native engine; with --backend, tfjs's own.
const train = backend === undefined ? (x: tf.Tensor, y: tf.Tensor, a: tf.ModelFitArgs) => fit(model, x, y, a) : (x: tf.Tensor, y: tf.Tensor, a: tf.ModelFitArgs) => model.fit(x, y, a);
await train(xTrain, yTrain, {
  epochs,
  batchSize: 32,
  verbose: 0,
  callbacks: {
    onEpochBegin: async () => {
      epochStart = performance.now();
    },
    onEpochEnd: async (epoch, logs) => {
      const acc = logs?.['acc'] ?? logs?.['categoricalAccuracy'] ?? Number.NaN;
      log(`Epoch ${epoch + 1}/${epochs} - ${((performance.now() - epochStart) / 1000).toFixed(1)}s - loss: ${logs?.['loss']?.toFixed(4)} - acc: ${acc.toFixed(4)}`);
    },
  },
});
const [testLoss, testAccuracy] = (model.evaluate(xTest, yTest, { batchSize: 1000 }) as tf.Scalar[]).map((t) => t.dataSync()[0]!);
const seconds = (performance.now() - began) / 1000;
if (json) process.stdout.write(`${JSON.stringify({ testAccuracy, testLoss, epochs, seconds: Number(seconds.toFixed(2)) })}\n`);
else log(`test accuracy ${(100 * testAccuracy!).toFixed(2)}%, test loss ${testLoss!.toFixed(4)} (${seconds.toFixed(1)} s)`);
