/* global process, console */
// Process CPU milliseconds per Adam inner step (forward, backward, update) of a compiled model at
// batch 10 on one engine thread, straight on the addon: a check that a change to the engine's
// graph handling leaves a plain chain as fast as before. Compare two builds in fresh processes,
// interleaved, with REPTILE_NATIVE_ADDON pointing at each:
//   npm run build
//   for i in 1 2 3 4 5; do for a in old.node new.node; do
//     REPTILE_NATIVE_ADDON=$a node bench/graph-step.mjs omniglot; done; done
// Models: omniglot (the paper's network).
import * as tf from '@tensorflow/tfjs';
import { createOmniglotModel, loadNative } from '../dist/index.js';
import { compileModel } from '../dist/learners/compile-model.js';

const which = process.argv[2] ?? 'omniglot';
const status = loadNative();
if (!status.ok) throw new Error(status.reason);
const model = createOmniglotModel({ classes: 5, seed: 0 });
const plan = { ...compileModel(model), threads: 1 };
const engine = new status.addon.Engine(plan);
engine.setParams(Float32Array.from({ length: plan.paramSize }, (_, i) => Math.sin(i) * 0.05));
const count = 50;
const inputs = Float32Array.from({ length: count * plan.inputSize }, (_, i) => (Math.sin(i * 7.1) > 0.6 ? 0 : 1));
const targets = Float32Array.from({ length: count }, (_, i) => i % 5);
const steps = 40;
const batches = Int32Array.from({ length: steps * 10 }, (_, i) => (i * 7) % count);
const args = { inputs, targets, count, batches, batchSize: 10, optimizer: 'adam', learningRate: 1e-3, beta1: 0, beta2: 0.999, epsilon: 1e-8, reset: true, loss: 'softmax-xent' };
await engine.adapt({ ...args, batches: batches.slice(0, 50) }); // warm-up
const rounds = [];
for (let r = 0; r < 7; r++) {
  const t0 = process.cpuUsage();
  await engine.adapt(args);
  const t = process.cpuUsage(t0);
  rounds.push((t.user + t.system) / 1000 / steps);
}
rounds.sort((a, b) => a - b);
console.log(JSON.stringify({ model: which, addon: status.path, msPerStep: rounds[3], rounds }));
engine.release();
model.dispose();
void tf;
