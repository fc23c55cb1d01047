/**
 * Reptile as an ordinary tfjs optimizer (paper §3 with the training set as the only task; the
 * Lookahead form): `new Reptile()` goes into `model.compile`, and `model.fit` trains as usual.
 * The problem is synthetic, so nothing is downloaded: 2-D points of three interleaved spiral arms,
 * classified by a small MLP; a copy of the same network trained with plain Adam is shown beside it.
 *
 *   npx tsx examples/optimizer.ts [--epochs 20] [--points 600]
 *
 * CI runs it with `--epochs 5 --points 300`. A user's project imports from 'reptile-ml' instead of
 * '../src/index.js'.
 */
import * as tf from '@tensorflow/tfjs';
import { Reptile, Rng, selectBackend } from '../src/index.js';
import { readFlags } from './flags.js';

const flags = readFlags({ epochs: '20', points: '600' });
const epochs = flags.count('epochs');
const points = flags.count('points');

await selectBackend('cpu', (line) => console.error(line));

/** `n` points of three spiral arms with a little noise, and their arm (0, 1 or 2) one-hot. */
function spirals(n: number, seed: number): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const rng = Rng.fromSeed(seed);
  const xs = new Float32Array(n * 2);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const arm = i % 3;
    const r = rng.uniform(0.05, 1);
    const angle = 4 * r + (arm * 2 * Math.PI) / 3 + rng.uniform(-0.2, 0.2);
    xs[2 * i] = r * Math.cos(angle);
    xs[2 * i + 1] = r * Math.sin(angle);
    labels[i] = arm;
  }
  return { x: tf.tensor2d(xs, [n, 2]), y: tf.oneHot(tf.tensor1d(labels, 'int32'), 3).toFloat() as tf.Tensor2D };
}

const network = (seed: number) =>
  tf.sequential({
    layers: [
      tf.layers.dense({ units: 32, activation: 'relu', inputShape: [2], kernelInitializer: tf.initializers.glorotUniform({ seed }) }),
      tf.layers.dense({ units: 32, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }),
      tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }) }),
    ],
  });

const train = spirals(points, 1);
const test = spirals(300, 2);
const began = performance.now();
for (const [name, optimizer] of [
  // k = 5 Adam steps on the fast weights, then the slow weights move halfway to them (the defaults).
  ['Reptile (Adam inside, k = 5, ε = 0.5)', new Reptile({ learningRate: 0.01 })],
  ['plain Adam', tf.train.adam(0.01)],
] as const) {
  const model = network(7);
  model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  const history = await model.fit(train.x, train.y, { epochs, batchSize: 32, shuffle: false, verbose: 0 });
  const [, accuracy] = (model.evaluate(test.x, test.y) as tf.Scalar[]).map((t) => t.dataSync()[0]!);
  const loss = history.history['loss']!.at(-1) as number;
  console.log(`${name}: training loss ${loss.toFixed(4)} after ${epochs} epochs, test accuracy ${(100 * accuracy!).toFixed(1)}%`);
  model.dispose();
  optimizer.dispose();
}
console.log(`${((performance.now() - began) / 1000).toFixed(1)} s`);
