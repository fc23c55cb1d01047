import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnsupportedModelError } from '../src/_utils/errors.js';
import { Rng } from '../src/core/rng.js';
import { selectBackend } from '../src/engine/backend.js';
import { ThreadsExecutor } from '../src/exec/threads.js';
import type { Executor } from '../src/exec/executor.js';
import { compileModel } from '../src/learners/compile-model.js';
import { createLearner } from '../src/learners/create-learner.js';
import type { InnerOptions, Learner } from '../src/learners/learner.js';
import { NativeLearner } from '../src/learners/native-learner.js';
import { createResNet12 } from '../src/learners/resnet12.js';
import { taskLoss } from '../src/learners/loss.js';
import { TfjsLearner } from '../src/learners/tfjs.js';
import { SineTaskSource } from '../src/tasks/sine.js';
import type { Task } from '../src/tasks/task.js';
import { metaTrain } from '../src/train/meta-train.js';
import { init, nativeSkipReason, randomTask, relErr } from './native-helpers.js';

// Functional graphs through whole inner loops: `auto` picks the native engine for the model shapes
// people bring, and 20 Adam steps there track the tfjs learner; one and two engine threads, and
// the inline and threads executors, give the same bits on a functional model.
const TOL = 1e-4;

beforeAll(async () => {
  await selectBackend('cpu');
});

const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]): tf.SymbolicTensor => layer.apply(x) as tf.SymbolicTensor;
function graph(inputShape: number[], wire: (x: tf.SymbolicTensor) => tf.SymbolicTensor): tf.LayersModel {
  const input = tf.input({ shape: inputShape });
  return tf.model({ inputs: input, outputs: wire(input) });
}

/** A residual block (two 3×3 convs with batch norm, a 1×1 conv shortcut, added), pooled, a softmax head. */
const residual = (s: number): tf.LayersModel =>
  graph([10, 9, 1], (x) => {
    const a = apply(tf.layers.reLU(), apply(tf.layers.batchNormalization({}), apply(tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init(s) }), x)));
    const b = apply(tf.layers.batchNormalization({}), apply(tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init(s + 1) }), a));
    const short = apply(tf.layers.conv2d({ filters: 6, kernelSize: 1, useBias: false, kernelInitializer: init(s + 2) }), x);
    const sum = apply(tf.layers.reLU(), apply(tf.layers.add(), [b, short]));
    return apply(tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: init(s + 3) }), apply(tf.layers.globalAveragePooling2d({}), apply(tf.layers.maxPooling2d({ poolSize: 2 }), sum)));
  });

/** Two branches (a 3×3 and a 1×1 conv) concatenated along channels. */
const concatenated = (s: number): tf.LayersModel =>
  graph([10, 9, 1], (x) => {
    const a = apply(tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernelInitializer: init(s) }), x);
    const b = apply(tf.layers.conv2d({ filters: 3, kernelSize: 1, strides: 2, activation: 'tanh', kernelInitializer: init(s + 1) }), x);
    const cat = apply(tf.layers.concatenate(), [a, b]);
    return apply(tf.layers.dense({ units: 4, kernelInitializer: init(s + 2) }), apply(tf.layers.flatten(), cat));
  });

/** A nested Sequential feature extractor inside a functional model, its output multiplied by a sigmoid gate. */
const nested = (s: number): tf.LayersModel => {
  const features = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [10, 9, 1], filters: 5, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: init(s) }),
      tf.layers.batchNormalization({}),
      tf.layers.leakyReLU({ alpha: 0.2 }),
      tf.layers.flatten(),
    ],
  });
  return graph([10, 9, 1], (x) => {
    const f = apply(features, x);
    const gate = apply(tf.layers.dense({ units: 12, activation: 'sigmoid', kernelInitializer: init(s + 1) }), f);
    const h = apply(tf.layers.dense({ units: 12, activation: 'elu', kernelInitializer: init(s + 2) }), f);
    return apply(tf.layers.dense({ units: 4, kernelInitializer: init(s + 3) }), apply(tf.layers.multiply(), [gate, h]));
  });
};

// (16×16 rather than 28×28: tfjs's cpu backend, the oracle, takes minutes for 20 steps at 28×28.)
const smallResNet = (seed: number): tf.LayersModel => createResNet12({ widths: [8, 8, 8, 8], size: 16, channels: 1, classes: 5, seed });

