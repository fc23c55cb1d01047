/**
 * One training run of the `fit` benchmark (bench/fit-bench.ts starts each in a fresh process): the
 * seed's example (784-10-10, Reptile over Adam at 0.01, batch 32) or Keras's MNIST convnet (conv 32,
 * conv 64, max pool, dropout, dense 128, dropout, dense 10; Reptile over Adam at 0.001, batch 128),
 * trained with `fit` on the native engine (1 or 2 threads) or with tfjs's `model.fit` on the wasm
 * backend, from seeded initial weights and the seeded order of examples of `epochOrder` (the same
 * on both). Prints one JSON line: wall and process CPU seconds of each epoch (from onEpochBegin to
 * onEpochEnd), the wall and CPU seconds spent inside the engine's calls (the addon's fit) in those
 * epochs, the whole call's wall seconds (setup and write-back included), and the test accuracy.
 *
 *   npx tsx bench/fit-mnist.ts --run native1|native2|wasm [--model mlp|convnet] [--epochs 10] [--seed 0]
 */
import * as tf from '@tensorflow/tfjs';
import { loadMnist } from '../src/data/mnist.js';
import { selectBackend } from '../src/engine/backend.js';
import { loadNative } from '../src/engine/native.js';
import { epochOrder, fit } from '../src/fit/fit.js';
import { Reptile } from '../src/optim/reptile.js';
import { Rng } from '../src/core/rng.js';
import { option } from './built.js';

const args = process.argv.slice(2);
const run = option(args, 'run', 'native1');
const kind = option(args, 'model', 'mlp');
const epochs = Number(option(args, 'epochs', kind === 'mlp' ? '10' : '2'));
const seed = Number(option(args, 'seed', '0'));
if (!['native1', 'native2', 'wasm'].includes(run) || !['mlp', 'convnet'].includes(kind) || !(epochs > 0)) {
  console.error('usage: fit-mnist.ts --run native1|native2|wasm [--model mlp|convnet] [--epochs N] [--seed S]');
  process.exit(2);
}
const native = run !== 'wasm';
if (native) process.env.REPTILE_NATIVE_THREADS = run.slice(6);

// Time inside the engine: every engine the fit makes has its fit call timed (wall and CPU).
const engineTime = { wall: 0, cpu: 0 };
const status = loadNative();
if (native && !status.ok) throw new Error(`the native engine is unavailable: ${status.reason}`);
if (status.ok) {
  type Engine = { fit(a: unknown): Promise<number> };
  const addon = status.addon as unknown as { Engine: new (plan: unknown) => Engine };
  addon.Engine = new Proxy(addon.Engine, {
    construct(target, ctorArgs: [unknown]) {
      const engine = new target(ctorArgs[0]);
      const inner = engine.fit.bind(engine);
      Object.defineProperty(engine, 'fit', {
        value: async (a: unknown) => {
          const t0 = performance.now();
          const c0 = process.cpuUsage();
          try {
            return await inner(a);
          } finally {
            const c = process.cpuUsage(c0);
            engineTime.cpu += (c.user + c.system) / 1e6;
            engineTime.wall += (performance.now() - t0) / 1000;
          }
        },
      });
      return engine;
    },
  });
}

await selectBackend('wasm');
const data = await loadMnist();
const images = (s: typeof data.train) => tf.tidy(() => tf.div(tf.tensor2d(s.images, [s.count, 784], 'float32'), 255).reshape(kind === 'mlp' ? [s.count, 784] : [s.count, 28, 28, 1]));
const onehot = (s: typeof data.train) => tf.tidy(() => tf.oneHot(tf.tensor1d(s.labels, 'int32'), 10).toFloat());
const x = images(data.train);
const y = onehot(data.train);
const xTest = images(data.test);
const yTest = onehot(data.test);

const rng = Rng.derive(seed, 0);
const init = () => tf.initializers.glorotUniform({ seed: rng.nextUint32() % 2147483647 });
const model =
  kind === 'mlp'
    ? tf.sequential({
        layers: [
          tf.layers.dense({ units: 10, activation: 'relu', inputShape: [784], kernelInitializer: init() }),
          tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init() }),
        ],
      })
    : tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 32, kernelSize: 3, activation: 'relu', kernelInitializer: init() }),
          tf.layers.conv2d({ filters: 64, kernelSize: 3, activation: 'relu', kernelInitializer: init() }),
          tf.layers.maxPooling2d({ poolSize: 2 }),
          tf.layers.dropout({ rate: 0.25 }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 128, activation: 'relu', kernelInitializer: init() }),
          tf.layers.dropout({ rate: 0.5 }),
          tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init() }),
        ],
      });
const batchSize = kind === 'mlp' ? 32 : 128;
model.compile({ optimizer: new Reptile({ learningRate: kind === 'mlp' ? 0.01 : 0.001 }), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });

const perEpoch: number[] = [];
const cpuPerEpoch: number[] = [];
const enginePerEpoch: number[] = [];
const engineCpuPerEpoch: number[] = [];
let t0 = 0;
let c0 = process.cpuUsage();
let e0 = { ...engineTime };
const begin = () => {
  t0 = performance.now();
  c0 = process.cpuUsage();
  e0 = { ...engineTime };
};
const end = () => {
  perEpoch.push((performance.now() - t0) / 1000);
  const c = process.cpuUsage(c0);
  cpuPerEpoch.push((c.user + c.system) / 1e6);
  enginePerEpoch.push(engineTime.wall - e0.wall);
  engineCpuPerEpoch.push(engineTime.cpu - e0.cpu);
};

const began = performance.now();
if (native) {
  await fit(model, x, y, { epochs, batchSize, seed, verbose: 0, engine: 'native', callbacks: { onEpochBegin: begin, onEpochEnd: end } });
} else {
  // tfjs's model.fit, epoch by epoch, on the same seeded order (gathered beforehand, outside the timing).
  for (let epoch = 0; epoch < epochs; epoch++) {
    const idx = tf.tensor1d(epochOrder(data.train.count, seed, epoch), 'int32');
    const xs = tf.gather(x, idx);
    const ys = tf.gather(y, idx);
    idx.dispose();
    begin();
    await model.fit(xs, ys, { epochs: 1, batchSize, shuffle: false, verbose: 0 });
    end();
    tf.dispose([xs, ys]);
  }
}
const fitSeconds = (performance.now() - began) / 1000;
const testAccuracy = (model.evaluate(xTest, yTest, { batchSize: 1000 }) as tf.Scalar[])[1]!.dataSync()[0]!;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const r3 = (v: number) => Number(v.toFixed(3));
console.log(
  JSON.stringify({
    run: run === 'wasm' ? 'tfjs-wasm' : `engine-${run.slice(6)}t`,
    model: kind,
    threads: native ? Number(run.slice(6)) : 1,
    seed,
    epochs,
    trainSeconds: r3(sum(perEpoch)),
    perEpoch: perEpoch.map(r3),
    cpuSeconds: r3(sum(cpuPerEpoch)),
    engineSeconds: native ? r3(sum(enginePerEpoch)) : null,
    engineCpuSeconds: native ? r3(sum(engineCpuPerEpoch)) : null,
    fitSeconds: r3(fitSeconds),
    testAccuracy,
  }),
);
