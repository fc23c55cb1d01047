/**
 * The library's quick start: meta-train a small network on the paper's sine tasks (§5.1,
 * y = a·sin(x + b)) with Reptile, and compare its held-out error after a few steps of adaptation
 * with the error of the same network before meta-training.
 *
 *   npx tsx examples/sine.ts [--meta-iters 5000] [--eval-tasks 50] [--learner auto|native|tfjs]
 *
 * CI runs it with `--meta-iters 1000 --eval-tasks 20`. A user's project imports from 'reptile-ml'
 * instead of '../src/index.js'.
 */
import { ReptileError, SineTaskSource, createLearner, createSineModel, evaluate, metaTrain, selectBackend, type InnerOptions, type LearnerChoice } from '../src/index.js';
import { readFlags } from './flags.js';

const flags = readFlags({ 'meta-iters': '5000', 'eval-tasks': '50', learner: 'auto' });
const metaIters = flags.count('meta-iters');
const evalTasks = flags.count('eval-tasks');
const learnerChoice = flags.text('learner') as LearnerChoice;
if (!['auto', 'native', 'tfjs'].includes(learnerChoice)) {
  console.error(`--learner must be auto, native or tfjs, got '${learnerChoice}'`);
  process.exit(2);
}

// The tfjs CPU backend (the native engine, when built, runs the inner loops itself).
await selectBackend('cpu', (line) => console.error(line));

const began = performance.now();
// Tasks: 10 support points of a random sine wave; the network: 1 → 64 → 64 → 1 (tanh).
const source = new SineTaskSource({ shots: 10 });
const model = createSineModel({ seed: 0 });
const learner = createLearner({ model, learner: learnerChoice, log: (line) => console.error(line) });

// How a held-out task is learned: 32 steps of plain SGD on its 10 points, as in the authors' demo.
const adapt: InnerOptions = { optimizer: 'sgd', learningRate: 0.02, innerIters: 32, innerBatch: 10 };
const heldOut = async () => evaluate({ learner, source, inner: adapt, samples: evalTasks, seed: 1_000_000 });

try {
  const before = await heldOut();
  // Reptile: per meta-iteration, 5 SGD steps on one task, then φ moves toward the adapted weights,
  // ε annealed from 1 to 0.
  const result = await metaTrain({
    learner,
    source,
    config: { metaIters, metaBatch: 1, innerIters: 5, innerBatch: 10, learningRate: 0.03, optimizer: 'sgd', metaStep: 1, metaStepFinal: 0, seed: 0 },
  });
  const after = await heldOut();
  const fmt = (r: typeof before) => `${r.mean.toFixed(3)} ± ${r.ci95.toFixed(3)}`;
  console.log(`held-out MSE after 32 adaptation steps (${evalTasks} tasks):`);
  console.log(`  before meta-training: ${fmt(before)}`);
  console.log(`  after ${result.iterations} meta-iterations: ${fmt(after)}`);
  console.log(`${((performance.now() - began) / 1000).toFixed(1)} s`);
} catch (error) {
  // The library's own errors (bad options, a diverged run) are one line; anything else is a bug.
  if (!(error instanceof ReptileError)) throw error;
  console.error(error.message);
  process.exitCode = error.exitCode;
} finally {
  learner.dispose();
  model.dispose();
}