/** The learner `auto` picks, which must be the native engine, against the tfjs learner over one inner loop. */
async function compareWithTfjs(make: () => tf.LayersModel, task: Task, inner: InnerOptions, seed: number): Promise<void> {
  const picked = createLearner({ model: make(), learner: 'auto', log: (line) => expect.fail(`auto fell back: ${line}`) });
  expect(picked).toBeInstanceOf(NativeLearner);
  const reference = new TfjsLearner({ model: make() });
  const a = await picked.adapt(task, inner, Rng.derive(seed));
  const b = await reference.adapt(task, inner, Rng.derive(seed));
  expect(relErr(a.params.data, b.params.data), 'adapted weights').toBeLessThanOrEqual(TOL);
  expect(relErr(a.lastStep.data, b.lastStep.data), 'last step').toBeLessThanOrEqual(TOL * 10);
  expect(Math.abs(a.loss - b.loss) / Math.abs(b.loss), 'loss').toBeLessThanOrEqual(TOL);
  picked.setParams(a.params);
  reference.setParams(b.params);
  expect(relErr(picked.predict(task.query), reference.predict(task.query)), 'predictions').toBeLessThanOrEqual(TOL);
  picked.dispose();
  reference.dispose();
}

const adam20 = (innerBatch: number): InnerOptions => ({ optimizer: 'adam', learningRate: 0.003, innerIters: 20, innerBatch });
const imageTask = (seed: number, shape: number[], classes: number, count = 20): Task => randomTask({ rng: Rng.derive(seed, 500), count, shape, classes });

describe.skipIf(nativeSkipReason !== undefined)('functional models over 20 Adam steps against the tfjs learner', () => {
  it('a residual block (Add, a tensor read by two convolutions)', async () => {
    await compareWithTfjs(() => residual(61), imageTask(61, [10, 9, 1], 4), adam20(6), 61);
  });
  it('a functional model with Concatenate', async () => {
    await compareWithTfjs(() => concatenated(62), imageTask(62, [10, 9, 1], 4), adam20(6), 62);
  });
  it('a nested Sequential model and Multiply', async () => {
    await compareWithTfjs(() => nested(63), imageTask(63, [10, 9, 1], 4), adam20(6), 63);
  });
  it('a nested Sequential head ending in softmax: categorical cross-entropy in both learners', async () => {
    const make = (): tf.LayersModel => {
      const head = tf.sequential({ layers: [tf.layers.dense({ inputShape: [8], units: 4, activation: 'softmax', kernelInitializer: init(67) })] });
      return graph([10], (x) => apply(head, apply(tf.layers.dense({ units: 8, activation: 'relu', kernelInitializer: init(66) }), x)));
    };
    const task = randomTask({ rng: Rng.derive(66, 1), count: 20, shape: [10], classes: 4 });
    const model = make();
    expect(taskLoss(model, task)).toBe('categorical-xent');
    model.dispose();
    await compareWithTfjs(make, task, adam20(5), 66);
  });
  it('ResNet-12 (widths 8-8-8-8, 16×16)', async () => {
    await compareWithTfjs(() => smallResNet(64), imageTask(64, [16, 16, 1], 5, 15), adam20(4), 64);
  }, 240_000);
  it('a frozen ResNet-12 extractor and a trainable dense head: only the head is φ, and it tracks tfjs', async () => {
    const make = (): tf.LayersModel => {
      const model = smallResNet(65);
      for (const layer of model.layers.slice(0, -1)) layer.trainable = false;
      return model;
    };
    const model = make();
    const plan = compileModel(model);
    expect(plan.paramSize).toBe(8 * 5 + 5);
    expect(plan.ops.filter((o) => 'frozen' in o && o.frozen).length).toBeGreaterThan(20);
    model.dispose();
    await compareWithTfjs(make, imageTask(65, [16, 16, 1], 5, 15), adam20(5), 65);
  }, 120_000);
});

/** One and two engine threads on the model `make` builds: the same bits from each adapt call in turn, then the same gradients, input gradients and predictions. */
async function expectThreadsAgree(make: () => tf.LayersModel, task: Task, calls: { inner: InnerOptions; rng: () => Rng }[]): Promise<void> {
  const one = new NativeLearner({ model: make(), threads: 1 });
  const two = new NativeLearner({ model: make(), threads: 2 });
  expect([one.threads, two.threads]).toEqual([1, 2]);
  for (const { inner, rng } of calls) {
    const a = await one.adapt(task, inner, rng());
    const b = await two.adapt(task, inner, rng());
    expect(b.params.data).toEqual(a.params.data);
    expect(b.loss).toBe(a.loss);
  }
  const g1 = one.gradients(task, task.support);
  const g2 = two.gradients(task, task.support);
  expect(g2.grad.data).toEqual(g1.grad.data);
  expect(g2.inputGrad).toEqual(g1.inputGrad);
  expect(two.predict(task.query)).toEqual(one.predict(task.query));
  one.dispose();
  two.dispose();
}

