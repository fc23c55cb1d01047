import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/engine/backend.js';
import { createLearner } from '../src/learners/create-learner.js';
import { NativeLearner } from '../src/learners/native-learner.js';
import { TfjsLearner } from '../src/learners/tfjs.js';
import { nativeSkipReason } from './native-helpers.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

const model = (extra: Partial<Parameters<typeof tf.layers.dense>[0]>) =>
  tf.sequential({ layers: [tf.layers.dense({ units: 4, inputShape: [2], activation: 'relu', name: 'hidden' }), tf.layers.dense({ units: 1, name: 'out', ...extra })] });

const cases: [string, Partial<Parameters<typeof tf.layers.dense>[0]>, RegExp][] = [
  ['kernel regularizer', { kernelRegularizer: tf.regularizers.l2({ l2: 0.01 }) }, /^layer 'out' has a regularizer \(kernelRegularizer\): Reptile's inner loops minimise the task loss alone and would ignore it; build the model without regularizers$/],
  // (tfjs itself refuses to build a model with an activity regularizer.)
  ['bias regularizer', { biasRegularizer: tf.regularizers.l1() }, /^layer 'out' has a regularizer \(biasRegularizer\)/],
  ['kernel constraint', { kernelConstraint: tf.constraints.maxNorm({ maxValue: 1 }) }, /^layer 'out' has a constraint \(kernelConstraint\): .* build the model without constraints$/],
  ['bias constraint', { biasConstraint: tf.constraints.nonNeg() }, /^layer 'out' has a constraint \(biasConstraint\)/],
];

describe('models with regularizers or constraints are refused with one line, on both learners', () => {
  for (const [what, extra, message] of cases) {
    it(`tfjs learner: ${what}`, () => {
      expect(() => new TfjsLearner({ model: model(extra) })).toThrow(message);
      expect(() => createLearner({ model: model(extra), learner: 'auto' })).toThrow(message);
    });
    it.skipIf(nativeSkipReason !== undefined)(`native learner: ${what}`, () => {
      expect(() => new NativeLearner({ model: model(extra) })).toThrow(message);
    });
  }

  it('the same model without them is accepted by both', () => {
    new TfjsLearner({ model: model({}) }).dispose();
    if (nativeSkipReason === undefined) new NativeLearner({ model: model({}) }).dispose();
  });
});
