import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/core/rng.js';
import { selectBackend } from '../src/engine/backend.js';
import type { InnerOptions, Learner } from '../src/learners/learner.js';
import { createSineModel } from '../src/learners/models.js';
import { NativeLearner } from '../src/learners/native-learner.js';
import { TfjsLearner } from '../src/learners/tfjs.js';
import { SineTaskSource } from '../src/tasks/sine.js';
import { fixedPointSource, scalarModel } from './helpers/fixtures.js';
import { nativeSkipReason, relErr } from './native-helpers.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

// Adam with β1 = 0 (supervised-reptile's inner optimizer): v ← β2·v + (1 − β2)·g²,
// w ← w − α·g/(√(v/(1 − β2ᵗ)) + ε). On (w − 3)² from w = 1 with α = 0.1, β2 = 0.999, ε = 1e-8:
//   t = 1: g = −4,   v = 0.016,     v̂ = 16,          w = 1 + 0.1·4/(4 + 1e-8)        = 1.09999999975
//   t = 2: g = −3.8, v = 0.030424,  v̂ = 15.2196098,  w = 1.1 + 0.1·3.8/3.90123190   = 1.19740513
const adam2: InnerOptions = { optimizer: 'adam', learningRate: 0.1, innerIters: 2, innerBatch: 1, beta1: 0, beta2: 0.999, epsilon: 1e-8 };

const learners: [string, (model: tf.Sequential) => Learner][] = [
  ['tfjs', (model) => new TfjsLearner({ model })],
  ...(nativeSkipReason === undefined ? ([['native', (model: tf.Sequential) => new NativeLearner({ model })]] as [string, (model: tf.Sequential) => Learner][]) : []),
];

describe.each(learners)('the %s learner’s Adam (β1 = 0)', (_name, make) => {
  it('takes the two hand-computed steps', async () => {
    const learner = make(scalarModel(1));
    const r = await learner.adapt(fixedPointSource(3).sample(Rng.derive(0)), adam2, Rng.derive(0));
    expect(r.params.data[0]).toBeCloseTo(1.1974051311, 6);
    // The last step, w2 − w1, is what FOMAML uses.
    expect(r.lastStep.data[0]).toBeCloseTo(1.1974051311 - 1.09999999975, 6);
    const state = learner.getOptimizerState()!;
    expect(state.step).toBe(2);
    expect(state.v![0]).toBeCloseTo(0.030424, 6);
  });

  it('matches tf.train.adam step for step on a full-batch sine task', async () => {
    const task = new SineTaskSource({ shots: 10 }).sample(Rng.derive(5));
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 4, innerBatch: 10, beta1: 0, beta2: 0.999, epsilon: 1e-8 };
    const learner = make(createSineModel({ seed: 9 }));
    // One minibatch is the whole support set, so the order of examples cannot matter.
    const r = await learner.adapt(task, inner, Rng.derive(1));

    const model = createSineModel({ seed: 9 });
    const optimizer = tf.train.adam(0.01, 0, 0.999, 1e-8);
    const x = tf.tensor2d(task.support.inputs, [task.support.count, 1]);
    const y = tf.tensor2d(task.support.targets, [task.support.count, 1]);
    for (let i = 0; i < 4; i++) {
      optimizer.minimize(() => tf.losses.meanSquaredError(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
    }
    const expected = new Float32Array(model.trainableWeights.flatMap((w) => Array.from(w.read().dataSync())));
    expect(relErr(r.params.data, expected)).toBeLessThan(1e-5);
    tf.dispose([x, y]);
    optimizer.dispose();
    model.dispose();
  });
});