describe.skipIf(nativeSkipReason !== undefined)('functional models on one and two engine threads', () => {
  it('ResNet-12 and the Concatenate model give the same bits on one and two threads', async () => {
    for (const [make, shape, classes] of [[() => smallResNet(71), [16, 16, 1], 5], [() => concatenated(72), [10, 9, 1], 4]] as const) {
      const task = imageTask(71, [...shape], classes, 21);
      const adam4 = (innerBatch: number): InnerOptions => ({ optimizer: 'adam', learningRate: 0.01, innerIters: 4, innerBatch });
      await expectThreadsAgree(make, task, [7, 1].map((b) => ({ inner: adam4(b), rng: () => Rng.derive(71, b) })));
    }
  }, 120_000);
});

// Channel counts that do not divide the engine's 256-deep blocks of a product (a block then ends
// inside a window position's channels), in the forward product, the weight gradient and the
// phase-by-phase input gradient (stride 1 and 2); with `wide`, 3×3 convolutions of 248 channels,
// whose packed weights (2.2 MB each) the two threads pack half each into one copy, and weights
// (4.9 MB in all) large enough for both threads to step and read one copy of them.
const oddChannels = (s: number, wide: boolean): tf.LayersModel =>
  tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 20], filters: 40, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernelInitializer: init(s) }),
      tf.layers.conv2d({ filters: 40, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(s + 1) }),
      ...(wide
        ? [
            tf.layers.conv2d({ filters: 248, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(s + 2) }),
            tf.layers.conv2d({ filters: 248, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(s + 3) }),
            tf.layers.conv2d({ filters: 248, kernelSize: 3, padding: 'same', kernelInitializer: init(s + 5) }),
          ]
        : []),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 4, kernelInitializer: init(s + 4) }),
    ],
  });

describe.skipIf(nativeSkipReason !== undefined)('convolutions whose channels split the blocks of a product', () => {
  it('track the tfjs learner over 20 Adam steps', async () => {
    await compareWithTfjs(() => oddChannels(91, false), imageTask(91, [8, 8, 20], 4, 12), adam20(6), 91);
  }, 120_000);
  it('give the same bits on one and two threads, a packing shared by the threads too', async () => {
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 4, innerBatch: 9 };
    // Twice: the second call's products read the packings the first call's last steps made.
    await expectThreadsAgree(() => oddChannels(92, true), imageTask(92, [8, 8, 20], 4, 13), [1, 2].map((r) => ({ inner, rng: () => Rng.derive(92, r) })));
  }, 120_000);
});

// Max poolings that alone read a convolution's output run inside that convolution's forward and
// backward passes. The first (after a fused ReLU, no padding, 62 KB of output per example) a few
// examples at a time: blocks of 6, so a shard of 7 is a block of 6 and one of 1, and its backward
// pass writes each block of the convolution's dy just before that block's input gradient. The
// second (no ReLU, 'same' padding) after the whole product.
const pooledConvs = (s: number): tf.LayersModel =>
  tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [20, 20, 3], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(s) }),
      tf.layers.conv2d({ filters: 48, kernelSize: 3, activation: 'relu', kernelInitializer: init(s + 1) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 20, kernelSize: 3, padding: 'same', kernelInitializer: init(s + 2) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 4, kernelInitializer: init(s + 3) }),
    ],
  });

describe.skipIf(nativeSkipReason !== undefined)('max poolings run inside the convolution below them', () => {
  it('track the tfjs learner over 4 Adam steps', async () => {
    await compareWithTfjs(() => pooledConvs(95), imageTask(95, [20, 20, 3], 4, 13), { optimizer: 'adam', learningRate: 0.003, innerIters: 4, innerBatch: 13 }, 95);
  }, 120_000);
  it('give the same bits on one and two threads', async () => {
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 3, innerBatch: 13 };
    await expectThreadsAgree(() => pooledConvs(96), imageTask(96, [20, 20, 3], 4, 13), [1, 2].map((r) => ({ inner, rng: () => Rng.derive(96, r) })));
  }, 120_000);
});

