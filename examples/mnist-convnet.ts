/**
 * Keras's MNIST convnet (conv 32, conv 64, max pool, dropout 0.25, dense 128, dropout 0.5, dense
 * 10 softmax) trained with the Reptile optimizer over Adam, through `model.fit`'s contract on the
 * native engine (`fit(model, x, y, args)`), or with tfjs's own `model.fit` on a tfjs backend
 * (`--backend`, to compare).
 *
 *   npx tsx examples/mnist-convnet.ts [--epochs 2] [--batch-size 128] [--limit N] [--json] [--backend wasm|cpu]
 */
import * as tf from '@tensorflow/tfjs';
import { Reptile, fit, type BackendChoice } from '../src/index.js';
import { readFlags } from './flags.js';
import { mnistTensors } from './mnist-data.js';

const flags = readFlags({ epochs: '2', 'batch-size': '128', limit: '', backend: '' }, ['json']);
const epochs = flags.count('epochs');
const batchSize = flags.count('batch-size');
const limit = flags.optional('limit') === undefined ? undefined : flags.count('limit');
const json = flags.on('json');
const backend = flags.optional('backend') as BackendChoice | undefined;
const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);

// tfjs evaluates the model (and, with --backend, trains it too).
const { xTrain, yTrain, xTest, yTest } = await mnistTensors({ limit, backend, images: 'grid' });

const model = tf.sequential({
  layers: [
    tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 32, kernelSize: 3, activation: 'relu' }),
    tf.layers.conv2d({ filters: 64, kernelSize: 3, activation: 'relu' }),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.dropout({ rate: 0.25 }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 128, activation: 'relu' }),
    tf.layers.dropout({ rate: 0.5 }),
    tf.layers.dense({ units: 10, activation: 'softmax' }),
  ],
});
model.compile({ optimizer: new Reptile({ learningRate: 0.001 }), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });

const began = performance.now();
let epochStart = began;
const args: tf.ModelFitArgs = {
  epochs,
  batchSize,
  verbose: 0,
  callbacks: {
    onEpochBegin: async () => {
      epochStart = performance.now();
    },
    onEpochEnd: async (epoch, logs) => {
      log(`Epoch ${epoch + 1}/${epochs} - ${((performance.now() - epochStart) / 1000).toFixed(1)}s - loss: ${logs?.['loss']?.toFixed(4)} - acc: ${logs?.['acc']?.toFixed(4)}`);
    },
  },
};
// fit(model, ...) is model.fit(...) on the native engine; with --backend, tfjs's own.
await (backend === undefined ? fit(model, xTrain, yTrain, args) : model.fit(xTrain, yTrain, args));
const trainSeconds = (performance.now() - began) / 1000;
const [testLoss, testAccuracy] = (model.evaluate(xTest, yTest, { batchSize: 500 }) as tf.Scalar[]).map((t) => t.dataSync()[0]!);
const seconds = (performance.now() - began) / 1000;
const engine = backend === undefined ? 'native' : `tfjs ${backend}`;
if (json) process.stdout.write(`${JSON.stringify({ testAccuracy, testLoss, epochs, engine, trainSeconds: Number(trainSeconds.toFixed(2)), seconds: Number(seconds.toFixed(2)) })}\n`);
else log(`test accuracy ${(100 * testAccuracy!).toFixed(2)}%, test loss ${testLoss!.toFixed(4)} (${trainSeconds.toFixed(1)} s training on ${engine}, ${seconds.toFixed(1)} s in all)`);
