import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/core/rng.js';
import { selectBackend } from '../src/engine/backend.js';
import { compileModel } from '../src/learners/compile-model.js';
import { createLearner } from '../src/learners/create-learner.js';
import type { InnerOptions } from '../src/learners/learner.js';
import { createMiniImageNetModel, createOmniglotModel } from '../src/learners/models.js';
import { NativeLearner } from '../src/learners/native-learner.js';
import { TfjsLearner } from '../src/learners/tfjs.js';
import { init, nativeSkipReason, randomTask, relErr } from './native-helpers.js';

// The ten model shapes a new user brings, each a few lines of tf.sequential or tf.model: under
// `learner: 'auto'` every one compiles to the native engine, and 20 Adam steps there track the
// tfjs learner. (The paper's networks run at reduced image sizes: tfjs's cpu backend, the oracle,
// is slow at full size; the layers are the same.)
const TOL = 1e-4;

beforeAll(async () => {
  await selectBackend('cpu');
});

const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]): tf.SymbolicTensor => layer.apply(x) as tf.SymbolicTensor;

/** A Keras-style classifier: conv, pooling, dense layers, a softmax head; `dropout` before the head. */
const keras = (s: number, dropout: number): tf.Sequential =>
  tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [12, 12, 1], filters: 6, kernelSize: 3, activation: 'relu', kernelInitializer: init(s) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 16, activation: 'relu', kernelInitializer: init(s + 1) }),
      ...(dropout > 0 ? [tf.layers.dropout({ rate: dropout })] : []),
      tf.layers.dense({ units: 5, activation: 'softmax', kernelInitializer: init(s + 2) }),
    ],
  });

// `batch`: the inner batch (default 4). The Omniglot network's last block sees a 1 × 1 image at
// 10 × 10: its batch norm then normalises over the batch alone, which needs more than 4 examples
// to be well conditioned enough for two float32 engines to agree over 20 steps.
const SHAPES: { name: string; shape: number[]; classes: number; batch?: number; make: () => tf.LayersModel }[] = [
  { name: "the paper's Omniglot network (10×10)", shape: [10, 10, 1], classes: 5, batch: 10, make: () => createOmniglotModel({ classes: 5, size: 10, seed: 1 }) },
  { name: "the paper's Mini-ImageNet network (12×12×3)", shape: [12, 12, 3], classes: 5, make: () => createMiniImageNetModel({ classes: 5, size: 12, seed: 2 }) },
  { name: "a Keras-style classifier ending in dense({ activation: 'softmax' })", shape: [12, 12, 1], classes: 5, make: () => keras(3, 0) },
  // Dropout masks are drawn from the task's rng in the engine and from tfjs's own generator in
  // tfjs, so no two runs share masks: the 20 steps are compared at rate 0 (the mask itself is
  // checked against tfjs autograd in native-learner.test.ts), and the rate 0.3 model must compile.
  { name: 'the same with dropout', shape: [12, 12, 1], classes: 5, make: () => keras(4, 0) },
  {
    name: 'conv + globalAveragePooling2d + dense',
    shape: [12, 12, 1],
    classes: 5,
    make: () => tf.sequential({ layers: [tf.layers.conv2d({ inputShape: [12, 12, 1], filters: 8, kernelSize: 3, activation: 'relu', kernelInitializer: init(5) }), tf.layers.globalAveragePooling2d({}), tf.layers.dense({ units: 5, kernelInitializer: init(6) })] }),
  },
  {
    name: 'a MobileNet-style separableConv2d stack',
    shape: [12, 12, 3],
    classes: 5,
    make: () =>
      tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [12, 12, 3], filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: init(7) }),
          tf.layers.batchNormalization({}),
          tf.layers.reLU({ maxValue: 6 }),
          tf.layers.separableConv2d({ filters: 12, kernelSize: 3, padding: 'same', activation: 'relu6', depthwiseInitializer: init(8), pointwiseInitializer: init(9) }),
          tf.layers.globalAveragePooling2d({}),
          tf.layers.dense({ units: 5, activation: 'softmax', kernelInitializer: init(10) }),
        ],
      }),
  },
  {
    name: 'dense relu → dense sigmoid',
    shape: [10],
    classes: 3,
    make: () => tf.sequential({ layers: [tf.layers.dense({ inputShape: [10], units: 16, activation: 'relu', kernelInitializer: init(11) }), tf.layers.dense({ units: 3, activation: 'sigmoid', kernelInitializer: init(12) })] }),
  },
  {
    name: 'a frozen feature layer (trainable = false) + a head',
    shape: [10],
    classes: 3,
    make: () => {
      const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [10], units: 16, activation: 'tanh', kernelInitializer: init(13) }), tf.layers.dense({ units: 3, kernelInitializer: init(14) })] });
      model.layers[0]!.trainable = false;
      return model;
    },
  },
  {
    name: 'elu and leakyReLU layers',
    shape: [10],
    classes: 3,
    make: () =>
      tf.sequential({
        layers: [tf.layers.dense({ inputShape: [10], units: 12, kernelInitializer: init(15) }), tf.layers.elu({}), tf.layers.dense({ units: 12, kernelInitializer: init(16) }), tf.layers.leakyReLU({ alpha: 0.15 }), tf.layers.dense({ units: 3, kernelInitializer: init(17) })],
      }),
  },
  {
    name: 'a functional model (a residual block)',
    shape: [10],
    classes: 3,
    make: () => {
      const x = tf.input({ shape: [10] });
      const h = apply(tf.layers.dense({ units: 10, activation: 'relu', kernelInitializer: init(18) }), x);
      const r = apply(tf.layers.dense({ units: 10, kernelInitializer: init(19) }), h);
      const y = apply(tf.layers.dense({ units: 3, kernelInitializer: init(20) }), apply(tf.layers.add(), [x, r]));
      return tf.model({ inputs: x, outputs: y });
    },
  },
];

