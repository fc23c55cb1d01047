/* global process, console, performance */
// Process CPU milliseconds per Adam inner step (forward, backward, update) of a compiled model at
// batch 10 on one engine thread, straight on the addon: a check that a change to the engine's
// graph handling leaves a plain chain as fast as before. Compare two builds in fresh processes,
// interleaved, with REPTILE_NATIVE_ADDON pointing at each:
//   npm run build
//   for i in 1 2 3 4 5; do for a in old.node new.node; do
//     REPTILE_NATIVE_ADDON=$a node bench/graph-step.mjs omniglot; done; done
// Models: omniglot (the paper's network); resnet12 (MetaOptNet's widths 64-160-320-640 at 28×28×1,
// about 22 GFLOP per step); resnet12-frozen (the same with every layer but the dense head frozen).
// A second argument sets the engine threads (1 or 2).
import * as tf from '@tensorflow/tfjs';
import { createOmniglotModel, createResNet12, loadNative } from '../dist/index.js';
import { compileModel } from '../dist/learners/compile-model.js';

const which = process.argv[2] ?? 'omniglot';
const status = loadNative();
if (!status.ok) throw new Error(status.reason);
const threads = Number(process.argv[3] ?? 1);
const model = which.startsWith('resnet12') ? createResNet12({ size: 28, channels: 1, classes: 5, seed: 0 }) : createOmniglotModel({ classes: 5, seed: 0 });
if (which === 'resnet12-frozen') for (const layer of model.layers.slice(0, -1)) layer.trainable = false;
const plan = { ...compileModel(model), threads };
const engine = new status.addon.Engine(plan);
engine.setParams(Float32Array.from({ length: plan.paramSize }, (_, i) => Math.sin(i) * 0.05));
const count = 50;
const inputs = Float32Array.from({ length: count * plan.inputSize }, (_, i) => (Math.sin(i * 7.1) > 0.6 ? 0 : 1));
const targets = Float32Array.from({ length: count }, (_, i) => i % 5);
const heavy = which.startsWith('resnet12');
const steps = heavy ? 4 : 40;
const batches = Int32Array.from({ length: steps * 10 }, (_, i) => (i * 7) % count);
const args = { inputs, targets, count, batches, batchSize: 10, optimizer: 'adam', learningRate: 1e-3, beta1: 0, beta2: 0.999, epsilon: 1e-8, reset: true, loss: 'softmax-xent' };
await engine.adapt({ ...args, batches: batches.slice(0, heavy ? 10 : 50) }); // warm-up
const rounds = [];
const roundCount = heavy ? 3 : 7;
for (let r = 0; r < roundCount; r++) {
  const t0 = process.cpuUsage();
  const w0 = performance.now();
  await engine.adapt(args);
  const t = process.cpuUsage(t0);
  rounds.push({ cpu: (t.user + t.system) / 1000 / steps, wall: (performance.now() - w0) / steps });
}
const median = (k) => rounds.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(rounds.length / 2)];
console.log(JSON.stringify({ model: which, threads, addon: status.path, msPerStep: median('cpu'), wallMsPerStep: median('wall'), rounds }));
engine.release();
model.dispose();
void tf;