/** Sine regression through a functional graph: two tanh layers, their sum, the first concatenated with it. */
const sineGraph = (): tf.LayersModel =>
  graph([1], (x) => {
    const h1 = apply(tf.layers.dense({ units: 8, activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed: 81 }) }), x);
    const h2 = apply(tf.layers.dense({ units: 8, activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed: 82 }) }), h1);
    const cat = apply(tf.layers.concatenate(), [h1, apply(tf.layers.add(), [h1, h2])]);
    return apply(tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: 83 }) }), cat);
  });

describe('a functional model on the threads executor', () => {
  let threads: ThreadsExecutor;
  beforeAll(() => {
    threads = new ThreadsExecutor({ workers: 2 });
  });
  afterAll(async () => {
    await threads.close();
  });
  const kinds = (['tfjs', 'native'] as const).filter((k) => k === 'tfjs' || nativeSkipReason === undefined);
  const config = { seed: 5, metaIters: 4, metaBatch: 3, innerIters: 3, innerBatch: 5, learningRate: 0.02, optimizer: 'adam' as const, innerState: 'shared' as const };
  async function trained(kind: 'tfjs' | 'native', executor?: Executor): Promise<Float32Array> {
    const model = sineGraph();
    const learner: Learner = createLearner({ model, learner: kind, innerState: 'shared' });
    try {
      await metaTrain({ learner, source: new SineTaskSource({ shots: 5 }), config, ...(executor ? { executor } : {}) });
      return learner.getParams().data.slice();
    } finally {
      learner.dispose();
      model.dispose();
    }
  }
  for (const kind of kinds) {
    it(`gives the inline executor's parameters bit for bit (${kind})`, async () => {
      expect(await trained(kind, threads)).toEqual(await trained(kind));
    }, 120_000);
  }
});

describe.skipIf(nativeSkipReason !== undefined)('what the engine does not compile', () => {
  const cases: { name: string; model: () => tf.LayersModel; message: RegExp }[] = [
    {
      name: 'a model with two inputs',
      model: () => {
        const a = tf.input({ shape: [4] });
        const b = tf.input({ shape: [4] });
        return tf.model({ inputs: [a, b], outputs: apply(tf.layers.dense({ units: 2 }), apply(tf.layers.add(), [a, b])) });
      },
      message: /^model '[^']+' has 2 inputs and 1 outputs \(the native engine compiles one input and one output\); the native engine supports .*: use the tfjs learner/,
    },
    {
      name: 'Maximum (a merge layer it has no op for)',
      model: () => graph([4], (x) => apply(tf.layers.dense({ units: 2 }), apply(tf.layers.maximum({ name: 'most' }), [x, apply(tf.layers.dense({ units: 4 }), x)]))),
      message: /^layer 'most' \(Maximum\) is not supported; /,
    },
    {
      name: 'an RNN',
      model: () => tf.sequential({ layers: [tf.layers.simpleRNN({ name: 'rnn', inputShape: [5, 3], units: 4 }), tf.layers.dense({ units: 2 })] }),
      message: /^layer 'rnn' \(SimpleRNN\) is not supported; /,
    },
    {
      name: 'a layer applied twice (shared weights)',
      model: () => {
        const shared = tf.layers.dense({ units: 4, name: 'shared' });
        return graph([4], (x) => apply(tf.layers.dense({ units: 2 }), apply(shared, apply(shared, x))));
      },
      message: /^layer 'shared' \(Dense\) is applied more than once \(shared weights\); /,
    },
  ];
  for (const c of cases) {
    it(`${c.name}: one line naming it; auto falls back to tfjs and says why`, () => {
      const model = c.model();
      expect(() => compileModel(model)).toThrow(UnsupportedModelError);
      expect(() => compileModel(model)).toThrow(c.message);
      expect(() => new NativeLearner({ model })).toThrow(c.message);
      const lines: string[] = [];
      const learner = createLearner({ model, learner: 'auto', log: (line) => lines.push(line) });
      expect(learner).toBeInstanceOf(TfjsLearner);
      expect(lines.length).toBeLessThanOrEqual(1);
      for (const line of lines) expect(line).not.toContain('\n');
      learner.dispose();
      model.dispose();
    });
  }
});