/**
 * The weights to compare: all but the bias of a convolution feeding a batch norm, whose gradient is
 * zero in exact arithmetic; each engine computes float32 rounding noise for it, which Adam scales up
 * to steps of the learning rate, differently in each (the batch norm removes the bias from every
 * output, which the predictions confirm).
 */
function comparable(model: tf.LayersModel, values: Float32Array): number[] {
  const skip = new Set<string>();
  model.layers.forEach((l, i) => {
    if (l.getClassName() === 'Conv2D' && model.layers[i + 1]?.getClassName() === 'BatchNormalization') for (const w of l.trainableWeights) if (w.originalName.endsWith('/bias')) skip.add(w.originalName);
  });
  const out: number[] = [];
  let at = 0;
  for (const w of model.trainableWeights) {
    const n = (w.shape as number[]).reduce((a, b) => a * b, 1);
    if (!skip.has(w.originalName)) out.push(...values.subarray(at, at + n));
    at += n;
  }
  return out;
}

describe.skipIf(nativeSkipReason !== undefined)('the ten model shapes under learner auto', () => {
  for (const [i, m] of SHAPES.entries()) {
    it(`${m.name}: native, and 20 Adam steps track the tfjs learner`, async () => {
      const lines: string[] = [];
      const picked = createLearner({ model: m.make(), learner: 'auto', log: (line) => lines.push(line) });
      expect(lines).toEqual([]);
      expect(picked).toBeInstanceOf(NativeLearner);
      const refModel = m.make();
      const reference = new TfjsLearner({ model: refModel });
      const task = randomTask({ rng: Rng.derive(90, i), count: 20, shape: m.shape, classes: m.classes });
      const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.003, innerIters: 20, innerBatch: m.batch ?? 4 };
      const a = await picked.adapt(task, inner, Rng.derive(91, i));
      const b = await reference.adapt(task, inner, Rng.derive(91, i));
      expect(relErr(comparable(refModel, a.params.data), comparable(refModel, b.params.data)), 'adapted weights').toBeLessThanOrEqual(TOL);
      expect(Math.abs(a.loss - b.loss) / Math.abs(b.loss), 'loss').toBeLessThanOrEqual(TOL);
      picked.setParams(a.params);
      reference.setParams(b.params);
      expect(relErr(picked.predict(task.query), reference.predict(task.query)), 'predictions').toBeLessThanOrEqual(TOL);
      picked.dispose();
      reference.dispose();
    }, 120_000);
  }

  it('with dropout at rate 0.3: native, with a dropout op', () => {
    const model = keras(4, 0.3);
    const lines: string[] = [];
    const picked = createLearner({ model, learner: 'auto', log: (line) => lines.push(line) });
    expect(lines).toEqual([]);
    expect(picked).toBeInstanceOf(NativeLearner);
    expect(compileModel(model).ops.filter((o) => o.kind === 'dropout')).toEqual([{ kind: 'dropout', inSize: 16, outSize: 16, rate: 0.3 }]);
    picked.dispose();
  });
});
