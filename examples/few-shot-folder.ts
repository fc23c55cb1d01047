/**
 * Few-shot learning on your own images: a folder with one sub-folder of PNG or JPEG images per
 * class (all of one size) is split by class into training and test classes; Reptile meta-trains
 * the paper's convolutional network (§5) on N-way K-shot tasks from the training classes, and the
 * network is scored on tasks from the test classes, which it never saw, before and after.
 *
 *   npx tsx examples/few-shot-folder.ts DIR [--classes 5] [--shots 1] [--meta-iters 500] [--eval-tasks 100]
 *   npx tsx examples/few-shot-folder.ts --make-fixture DIR   # a small folder of generated PNGs to try it on
 *
 *   DIR/
 *     cats/    001.png 002.png ...
 *     dogs/    001.png ...
 *     ...
 *
 * CI runs it on the generated folder with `--meta-iters 30 --eval-tasks 20`. A user's project
 * imports from 'reptile-ml' instead of '../src/index.js'.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import {
  FewShotTaskSource,
  ReptileError,
  Rng,
  UsageError,
  createFewShotModel,
  createLearner,
  evaluate,
  loadImageFolder,
  metaTrain,
  selectBackend,
  splitFolder,
  type InnerOptions,
} from '../src/index.js';
import { readFlags, runScript } from './flags.js';


/**
 * Twenty classes of twelve 28×28 PNGs: each class a stripe pattern of its own angle and
 * frequency, each image shifted and noised differently, so that a class is learnable from one
 * example and no two images are the same.
 */
function makeFixture(dir: string): void {
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) {
    throw new ReptileError(`'${dir}' is not empty: pass a new or empty folder to --make-fixture`);
  }
  const rng = Rng.fromSeed(0);
  const side = 28;
  for (let c = 0; c < 20; c++) {
    const angle = (c % 10) * (Math.PI / 10);
    const frequency = c < 10 ? 0.35 : 0.8;
    const classDir = path.join(dir, `class_${String(c).padStart(2, '0')}`);
    fs.mkdirSync(classDir, { recursive: true });
    for (let i = 0; i < 12; i++) {
      const shift = rng.uniform(0, 2 * Math.PI);
      const png = new PNG({ width: side, height: side });
      for (let y = 0; y < side; y++) {
        for (let x = 0; x < side; x++) {
          const wave = Math.sin(frequency * (x * Math.cos(angle) + y * Math.sin(angle)) + shift);
          const v = Math.max(0, Math.min(255, Math.round(127.5 + 100 * wave + rng.uniform(-30, 30))));
          const p = (y * side + x) * 4;
          png.data[p] = png.data[p + 1] = png.data[p + 2] = v;
          png.data[p + 3] = 255;
        }
      }
      fs.writeFileSync(path.join(classDir, `${String(i).padStart(3, '0')}.png`), PNG.sync.write(png));
    }
  }
  console.log(`wrote 20 classes × 12 PNG images (28×28) to ${dir}`);
}

async function main(): Promise<void> {
  const flags = readFlags({ classes: '5', shots: '1', 'meta-iters': '500', 'eval-tasks': '100', 'make-fixture': '' });
  const fixture = flags.text('make-fixture');
  if (fixture !== '') {
    makeFixture(fixture);
    return;
  }
  const dir = flags.positionals[0];
  if (dir === undefined || dir.startsWith('--')) {
    throw new UsageError('usage: few-shot-folder.ts DIR [--classes 5] [--shots 1] [--meta-iters 500] [--eval-tasks 100] (or --make-fixture DIR)');
  }
  const classes = flags.count('classes');
  const shots = flags.count('shots');
  const metaIters = flags.count('meta-iters');
  const evalTasks = flags.count('eval-tasks');
  await selectBackend('cpu', (line) => console.error(line));
  const began = performance.now();

  // Grey images (one channel); 70% of the classes (seeded) train, the rest test.
  const images = loadImageFolder({ dir, channels: 1 });
  const { train, test } = splitFolder({ dataset: images, seed: 0 });
  console.log(`${images.numClasses} classes of ${images.inputShape.join('×')} images: ${train.numClasses} for training, ${test.numClasses} for testing`);
  if (test.numClasses < classes) {
    throw new ReptileError(`only ${test.numClasses} test classes, fewer than --classes ${classes}: add class folders or lower --classes`);
  }
  const trainTasks = new FewShotTaskSource({ dataset: train, classes, shots });
  const testTasks = new FewShotTaskSource({ dataset: test, classes, shots });

  // The paper's Omniglot network (four conv blocks, batch norm, N-way softmax).
  const model = createFewShotModel({ kind: 'omniglot', inputShape: images.inputShape, classes, seed: 0 });
  const learner = createLearner({ model, log: (line) => console.error(line) });
  // A test task is learned with 50 Adam steps on its support set (the paper's evaluation).
  const adapt: InnerOptions = { optimizer: 'adam', learningRate: 1e-3, beta1: 0, beta2: 0.999, innerIters: 50, innerBatch: classes * shots };
  const accuracy = async () => evaluate({ learner, source: testTasks, inner: adapt, samples: evalTasks, seed: 1_000_000 });
  try {
    const before = await accuracy();
    const result = await metaTrain({
      learner,
      source: trainTasks,
      config: { metaIters, metaBatch: 5, innerIters: 10, innerBatch: 10, learningRate: 1e-3, optimizer: 'adam', beta1: 0, metaStep: 1, metaStepFinal: 0, seed: 0 },
    });
    const after = await accuracy();
    const pct = (r: typeof before) => `${(100 * r.mean).toFixed(1)}% ± ${(100 * r.ci95).toFixed(1)}`;
    console.log(`${classes}-way ${shots}-shot accuracy on ${evalTasks} tasks of unseen classes (chance ${(100 / classes).toFixed(0)}%):`);
    console.log(`  before meta-training: ${pct(before)}`);
    console.log(`  after ${result.iterations} meta-iterations: ${pct(after)}`);
    console.log(`${((performance.now() - began) / 1000).toFixed(1)} s`);
  } finally {
    learner.dispose();
    model.dispose();
  }
}

await runScript(main);
