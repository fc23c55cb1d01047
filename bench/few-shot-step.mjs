/* global process, performance, console */
// Milliseconds per inner step (forward, backward and Adam update through TfjsLearner.adapt) of
// the paper's Omniglot network at inner batch 10, on each tfjs backend that loads.
// Run: npm run build && node bench/few-shot-step.mjs [backends...]   (default: cpu wasm)
import * as tf from '@tensorflow/tfjs';
import { Rng, TfjsLearner, createOmniglotModel, selectBackend } from '../dist/index.js';

const backends = process.argv.length > 2 ? process.argv.slice(2) : ['cpu', 'wasm'];
const rng = Rng.derive(0);
const count = 50;
const inputs = Float32Array.from({ length: count * 784 }, () => (rng.next() < 0.2 ? 0 : 1));
const targets = Float32Array.from({ length: count }, (_, i) => i % 5);
const examples = { count, inputs, inputShape: [28, 28, 1], targets, targetShape: [] };
const task = { kind: 'classification', numClasses: 5, support: examples, query: examples };

for (const name of backends) {
  await selectBackend(name);
  const model = createOmniglotModel({ classes: 5, seed: 0 });
  const learner = new TfjsLearner({ model });
  const steps = name === 'cpu' ? 3 : 25;
  const inner = { optimizer: 'adam', learningRate: 1e-3, innerIters: steps, innerBatch: 10 };
  await learner.adapt(task, { ...inner, innerIters: 1 }, Rng.derive(1)); // warm-up
  const began = performance.now();
  await learner.adapt(task, inner, Rng.derive(2));
  const ms = (performance.now() - began) / steps;
  console.log(`${name}: ${ms.toFixed(1)} ms per inner step (Omniglot net, batch 10, ${steps} steps), ${(10000 / ms).toFixed(0)} images/s, tensors ${tf.memory().numTensors}`);
  learner.dispose();
  model.dispose();
}
