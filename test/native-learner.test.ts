import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { reptileUpdate } from '../src/core/meta-update.js';
import { Params } from '../src/core/params.js';
import { Rng } from '../src/core/rng.js';
import { selectBackend } from '../src/engine/backend.js';
import { createLearner } from '../src/learners/create-learner.js';
import type { AdaptResult, InnerOptions, TaskScoring } from '../src/learners/learner.js';
import { NativeLearner } from '../src/learners/native-learner.js';
import { UnsupportedModelError } from '../src/_utils/errors.js';
import { TfjsLearner } from '../src/learners/tfjs.js';
import type { Task } from '../src/tasks/task.js';
import { SineTaskSource } from '../src/tasks/sine.js';
import { InlineExecutor } from '../src/exec/inline.js';
import { evaluate, evaluateMany, scoreTask, taskScoring } from '../src/train/evaluate.js';
import { runMetaLoop } from '../src/train/meta-loop.js';
import { init, nativeSkipReason, randomTask, relErr } from './native-helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TOL = 1e-4;

beforeAll(async () => {
  await selectBackend('cpu');
});

/** A small Omniglot-style net: conv (bias) → BN → ReLU twice, on non-square one-channel images. */
function convNet(seed: number, options: { convBias?: boolean; classes?: number } = {}): tf.Sequential {
  const convBias = options.convBias ?? true;
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [11, 8, 1], filters: 6, kernelSize: 3, strides: 2, padding: 'same', useBias: convBias, kernelInitializer: init(seed), biasInitializer: init(seed + 1) }),
      tf.layers.batchNormalization({ gammaInitializer: init(seed + 2), betaInitializer: init(seed + 3) }),
      tf.layers.reLU(),
      tf.layers.conv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', useBias: convBias, kernelInitializer: init(seed + 4), biasInitializer: init(seed + 5) }),
      tf.layers.batchNormalization({ epsilon: 1e-5 }),
      tf.layers.reLU(),
      tf.layers.maxPooling2d({ poolSize: 2, strides: 1, padding: 'valid' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: options.classes ?? 3, kernelInitializer: init(seed + 6) }),
    ],
  });
}

/**
 * Conv, batch norm, ReLU, 2×2 max pooling with 20 channels (vectors of 16 or 8 and a tail of 4), then
 * conv, batch norm (no ReLU), pooling: the engine pools each batch norm's values as its apply pass
 * computes them, through the ReLU or not, without writing the batch norm's output.
 */
function bnPoolNet(seed: number): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 20, kernelSize: 3, padding: 'same', kernelInitializer: init(seed), biasInitializer: init(seed + 1) }),
      tf.layers.batchNormalization({ gammaInitializer: init(seed + 2), betaInitializer: init(seed + 3) }),
      tf.layers.reLU(),
      tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
      tf.layers.conv2d({ filters: 18, kernelSize: 3, padding: 'same', kernelInitializer: init(seed + 4), biasInitializer: init(seed + 5) }),
      tf.layers.batchNormalization({ epsilon: 1e-5 }),
      tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3, kernelInitializer: init(seed + 6) }),
    ],
  });
}

/**
 * Model shapes that used to fall back to tfjs: a Keras-style softmax classifier, the seed's MLP
 * (dense relu → dense sigmoid, binary cross-entropy per class), a one-unit sigmoid for two
 * classes, ELU / LeakyReLU / selu / swish / relu6 layers, and a layer-normalised gelu MLP; on 12 inputs, 4
 * classes (2 for one unit).
 */
const headModels: ((seed: number) => tf.Sequential)[] = [
  (seed) => tf.sequential({ layers: [tf.layers.dense({ inputShape: [12], units: 16, activation: 'relu', kernelInitializer: init(seed) }), tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: init(seed + 1) })] }),
  (seed) => tf.sequential({ layers: [tf.layers.dense({ inputShape: [12], units: 10, activation: 'relu', kernelInitializer: init(seed) }), tf.layers.dense({ units: 4, activation: 'sigmoid', kernelInitializer: init(seed + 1) })] }),
  (seed) => tf.sequential({ layers: [tf.layers.dense({ inputShape: [12], units: 8, activation: 'tanh', kernelInitializer: init(seed) }), tf.layers.dense({ units: 1, activation: 'sigmoid', kernelInitializer: init(seed + 1) })] }),
  (seed) =>
    tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [12], units: 12, kernelInitializer: init(seed) }),
        tf.layers.elu(),
        tf.layers.dense({ units: 10, kernelInitializer: init(seed + 1) }),
        tf.layers.leakyReLU({ alpha: 0.1 }),
        tf.layers.dense({ units: 8, activation: 'selu', kernelInitializer: init(seed + 2) }),
        tf.layers.dense({ units: 8, activation: 'swish', kernelInitializer: init(seed + 3) }),
        tf.layers.dense({ units: 4, activation: 'relu6', kernelInitializer: init(seed + 4) }),
        tf.layers.dense({ units: 4, kernelInitializer: init(seed + 5) }),
      ],
    }),
  (seed) =>
    tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [12], units: 16, kernelInitializer: init(seed) }),
        tf.layers.layerNormalization({ gammaInitializer: init(seed + 1), betaInitializer: init(seed + 2) }),
        tf.layers.dense({ units: 8, activation: 'gelu', kernelInitializer: init(seed + 3) }),
        tf.layers.dropout({ rate: 0 }),
        tf.layers.dense({ units: 4, kernelInitializer: init(seed + 4) }),
      ],
    }),
];

function sineNet(seed: number): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [1], units: 16, activation: 'tanh', kernelInitializer: init(seed) }),
      tf.layers.dense({ units: 16, activation: 'relu', kernelInitializer: init(seed + 1) }),
      tf.layers.dense({ units: 1, kernelInitializer: init(seed + 2) }),
    ],
  });
}

/**
 * Which pieces to compare. A conv bias that feeds a batch norm has a gradient that is exactly zero
 * in exact arithmetic; both engines compute float32 rounding noise (~1e-9) for it, which Adam then
 * scales up to ±learning-rate steps, differently in each engine. Those pieces are left out (the
 * batch norm removes them from every output, which the prediction check confirms).
 */
function comparable(learner: NativeLearner): boolean[] {
  const feedsBn = new Set<string>();
  const layers = learner.model.layers;
  layers.forEach((l, i) => {
    if (l.getClassName() === 'Conv2D' && layers[i + 1]?.getClassName() === 'BatchNormalization') {
      for (const w of l.trainableWeights) if (w.originalName.endsWith('/bias')) feedsBn.add(w.originalName);
    }
  });
  return learner.layout.specs.map((s) => !feedsBn.has(s.name));
}

function expectClose(a: Params, b: Params, keep: boolean[], what: string): void {
  const pa: number[] = [];
  const pb: number[] = [];
  keep.forEach((k, i) => {
    if (!k) return;
    pa.push(...a.piece(i));
    pb.push(...b.piece(i));
  });
  expect(relErr(pa, pb), what).toBeLessThanOrEqual(TOL);
}

async function compareInnerLoops(options: { model: () => tf.Sequential; tasks: Task[]; inner: InnerOptions; innerState?: 'carry' | 'reset'; seed: number }): Promise<void> {
  const nativeLearner = new NativeLearner({ model: options.model(), ...(options.innerState ? { innerState: options.innerState } : {}) });
  const tfjsLearner = new TfjsLearner({ model: options.model(), ...(options.innerState ? { innerState: options.innerState } : {}) });
  const keep = comparable(nativeLearner);
  for (let t = 0; t < options.tasks.length; t++) {
    const task = options.tasks[t]!;
    const a = await nativeLearner.adapt(task, options.inner, Rng.derive(options.seed, t));
    const b = await tfjsLearner.adapt(task, options.inner, Rng.derive(options.seed, t));
    expectClose(a.params, b.params, keep, `adapted weights, task ${t}`);
    expectClose(a.lastStep, b.lastStep, keep, `last step, task ${t}`);
    expect(Math.abs(a.loss - b.loss) / Math.abs(b.loss), `loss, task ${t}`).toBeLessThanOrEqual(TOL);
    // Predictions with the adapted weights agree too (the pieces left out above do not matter).
    nativeLearner.setParams(a.params);
    tfjsLearner.setParams(b.params);
    expect(relErr(nativeLearner.predict(task.query), tfjsLearner.predict(task.query)), `predictions, task ${t}`).toBeLessThanOrEqual(TOL);
    // Reptile-style: move φ towards the adapted weights, the same φ for both.
    const phi = tfjsLearner.getParams();
    nativeLearner.setParams(phi);
    tfjsLearner.setParams(phi);
  }
  const sa = nativeLearner.getOptimizerState();
  const sb = tfjsLearner.getOptimizerState();
  expect(sa?.kind).toBe(sb?.kind);
  expect(sa?.step).toBe(sb?.step);
  if (sb?.kind === 'adam') {
    const keepIdx = (p: Float32Array): number[] => {
      const out: number[] = [];
      const view = new Params(nativeLearner.layout, p);
      keep.forEach((k, i) => k && out.push(...view.piece(i)));
      return out;
    };
    expect(relErr(keepIdx(sa!.m!), keepIdx(sb.m!)), 'Adam m').toBeLessThanOrEqual(TOL);
    expect(relErr(keepIdx(sa!.v!), keepIdx(sb.v!)), 'Adam v').toBeLessThanOrEqual(TOL * 10);
  }
  nativeLearner.dispose();
  tfjsLearner.dispose();
}

describe.skipIf(nativeSkipReason !== undefined)('lossDivisor', () => {
  // One SGD step on the summed loss divided by d is the mean's step times batch / d.
  it('scales one SGD step by batch / lossDivisor in both learners; the batch size as divisor is the mean, bit for bit', async () => {
    const task = randomTask({ rng: Rng.derive(11, 0), count: 8, shape: [11, 8, 1], classes: 3 });
    const sgd: InnerOptions = { optimizer: 'sgd', learningRate: 0.05, innerIters: 1, innerBatch: 4 };
    for (const make of [(m: tf.Sequential) => new NativeLearner({ model: m }), (m: tf.Sequential) => new TfjsLearner({ model: m })]) {
      const learner = make(convNet(11));
      const phi = learner.getParams();
      const delta = async (inner: InnerOptions): Promise<Float32Array> => {
        const r = await learner.adapt(task, inner, Rng.derive(11, 1));
        return r.params.data.map((w, i) => w - phi.data[i]!);
      };
      const mean = await delta(sgd);
      const tenth = await delta({ ...sgd, lossDivisor: 40 });
      const sum = await delta({ ...sgd, lossDivisor: 1 });
      expect(relErr(tenth, mean.map((x) => x / 10))).toBeLessThan(1e-5);
      expect(relErr(sum, mean.map((x) => x * 4))).toBeLessThan(1e-5);
      if (learner instanceof NativeLearner) expect(Buffer.from((await delta({ ...sgd, lossDivisor: 4 })).buffer).equals(Buffer.from(mean.buffer))).toBe(true);
      learner.dispose();
    }
  });

  it('is refused when not a positive number', async () => {
    const learner = new NativeLearner({ model: convNet(12) });
    const task = randomTask({ rng: Rng.derive(12, 0), count: 4, shape: [11, 8, 1], classes: 3 });
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(learner.adapt(task, { optimizer: 'sgd', learningRate: 0.1, innerIters: 1, innerBatch: 2, lossDivisor: bad }, Rng.derive(12, 1))).rejects.toThrow(/`lossDivisor` must be a positive number/);
    }
    learner.dispose();
  });
});

describe.skipIf(nativeSkipReason !== undefined)('NativeLearner equals TfjsLearner over whole inner loops', () => {
  const classTasks = (seed: number, count: number, classes = 3): Task[] =>
    Array.from({ length: 3 }, (_, t) => randomTask({ rng: Rng.derive(seed, 100 + t), count, shape: [11, 8, 1], classes }));

  it('Adam (β1 = 0), state carried across tasks, conv + BN + pool net', async () => {
    for (const seed of [1, 2]) {
      await compareInnerLoops({ model: () => convNet(seed), tasks: classTasks(seed, 12), inner: { optimizer: 'adam', learningRate: 0.01, innerIters: 5, innerBatch: 5 }, seed });
    }
  });

  it('Adam (β1 = 0) on conv, batch norm, ReLU and pooling with 20 and 18 channels, the pooling run by the batch norm', async () => {
    const tasks = Array.from({ length: 3 }, (_, t) => randomTask({ rng: Rng.derive(11, 100 + t), count: 12, shape: [8, 8, 3], classes: 3 }));
    await compareInnerLoops({ model: () => bnPoolNet(11), tasks, inner: { optimizer: 'adam', learningRate: 0.01, innerIters: 5, innerBatch: 6 }, seed: 11 });
  });

  it('Adam with β1 = 0.9 and reset state; SGD; batches spanning two shuffles', async () => {
    await compareInnerLoops({ model: () => convNet(3, { convBias: false }), tasks: classTasks(3, 7), inner: { optimizer: 'adam', learningRate: 0.005, beta1: 0.9, beta2: 0.99, epsilon: 1e-7, innerIters: 4, innerBatch: 4 }, innerState: 'reset', seed: 3 });
    await compareInnerLoops({ model: () => convNet(4), tasks: classTasks(4, 9), inner: { optimizer: 'sgd', learningRate: 0.05, innerIters: 6, innerBatch: 4 }, seed: 4 });
  });

  it('a loss summed and divided by lossDivisor (supervised-reptile\'s sum): Adam carried across tasks, and MSE with SGD', async () => {
    await compareInnerLoops({ model: () => convNet(7), tasks: classTasks(7, 12), inner: { optimizer: 'adam', learningRate: 0.01, innerIters: 5, innerBatch: 5, lossDivisor: 10 }, seed: 7 });
    const tasks = Array.from({ length: 3 }, (_, t) => randomTask({ rng: Rng.derive(8, t), count: 10, shape: [1], outputs: 1 }));
    await compareInnerLoops({ model: () => sineNet(8), tasks, inner: { optimizer: 'sgd', learningRate: 0.02, innerIters: 4, innerBatch: 5, lossDivisor: 2 }, seed: 8 });
  });

  it('sine regression (MSE, tanh/relu dense net), batch 1 and the full set', async () => {
    const tasks = Array.from({ length: 3 }, (_, t) => randomTask({ rng: Rng.derive(5, t), count: 10, shape: [1], outputs: 1 }));
    await compareInnerLoops({ model: () => sineNet(5), tasks, inner: { optimizer: 'sgd', learningRate: 0.02, innerIters: 5, innerBatch: 1 }, seed: 5 });
    await compareInnerLoops({ model: () => sineNet(6), tasks, inner: { optimizer: 'adam', learningRate: 0.01, innerIters: 8, innerBatch: 10 }, seed: 6 });
  });

  it('heads and activations people bring: softmax and sigmoid outputs, elu, leakyReLU, selu, swish, layer norm, gelu (20 Adam steps)', async () => {
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 20, innerBatch: 5 };
    const flat = (seed: number, classes: number): Task[] => Array.from({ length: 2 }, (_, t) => randomTask({ rng: Rng.derive(seed, 200 + t), count: 12, shape: [12], classes }));
    for (const [i, model] of headModels.entries()) {
      const seed = 30 + i;
      const classes = model(seed).outputs[0]!.shape[1] === 1 ? 2 : 4;
      await compareInnerLoops({ model: () => model(seed), tasks: flat(seed, classes), inner, seed });
    }
  });

  it('a Keras-style convnet (zero padding, conv elu, average pooling, dropout 0, global average pooling, softmax) over 20 Adam steps', async () => {
    const keras = (seed: number): tf.Sequential =>
      tf.sequential({
        layers: [
          tf.layers.zeroPadding2d({ inputShape: [11, 8, 1], padding: [[1, 0], [0, 1]] }),
          tf.layers.conv2d({ filters: 6, kernelSize: 3, activation: 'elu', kernelInitializer: init(seed) }),
          tf.layers.averagePooling2d({ poolSize: 2 }),
          tf.layers.dropout({ rate: 0 }),
          tf.layers.conv2d({ filters: 8, kernelSize: 2, padding: 'same', kernelInitializer: init(seed + 1) }),
          tf.layers.leakyReLU({ alpha: 0.1 }),
          tf.layers.globalAveragePooling2d({}),
          tf.layers.reshape({ targetShape: [8] }),
          tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(seed + 2) }),
        ],
      });
    expect(createLearner({ model: keras(1), learner: 'auto' })).toBeInstanceOf(NativeLearner);
    await compareInnerLoops({ model: () => keras(71), tasks: classTasks(71, 12), inner: { optimizer: 'adam', learningRate: 0.01, innerIters: 20, innerBatch: 5 }, seed: 71 });
  });

  it('a MobileNet-style stack (depthwise and separable convolutions, batch norm, relu6) over 20 Adam steps', async () => {
    const mobile = (seed: number): tf.Sequential =>
      tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [11, 8, 1], filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: init(seed) }),
          tf.layers.batchNormalization({}),
          tf.layers.reLU({ maxValue: 6 }),
          tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false, depthwiseInitializer: init(seed + 1) }),
          tf.layers.batchNormalization({}),
          tf.layers.reLU({ maxValue: 6 }),
          tf.layers.conv2d({ filters: 12, kernelSize: 1, useBias: false, kernelInitializer: init(seed + 2) }),
          tf.layers.separableConv2d({ filters: 10, kernelSize: 3, strides: 2, padding: 'same', depthMultiplier: 2, activation: 'relu6', depthwiseInitializer: init(seed + 3), pointwiseInitializer: init(seed + 4) }),
          tf.layers.globalAveragePooling2d({}),
          tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(seed + 5) }),
        ],
      });
    expect(createLearner({ model: mobile(1), learner: 'auto' })).toBeInstanceOf(NativeLearner);
    await compareInnerLoops({ model: () => mobile(72), tasks: classTasks(72, 12), inner: { optimizer: 'adam', learningRate: 0.01, innerIters: 20, innerBatch: 5 }, seed: 72 });
    // One and two threads: the same bits.
    const one = new NativeLearner({ model: mobile(73), threads: 1 });
    const two = new NativeLearner({ model: mobile(73), threads: 2 });
    const task = classTasks(73, 12)[0]!;
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 6, innerBatch: 7 };
    const [a, b] = [await one.adapt(task, inner, Rng.derive(73, 1)), await two.adapt(task, inner, Rng.derive(73, 1))];
    expect(b.params.data).toEqual(a.params.data);
    expect(two.gradients(task, task.support).inputGrad).toEqual(one.gradients(task, task.support).inputGrad);
    one.dispose();
    two.dispose();
  });

  it('Adam moments across calls: β1 = 0 then 0.9 carried, one step a call, a reset over a state that was set', async () => {
    // With β1 = 0 the engine writes m only in a loop's last step, which a later call with
    // β1 = 0.9 reads; a reset leaves the moments zero without writing them, so its first step
    // must read neither.
    const nl = new NativeLearner({ model: convNet(11), innerState: 'carry' });
    const tl = new TfjsLearner({ model: convNet(11), innerState: 'carry' });
    const keep = comparable(nl);
    const tasks = classTasks(11, 9);
    const plan: InnerOptions[] = [
      { optimizer: 'adam', learningRate: 0.01, innerIters: 4, innerBatch: 4 },
      { optimizer: 'adam', learningRate: 0.01, beta1: 0.9, innerIters: 3, innerBatch: 4 },
      { optimizer: 'adam', learningRate: 0.01, innerIters: 1, innerBatch: 4 },
      { optimizer: 'adam', learningRate: 0.01, beta1: 0.9, innerIters: 2, innerBatch: 4 },
    ];
    for (let k = 0; k < plan.length; k++) {
      const task = tasks[k % tasks.length]!;
      const a = await nl.adapt(task, plan[k]!, Rng.derive(11, k));
      const b = await tl.adapt(task, plan[k]!, Rng.derive(11, k));
      expectClose(a.params, b.params, keep, `adapted weights, call ${k}`);
      const sa = nl.getOptimizerState()!;
      const sb = tl.getOptimizerState()!;
      expect(sa.step).toBe(sb.step);
      const m = (p: Float32Array): Params => new Params(nl.layout, p);
      expectClose(m(sa.m!), m(sb.m!), keep, `Adam m, call ${k}`);
    }
    // A reset over moments that were set: the first step reads none of them.
    const fresh = new NativeLearner({ model: convNet(11), innerState: 'reset' });
    fresh.setOptimizerState({ kind: 'adam', step: 0, m: new Float32Array(nl.layout.size).fill(1), v: new Float32Array(nl.layout.size).fill(1) });
    const r = await fresh.adapt(tasks[0]!, plan[1]!, Rng.derive(12, 0));
    const reference = new TfjsLearner({ model: convNet(11), innerState: 'reset' });
    const s = await reference.adapt(tasks[0]!, plan[1]!, Rng.derive(12, 0));
    expectClose(r.params, s.params, keep, 'adapted weights after a reset');
    nl.dispose();
    tl.dispose();
    fresh.dispose();
    reference.dispose();
  });

  it('optimizer state and parameters round-trip between the learners', async () => {
    const nl = new NativeLearner({ model: convNet(7) });
    const tl = new TfjsLearner({ model: convNet(7) });
    const task = classTasks(7, 8)[0]!;
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 3, innerBatch: 4 };
    await tl.adapt(task, inner, Rng.derive(7, 1));
    nl.setOptimizerState(tl.getOptimizerState());
    expect(nl.getOptimizerState()!.step).toBe(3);
    const a = await nl.adapt(task, inner, Rng.derive(7, 2));
    const b = await tl.adapt(task, inner, Rng.derive(7, 2));
    expectClose(a.params, b.params, comparable(nl), 'after restoring tfjs Adam state');
    nl.setOptimizerState(undefined);
    expect(nl.getOptimizerState()).toBeUndefined();
    expect(() => nl.setOptimizerState({ kind: 'adam', step: 1, m: new Float32Array(3), v: new Float32Array(3) })).toThrow(/does not fit/);
    expect(() => nl.setParams(new Params(tl.layout, new Float32Array(tl.layout.size)).clone())).not.toThrow();
    nl.dispose();
    tl.dispose();
  });

  it('writeToModel puts the native weights back into the tfjs model', () => {
    const model = convNet(8);
    const nl = new NativeLearner({ model });
    const p = nl.getParams();
    for (let i = 0; i < p.data.length; i++) p.data[i] = Math.sin(i);
    nl.setParams(p);
    nl.writeToModel();
    expect(relErr(new TfjsLearner({ model }).getParams().data, p.data)).toBe(0);
    nl.dispose();
  });

  it('adapt runs off the main thread, serialises calls, and refuses reads while running', async () => {
    const nl = new NativeLearner({ model: convNet(9) });
    const tasks = classTasks(9, 10);
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 5, innerBatch: 5 };
    const long: InnerOptions = { ...inner, innerIters: 2000 };
    const pending = [nl.adapt(tasks[0]!, long, Rng.derive(9, 0)), nl.adapt(tasks[1]!, inner, Rng.derive(9, 1))];
    expect(() => nl.getParams()).toThrow(/adapting/);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const [r0, r1] = await Promise.all(pending);
    clearInterval(timer);
    const seq = new NativeLearner({ model: convNet(9) });
    const s0 = await seq.adapt(tasks[0]!, long, Rng.derive(9, 0));
    const s1 = await seq.adapt(tasks[1]!, inner, Rng.derive(9, 1));
    expect(r0!.params.data).toEqual(s0.params.data);
    expect(r1!.params.data).toEqual(s1.params.data);
    // Timers fired while the 2000-step loop ran: the event loop was free.
    expect(ticks).toBeGreaterThan(0);
    nl.dispose();
    seq.dispose();
  });

  it('bad input: wrong example shape, class count mismatch, unsupported layers name the layer', async () => {
    const nl = new NativeLearner({ model: convNet(10) });
    const wrong = randomTask({ rng: Rng.fromSeed(1), count: 4, shape: [8, 8, 1], classes: 3 });
    expect(() => nl.predict(wrong.support)).toThrow(/do not fit the model's input/);
    const fourWay = randomTask({ rng: Rng.fromSeed(1), count: 4, shape: [11, 8, 1], classes: 4 });
    await expect(nl.adapt(fourWay, { optimizer: 'sgd', learningRate: 0.1, innerIters: 1, innerBatch: 2 }, Rng.fromSeed(1))).rejects.toThrow(/4 classes but the model outputs 3/);
    await expect(nl.adapt(fourWay, { optimizer: 'sgd', learningRate: -1, innerIters: 1, innerBatch: 2 }, Rng.fromSeed(1))).rejects.toThrow(/`learningRate` must be a positive number/);
    const badLabel = randomTask({ rng: Rng.fromSeed(3), count: 4, shape: [11, 8, 1], classes: 3 });
    (badLabel.support.targets as Float32Array)[2] = 3;
    await expect(nl.adapt(badLabel, { optimizer: 'sgd', learningRate: 0.1, innerIters: 1, innerBatch: 2 }, Rng.fromSeed(1))).rejects.toThrow(/class label 3 is not in 0..2/);
    // The engine is still usable after rejected calls.
    expect(nl.predict(randomTask({ rng: Rng.fromSeed(2), count: 3, shape: [11, 8, 1], classes: 3 }).support)).toHaveLength(9);
    const noisy = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 }), tf.layers.gaussianNoise({ stddev: 0.5, name: 'my_noise' })] });
    expect(() => new NativeLearner({ model: noisy })).toThrow(UnsupportedModelError);
    expect(() => new NativeLearner({ model: noisy })).toThrow(/layer 'my_noise' \(GaussianNoise\) is not supported/);
    // tfjs runs logSoftmax (its types leave it out); the engine does not.
    const logSoftmax = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2, activation: 'logSoftmax' as 'linear', name: 'probs' })] });
    expect(() => new NativeLearner({ model: logSoftmax })).toThrow(/layer 'probs' uses activation 'logSoftmax'/);
    // Softmax and sigmoid heads, ELU and LeakyReLU layers compile now: auto picks the engine.
    for (const make of headModels) expect(createLearner({ model: make(1), learner: 'auto' })).toBeInstanceOf(NativeLearner);
    const border = tf.sequential({ layers: [tf.layers.averagePooling2d({ inputShape: [5, 5, 1], poolSize: 2, padding: 'same', name: 'avg' }), tf.layers.flatten()] });
    expect(() => new NativeLearner({ model: border })).toThrow(/layer 'avg' \(AveragePooling2D\) has windows crossing the border of its 5x5 input with padding 'same'/);
    const wrongHead = randomTask({ rng: Rng.fromSeed(4), count: 4, shape: [12], classes: 3 });
    await expect(new NativeLearner({ model: headModels[1]!(1) }).adapt(wrongHead, { optimizer: 'sgd', learningRate: 0.1, innerIters: 1, innerBatch: 2 }, Rng.fromSeed(1))).rejects.toThrow(/3 classes but the model outputs 4 values: give the model one sigmoid output per class/);
    const lines: string[] = [];
    const fallback = createLearner({ model: noisy, learner: 'auto', log: (l) => lines.push(l) });
    expect(fallback).toBeInstanceOf(TfjsLearner);
    expect(lines.join('\n')).toMatch(/tfjs learner \(slower\) because layer 'my_noise'/);
    expect(() => createLearner({ model: noisy, learner: 'native' })).toThrow(/my_noise/);
    expect(createLearner({ model: convNet(10), learner: 'auto' })).toBeInstanceOf(NativeLearner);
    expect(createLearner({ model: convNet(10), learner: 'tfjs' })).toBeInstanceOf(TfjsLearner);
    nl.dispose();
  });

  it('no memory growth over 10,000 adapt calls', async () => {
    const nl = new NativeLearner({ model: sineNet(11) });
    const task = randomTask({ rng: Rng.fromSeed(11), count: 10, shape: [1], outputs: 1 });
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.001, innerIters: 2, innerBatch: 5 };
    const rng = Rng.fromSeed(12);
    // A full collection before each reading, so that garbage does not count as growth.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    // Warm-up until the allocators have reached their working size (a first run grows the heap
    // and malloc's arenas to a plateau, which is not a leak), then 10,000 calls more must add nothing.
    // Buffers handed back to the engine's pool are released by finalizers that run after a
    // collection, in later turns of the event loop: let them run before each reading.
    const settle = async (): Promise<void> => {
      for (let k = 0; k < 3; k++) {
        gc();
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    for (let i = 0; i < 10_000; i++) await nl.adapt(task, inner, rng);
    await settle();
    const before = process.memoryUsage();
    for (let i = 0; i < 10_000; i++) await nl.adapt(task, inner, rng);
    await settle();
    const after = process.memoryUsage();
    // Each call returns two fresh 337-float vectors (~2.7 kB): 10,000 of them leaked would be 27 MB.
    expect(after.external + after.arrayBuffers - before.external - before.arrayBuffers).toBeLessThan(1024 * 1024);
    expect(after.heapUsed - before.heapUsed).toBeLessThan(4 * 1024 * 1024);
    expect(after.rss - before.rss).toBeLessThan(8 * 1024 * 1024);
    nl.dispose();
  });
});

describe('without the native engine', () => {
  const tsx = path.join(root, 'node_modules', '.bin', 'tsx');

  it('REPTILE_NATIVE=off and REPTILE_WASM=off: auto falls back to tfjs, says why once, and still adapts', () => {
    const script = `
      import { createLearner, createSineModel, SineTaskSource, Rng } from './src/index.ts';
      const a = createLearner({ model: createSineModel(), learner: 'auto' });
      const b = createLearner({ model: createSineModel(), learner: 'auto' });
      const task = new SineTaskSource().sample(Rng.fromSeed(1));
      const r = await a.adapt(task, { optimizer: 'sgd', learningRate: 0.01, innerIters: 2, innerBatch: 5 }, Rng.fromSeed(2));
      let nativeError = '';
      try { createLearner({ model: createSineModel(), learner: 'native' }); } catch (e) { nativeError = e.message; }
      console.log(JSON.stringify({ a: a.constructor.name, b: b.constructor.name, finite: Number.isFinite(r.loss), nativeError }));
    `;
    const r = spawnSync(tsx, ['--input-type=module', '-e', script], { cwd: root, env: { ...process.env, REPTILE_NATIVE: 'off', REPTILE_WASM: 'off' }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { a: string; b: string; finite: boolean; nativeError: string };
    expect(out).toMatchObject({ a: 'TfjsLearner', b: 'TfjsLearner', finite: true });
    expect(out.nativeError).toMatch(/native engine is unavailable: it is switched off by REPTILE_NATIVE=off/);
    const notes = r.stderr.split('\n').filter((l) => l.includes('using the tfjs learner'));
    expect(notes).toEqual(['reptile: using the tfjs learner (slower) because the native engine is unavailable: it is switched off by REPTILE_NATIVE=off, and the WebAssembly engine is unavailable: it is switched off by REPTILE_WASM=off']);
  });

  it('a missing addon file is reported, not thrown', () => {
    const script = `import { loadNative } from './src/engine/native.ts'; console.log(JSON.stringify(loadNative()));`;
    const r = spawnSync(tsx, ['--input-type=module', '-e', script], { cwd: root, env: { ...process.env, REPTILE_NATIVE: '', REPTILE_NATIVE_ADDON: '/nonexistent/reptile_native.node' }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual({ ok: false, reason: 'REPTILE_NATIVE_ADDON names /nonexistent/reptile_native.node, which does not exist' });
  });

  it('the install step never fails: a skipped or broken C++ build prints one line and exits 0', () => {
    const skip = spawnSync(process.execPath, [path.join(root, 'native', 'build.mjs')], { env: { ...process.env, REPTILE_SKIP_NATIVE_BUILD: '1' }, encoding: 'utf8' });
    expect(skip.status).toBe(0);
    expect(skip.stdout.trim()).toBe('reptile-ml: native engine not built, falling back to tfjs (slower) because REPTILE_SKIP_NATIVE_BUILD is set');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'reptile-gyp-'));
    try {
      const fakeGyp = path.join(dir, 'node-gyp.js');
      writeFileSync(fakeGyp, "console.error('make: g++: error: simulated compiler failure'); process.exit(1);\n");
      const broken = spawnSync(process.execPath, [path.join(root, 'native', 'build.mjs')], { env: { ...process.env, REPTILE_SKIP_NATIVE_BUILD: '', REPTILE_BUILD_FROM_SOURCE: '1', npm_config_node_gyp: fakeGyp }, encoding: 'utf8' });
      expect(broken.status).toBe(0);
      expect(broken.stdout.trim().split('\n')).toHaveLength(1);
      expect(broken.stdout).toMatch(/^reptile-ml: native engine not built, falling back to tfjs \(slower\) because the C\+\+ build failed \(make: g\+\+: error: simulated compiler failure; full log in native\/build.log\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(nativeSkipReason !== undefined)('NativeLearner.adaptTasks', () => {
  it('equals awaiting adapt task by task (Adam state carried in order), in one call', async () => {
    const tasks = Array.from({ length: 4 }, (_, t) => randomTask({ rng: Rng.derive(21, t), count: 9, shape: [11, 8, 1], classes: 3 }));
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 3, innerBatch: 4 };
    const one = new NativeLearner({ model: convNet(21) });
    const many = new NativeLearner({ model: convNet(21) });
    const seq: AdaptResult[] = [];
    for (let t = 0; t < tasks.length; t++) seq.push(await one.adapt(tasks[t]!, inner, Rng.derive(21, 100 + t)));
    const batched = await many.adaptTasks(tasks.map((task, t) => ({ task, rng: Rng.derive(21, 100 + t) })), inner);
    expect(batched).toHaveLength(4);
    batched.forEach((r, t) => {
      expect(r.params.data).toEqual(seq[t]!.params.data);
      expect(r.lastStep.data).toEqual(seq[t]!.lastStep.data);
      expect(r.loss).toBe(seq[t]!.loss);
    });
    expect(many.getOptimizerState()).toEqual(one.getOptimizerState());
    expect(await many.adaptTasks([], inner)).toEqual([]);
    one.dispose();
    many.dispose();
  });
});

describe.skipIf(nativeSkipReason !== undefined)('batch-norm moving statistics', () => {
  it('track tfjs through adapt, and predict in inference mode (batchStatsAtTest: false) equals tfjs', async () => {
    const nl = new NativeLearner({ model: convNet(31), batchStatsAtTest: false });
    const tl = new TfjsLearner({ model: convNet(31), batchStatsAtTest: false });
    const tasks = Array.from({ length: 2 }, (_, t) => randomTask({ rng: Rng.derive(31, t), count: 8, shape: [11, 8, 1], classes: 3 }));
    const inner: InnerOptions = { optimizer: 'sgd', learningRate: 0.05, innerIters: 4, innerBatch: 4 };
    for (let t = 0; t < tasks.length; t++) {
      await nl.adapt(tasks[t]!, inner, Rng.derive(31, 50 + t));
      await tl.adapt(tasks[t]!, inner, Rng.derive(31, 50 + t));
    }
    expect(relErr(nl.predict(tasks[0]!.query), tl.predict(tasks[0]!.query))).toBeLessThanOrEqual(TOL);
    // writeToModel carries the moving statistics into the tfjs model as well.
    nl.writeToModel();
    const movingOf = (m: tf.LayersModel): number[] => m.layers.flatMap((l) => l.weights.filter((w) => w.originalName.includes('moving')).flatMap((w) => [...(w.read().dataSync() as Float32Array)]));
    expect(relErr(movingOf(nl.model), movingOf(tl.model))).toBeLessThanOrEqual(TOL);
    nl.dispose();
    tl.dispose();
  });
});

describe.skipIf(nativeSkipReason !== undefined)('two threads', () => {
  it('give bit-identical results to one thread (the same two shards per batch, summed in the same order)', async () => {
    const tasks = Array.from({ length: 3 }, (_, t) => randomTask({ rng: Rng.derive(41, t), count: 40, shape: [11, 8, 1], classes: 3 }));
    const one = new NativeLearner({ model: convNet(41), threads: 1 });
    const two = new NativeLearner({ model: convNet(41), threads: 2 });
    expect([one.threads, two.threads]).toEqual([1, 2]);
    // Even and odd batches (shards of 10 + 10, 4 + 3), and batch 1 (the second shard empty).
    for (const innerBatch of [20, 7, 1]) {
      const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 6, innerBatch };
      for (let t = 0; t < tasks.length; t++) {
        const a = await one.adapt(tasks[t]!, inner, Rng.derive(41, 9, t, innerBatch));
        const b = await two.adapt(tasks[t]!, inner, Rng.derive(41, 9, t, innerBatch));
        expect(b.params.data).toEqual(a.params.data);
        expect(b.lastStep.data).toEqual(a.lastStep.data);
        expect(b.loss).toBe(a.loss);
      }
    }
    const many = tasks.map((task, t) => ({ task, rng: Rng.derive(41, 10, t) }));
    const inner: InnerOptions = { optimizer: 'sgd', learningRate: 0.05, innerIters: 3, innerBatch: 9 };
    const [a, b] = [await one.adaptTasks(many, inner), await two.adaptTasks(tasks.map((task, t) => ({ task, rng: Rng.derive(41, 10, t) })), inner)];
    expect(b.map((r) => [...r.params.data])).toEqual(a.map((r) => [...r.params.data]));
    const big = randomTask({ rng: Rng.fromSeed(42), count: 201, shape: [11, 8, 1], classes: 3 });
    expect(two.predict(big.support)).toEqual(one.predict(big.support));
    for (const count of [1, 2, 5]) {
      const set = { ...big.support, count, inputs: big.support.inputs.subarray(0, count * 88), targets: big.support.targets.subarray(0, count) };
      const g1 = one.gradients(big, set);
      const g2 = two.gradients(big, set);
      expect(g2.grad.data).toEqual(g1.grad.data);
      expect(g2.inputGrad).toEqual(g1.inputGrad);
      expect(g2.loss).toBe(g1.loss);
    }
    one.dispose();
    two.dispose();
  });

  it('regression (mean squared error) and transductive prediction agree too', async () => {
    const task = randomTask({ rng: Rng.fromSeed(43), count: 15, shape: [1], outputs: 1 });
    const one = new NativeLearner({ model: sineNet(43), threads: 1 });
    const two = new NativeLearner({ model: sineNet(43), threads: 2 });
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.02, innerIters: 8, innerBatch: 5 };
    const a = await one.adapt(task, inner, Rng.fromSeed(44));
    const b = await two.adapt(task, inner, Rng.fromSeed(44));
    expect(b.params.data).toEqual(a.params.data);
    expect(b.loss).toBe(a.loss);
    const conv1 = new NativeLearner({ model: convNet(45), threads: 1, batchStatsAtTest: true });
    const conv2 = new NativeLearner({ model: convNet(45), threads: 2, batchStatsAtTest: true });
    const set = randomTask({ rng: Rng.fromSeed(46), count: 13, shape: [11, 8, 1], classes: 3 }).support;
    expect(conv2.predict(set)).toEqual(conv1.predict(set));
    for (const l of [one, two, conv1, conv2]) l.dispose();
  });

  it('softmax and sigmoid heads and the new activations give the same bits too', async () => {
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 6, innerBatch: 7 };
    for (const [i, make] of headModels.entries()) {
      const classes = make(1).outputs[0]!.shape[1] === 1 ? 2 : 4;
      const task = randomTask({ rng: Rng.derive(47, i), count: 15, shape: [12], classes });
      const one = new NativeLearner({ model: make(47), threads: 1 });
      const two = new NativeLearner({ model: make(47), threads: 2 });
      const a = await one.adapt(task, inner, Rng.derive(48, i));
      const b = await two.adapt(task, inner, Rng.derive(48, i));
      expect(b.params.data).toEqual(a.params.data);
      expect(b.loss).toBe(a.loss);
      expect(two.predict(task.support)).toEqual(one.predict(task.support));
      const g1 = one.gradients(task, task.support);
      const g2 = two.gradients(task, task.support);
      expect(g2.grad.data).toEqual(g1.grad.data);
      expect(g2.inputGrad).toEqual(g1.inputGrad);
      for (const l of [one, two]) l.dispose();
    }
  });
});

describe.skipIf(nativeSkipReason !== undefined)('Dropout', () => {
  const F = 20;
  const dropoutNet = (seed: number, rate: number): tf.Sequential =>
    tf.sequential({ layers: [tf.layers.dense({ inputShape: [F], units: 16, activation: 'relu', kernelInitializer: init(seed) }), tf.layers.dropout({ rate }), tf.layers.dense({ units: 4, kernelInitializer: init(seed + 1) })] });
  const task = (seed: number, count = 24): Task => randomTask({ rng: Rng.derive(seed, 300), count, shape: [F], classes: 4 });
  const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 20, innerBatch: 6 };

  it('rate 0 equals the tfjs learner over 20 Adam steps', async () => {
    await compareInnerLoops({ model: () => dropoutNet(51, 0), tasks: [task(51), task(52)], inner, seed: 51 });
  });

  it('masks follow the task: the same rng gives the same bits (1 and 2 threads), another seed other gradients; prediction drops nothing', async () => {
    // Adam's state reset before each task, so that adapting twice starts from the same state.
    const one = new NativeLearner({ model: dropoutNet(53, 0.4), threads: 1, innerState: 'reset' });
    const two = new NativeLearner({ model: dropoutNet(53, 0.4), threads: 2, innerState: 'reset' });
    const t = task(53);
    const a = await one.adapt(t, inner, Rng.derive(53, 1));
    const b = await two.adapt(t, inner, Rng.derive(53, 1));
    const again = await one.adapt(t, inner, Rng.derive(53, 1));
    expect(b.params.data).toEqual(a.params.data);
    expect(again.params.data).toEqual(a.params.data);
    expect(b.loss).toBe(a.loss);
    const g1 = one.gradients(t, t.support, { dropoutSeed: 7 });
    const g2 = one.gradients(t, t.support, { dropoutSeed: 8 });
    expect(two.gradients(t, t.support, { dropoutSeed: 7 }).grad.data).toEqual(g1.grad.data);
    expect(g2.grad.data).not.toEqual(g1.grad.data);
    // Prediction (and gradients without a seed) run the network without dropout: as tfjs in inference.
    const plain = tf.sequential({ layers: [tf.layers.dense({ inputShape: [F], units: 16, activation: 'relu', kernelInitializer: init(53) }), tf.layers.dense({ units: 4, kernelInitializer: init(54) })] });
    const withDropout = dropoutNet(53, 0.4);
    const nl = new NativeLearner({ model: withDropout });
    expect(relErr(nl.predict(t.support), (plain.predict(tf.tensor(t.support.inputs, [t.support.count, F])) as tf.Tensor).dataSync())).toBeLessThanOrEqual(TOL);
    expect(nl.gradients(t, t.support).output).toEqual(nl.predict(t.support));
    for (const l of [one, two, nl]) l.dispose();
  });

  it('drops values at the rate and scales the rest by 1 / (1 − rate); gradients equal tfjs autograd given the same mask', () => {
    for (const rate of [0.1, 0.5, 0.8]) {
      const rng = Rng.derive(55, rate * 10);
      const set = randomTask({ rng, count: 60, shape: [F], outputs: F }).support;
      const regression: Task = { kind: 'regression', support: set, query: set };
      // Dropout alone: its output is the input times the mask.
      const alone = new NativeLearner({ model: tf.sequential({ layers: [tf.layers.dropout({ inputShape: [F], rate })] }) });
      const masked = alone.gradients(regression, set, { dropoutSeed: 99 }).output;
      let dropped = 0;
      const mask = new Float32Array(masked.length);
      for (let i = 0; i < masked.length; i++) {
        mask[i] = masked[i]! / set.inputs[i]!;
        if (masked[i] === 0) dropped++;
        else expect(Math.abs(mask[i]! - 1 / (1 - rate))).toBeLessThan(1e-5);
      }
      // 1200 draws: within 4.5 standard deviations of the rate.
      const sd = Math.sqrt((rate * (1 - rate)) / masked.length);
      expect(Math.abs(dropped / masked.length - rate)).toBeLessThan(4.5 * sd);
      // The same seed, op and rows in a network: tfjs with that mask fed in gives the same gradients.
      const model = tf.sequential({ layers: [tf.layers.dropout({ inputShape: [F], rate }), tf.layers.dense({ units: 3, kernelInitializer: init(56) })] });
      const three = randomTask({ rng, count: 60, shape: [F], outputs: 3 });
      const nl = new NativeLearner({ model });
      const got = nl.gradients(three, { ...three.support, inputs: set.inputs }, { dropoutSeed: 99 });
      const dense = model.layers[1]!;
      const [W, b] = dense.trainableWeights.map((w) => w.read());
      const x = tf.tensor(set.inputs, [60, F]);
      const m = tf.tensor(mask, [60, F]);
      const y = tf.tensor(three.support.targets, [60, 3]);
      const f = (xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor): tf.Scalar => tf.losses.meanSquaredError(y, tf.add(tf.matMul(tf.mul(xx, m), ww), bb)) as tf.Scalar;
      const [gx, gw, gb] = tf.grads(f)([x, W!, b!]);
      expect(relErr(got.inputGrad, gx!.dataSync())).toBeLessThanOrEqual(TOL);
      expect(relErr(got.grad.data, [...gw!.dataSync(), ...gb!.dataSync()])).toBeLessThanOrEqual(TOL);
      expect(Math.abs(got.loss - f(x, W!, b!).dataSync()[0]!)).toBeLessThanOrEqual(TOL * got.loss);
      alone.dispose();
      nl.dispose();
    }
  });
});

describe.skipIf(nativeSkipReason !== undefined)('frozen layers', () => {
  /** A frozen conv + BN extractor, a trainable conv + BN block, a dense head (convNet's shapes). */
  const frozenNet = (seed: number): tf.Sequential => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [11, 8, 1], filters: 6, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: init(seed), biasInitializer: init(seed + 1) }),
        tf.layers.batchNormalization({ gammaInitializer: init(seed + 2), betaInitializer: init(seed + 3) }),
        tf.layers.reLU(),
        tf.layers.conv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: init(seed + 4), biasInitializer: init(seed + 5) }),
        tf.layers.batchNormalization({ gammaInitializer: init(seed + 6), betaInitializer: init(seed + 7) }),
        tf.layers.reLU(),
        tf.layers.flatten(),
        tf.layers.dense({ units: 3, kernelInitializer: init(seed + 8) }),
      ],
    });
    model.layers[0]!.trainable = false;
    model.layers[1]!.trainable = false;
    return model;
  };
  const headOnly = (seed: number): tf.Sequential => {
    const model = frozenNet(seed);
    for (const i of [3, 4]) model.layers[i]!.trainable = false;
    return model;
  };
  const tasks = (seed: number): Task[] => Array.from({ length: 2 }, (_, t) => randomTask({ rng: Rng.derive(seed, 400 + t), count: 12, shape: [11, 8, 1], classes: 3 }));
  const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 20, innerBatch: 5 };

  it('equal the tfjs learner over 20 Adam steps (frozen extractor under a trainable block; frozen all but the head)', async () => {
    await compareInnerLoops({ model: () => frozenNet(61), tasks: tasks(61), inner, seed: 61 });
    await compareInnerLoops({ model: () => headOnly(62), tasks: tasks(62), inner, seed: 62 });
  });

  it('are not in φ, stay as they were, and give the same bits on one and two threads', async () => {
    const model = frozenNet(63);
    const frozenBefore = model.layers[0]!.getWeights().map((w) => w.dataSync().slice());
    const one = new NativeLearner({ model, threads: 1 });
    const two = new NativeLearner({ model: frozenNet(63), threads: 2 });
    // φ: the trainable block and the head only.
    expect(one.layout.size).toBe(model.trainableWeights.reduce((n, w) => n + w.read().size, 0));
    expect(one.layout.specs.map((s) => s.name).some((n) => n.startsWith(model.layers[0]!.name))).toBe(false);
    for (const innerBatch of [5, 1]) {
      for (const [t, task] of tasks(63).entries()) {
        const a = await one.adapt(task, { ...inner, innerBatch }, Rng.derive(63, t, innerBatch));
        const b = await two.adapt(task, { ...inner, innerBatch }, Rng.derive(63, t, innerBatch));
        expect(b.params.data).toEqual(a.params.data);
        expect(b.loss).toBe(a.loss);
        one.setParams(a.params);
        two.setParams(a.params);
      }
    }
    one.writeToModel();
    model.layers[0]!.getWeights().forEach((w, i) => expect(w.dataSync()).toEqual(frozenBefore[i]));
    one.dispose();
    two.dispose();
  });
});

describe.skipIf(nativeSkipReason !== undefined)('inline executor', () => {
  it('hands the native learner a meta-batch in one adaptTasks call, with the results of one adapt call per task', async () => {
    const batched = new NativeLearner({ model: sineNet(61) });
    const single = new NativeLearner({ model: sineNet(61) });
    // The same learner without adaptTasks: the executor falls back to one adapt call per task.
    const perTask = Object.assign(Object.create(single) as NativeLearner, { adaptTasks: undefined });
    let calls = 0;
    const adaptTasks = batched.adaptTasks.bind(batched);
    batched.adaptTasks = (items, inner) => {
      calls += 1;
      return adaptTasks(items, inner);
    };
    const executor = new InlineExecutor();
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 4, innerBatch: 5 };
    for (let iteration = 0; iteration < 3; iteration++) {
      const request = { source: new SineTaskSource(), seed: 7, iteration, metaBatch: 4, inner };
      const a = await executor.runMetaBatch({ ...request, learner: batched });
      const b = await executor.runMetaBatch({ ...request, learner: perTask });
      expect(a.map((r) => [...r.params.data])).toEqual(b.map((r) => [...r.params.data]));
      expect(a.map((r) => r.loss)).toEqual(b.map((r) => r.loss));
    }
    expect(calls).toBe(3);
    expect(batched.getOptimizerState()).toEqual(single.getOptimizerState());
    batched.dispose();
    single.dispose();
  });
});

describe.skipIf(nativeSkipReason !== undefined)('the Reptile meta-update applied by the engine', () => {
  it('equals core reptileUpdate bit for bit (ε = 0, small, mid, 1; one to five tasks of mixed magnitudes; signed zeros)', () => {
    const learner = new NativeLearner({ model: convNet(71) });
    const rng = Rng.derive(71, 0);
    const size = learner.layout.size;
    const draw = (): Params => new Params(learner.layout, Float32Array.from({ length: size }, () => rng.uniform(-1, 1) * 10 ** Math.floor(rng.uniform(-6, 3))));
    for (const n of [1, 3, 5]) {
      for (const epsilon of [0, 1e-3, 0.37, 1]) {
        const phi = draw();
        const adapted = Array.from({ length: n }, draw);
        // Signed zeros: a sum from +0 turns all −0 terms into +0, as core's does. The last value
        // (of 390, the second half from 208 on) falls past the last whole block of 4 or 8 values
        // (AVX2, AVX-512), into the scalar tail; the portable kernels' blocks of 2 cover it.
        for (const i of [5, size - 1]) for (const a of adapted) a.data[i] = -0;
        adapted[0]!.data[6] = -0;
        learner.setParams(phi);
        expect(learner.applyReptileUpdate(adapted, epsilon)).toBeUndefined();
        const expected = reptileUpdate(phi, adapted, epsilon);
        expect(Buffer.from(learner.getParams().data.buffer).equals(Buffer.from(expected.data.buffer))).toBe(true);
        if (epsilon === 0) expect(learner.getParams().data).toEqual(phi.data);
      }
    }
    learner.dispose();
  });

  it('a value that is not finite is named and φ is left as it was; a vector of another layout is refused', () => {
    const learner = new NativeLearner({ model: convNet(72) });
    const phi = learner.getParams();
    const good = new Params(learner.layout, phi.data.map((x) => x + 0.5));
    const bad = new Params(learner.layout, good.data.slice());
    bad.data[17] = Number.POSITIVE_INFINITY;
    expect(learner.applyReptileUpdate([good, bad], 0.5)).toBe('value 17 is Infinity (not finite)');
    expect(learner.getParams().data).toEqual(phi.data);
    const short = new Params({ ...learner.layout, size: learner.layout.size - 1 }, good.data.subarray(1));
    expect(() => learner.applyReptileUpdate([good, short], 0.5)).toThrow(/do not fit this model/);
    expect(() => learner.applyReptileUpdate([], 0.5)).toThrow(/at least one/);
    expect(learner.getParams().data).toEqual(phi.data);
    expect(learner.applyReptileUpdate([good], 1)).toBeUndefined();
    expect(learner.getParams().data).toEqual(good.data);
    learner.dispose();
  });

  it('metaTrain gives the same φ and Adam state with it as with the update in JavaScript (ε annealed 1 → 0)', async () => {
    const inPlace = new NativeLearner({ model: sineNet(73) });
    const plain = new NativeLearner({ model: sineNet(73) });
    const js = Object.assign(Object.create(plain) as NativeLearner, { applyReptileUpdate: undefined });
    let calls = 0;
    const apply = inPlace.applyReptileUpdate.bind(inPlace);
    inPlace.applyReptileUpdate = (adapted, epsilon) => {
      calls += 1;
      return apply(adapted, epsilon);
    };
    const config = { metaIters: 4, metaBatch: 3, metaStep: 1, metaStepFinal: 0, innerIters: 3, innerBatch: 5, learningRate: 0.01, optimizer: 'adam' as const, innerState: 'carry' as const, seed: 5 };
    await runMetaLoop({ learner: inPlace, source: new SineTaskSource(), config });
    await runMetaLoop({ learner: js, source: new SineTaskSource(), config });
    expect(calls).toBe(4);
    expect(Buffer.from(inPlace.getParams().data.buffer).equals(Buffer.from(plain.getParams().data.buffer))).toBe(true);
    expect(inPlace.getOptimizerState()).toEqual(plain.getOptimizerState());
    inPlace.dispose();
    plain.dispose();
  });

  it('adapt writes into an earlier result\'s arrays when given one: the same arrays, the same bits; bad ones are refused', async () => {
    const learner = new NativeLearner({ model: convNet(21), innerState: 'reset', threads: 2 });
    const tasks = Array.from({ length: 2 }, (_, t) => randomTask({ rng: Rng.derive(21, 100 + t), count: 10, shape: [11, 8, 1], classes: 3 }));
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 3, innerBatch: 5 };
    const fresh = await learner.adapt(tasks[0]!, inner, Rng.derive(21, 0));
    const spent = await learner.adapt(tasks[1]!, inner, Rng.derive(21, 1));
    const arrays = [spent.params.data, spent.lastStep.data];
    const reused = await learner.adapt(tasks[0]!, inner, Rng.derive(21, 0), { into: spent });
    expect(reused.params.data).toBe(arrays[0]);
    expect(reused.lastStep.data).toBe(arrays[1]);
    expect(Buffer.from(reused.params.data.buffer).equals(Buffer.from(fresh.params.data.buffer))).toBe(true);
    expect(Buffer.from(reused.lastStep.data.buffer).equals(Buffer.from(fresh.lastStep.data.buffer))).toBe(true);
    expect(reused.loss).toBe(fresh.loss);
    // Several tasks in one call, each into a result of its own.
    const two = await learner.adaptTasks(
      [{ task: tasks[0]!, rng: Rng.derive(21, 0), into: reused }, { task: tasks[1]!, rng: Rng.derive(21, 1), into: fresh }],
      inner,
    );
    expect(two[0]!.params.data).toBe(arrays[0]);
    expect(two[1]!.params.data).toBe(fresh.params.data);
    expect(Array.from(two[0]!.params.data.subarray(0, 64))).toEqual(Array.from((await learner.adapt(tasks[0]!, inner, Rng.derive(21, 0))).params.data.subarray(0, 64)));
    // Refused, before anything runs (the arrays keep their values): a result of another model, two
    // tasks sharing one, a result whose two arrays are one.
    const before = fresh.params.data.slice();
    const other = new NativeLearner({ model: convNet(21, { classes: 4 }) });
    const foreign = await other.adapt(randomTask({ rng: Rng.derive(22, 0), count: 8, shape: [11, 8, 1], classes: 4 }), inner, Rng.derive(22, 1));
    await expect(learner.adapt(tasks[0]!, inner, Rng.derive(21, 0), { into: foreign })).rejects.toThrow(/`into.params`.*do not fit this model/);
    await expect(learner.adaptTasks([{ task: tasks[0]!, rng: Rng.derive(21, 0), into: fresh }, { task: tasks[1]!, rng: Rng.derive(21, 1), into: fresh }], inner)).rejects.toThrow(/share arrays/);
    await expect(learner.adapt(tasks[0]!, inner, Rng.derive(21, 0), { into: { ...fresh, lastStep: fresh.params } })).rejects.toThrow(/share arrays/);
    expect(Buffer.from(fresh.params.data.buffer).equals(Buffer.from(before.buffer))).toBe(true);
    // metaTrain writes each meta-batch's results into the last one's: the same φ as without.
    const config = { metaIters: 4, metaBatch: 3, metaStep: 1, metaStepFinal: 0, innerIters: 3, innerBatch: 5, learningRate: 0.01, optimizer: 'adam' as const, innerState: 'carry' as const, seed: 6 };
    const reusing = new NativeLearner({ model: sineNet(74) });
    const plain = new NativeLearner({ model: sineNet(74) });
    let given = 0;
    const adaptTasks = plain.adaptTasks.bind(plain);
    const noInto = Object.assign(Object.create(plain) as NativeLearner, {
      adaptTasks: (items: readonly { task: Task; rng: Rng; into?: AdaptResult }[], o: InnerOptions) => {
        given += items.filter((item) => item.into !== undefined).length;
        return adaptTasks(items.map(({ task, rng }) => ({ task, rng })), o);
      },
    });
    await runMetaLoop({ learner: reusing, source: new SineTaskSource(), config });
    await runMetaLoop({ learner: noInto, source: new SineTaskSource(), config });
    expect(given).toBe(9);
    expect(Buffer.from(reusing.getParams().data.buffer).equals(Buffer.from(plain.getParams().data.buffer))).toBe(true);
    for (const l of [learner, other, reusing, plain]) l.dispose();
  });
});

describe.skipIf(nativeSkipReason !== undefined)('prediction paths', () => {
  it('a prediction too large to keep its im2col matrices (built in blocks of rows) equals the training forward pass bit for bit', () => {
    // 1,300 examples: both convolutions' im2col matrices exceed the 256 KiB a prediction builds at once.
    const task = randomTask({ rng: Rng.fromSeed(94), count: 1300, shape: [11, 8, 1], classes: 3 });
    for (const threads of [1, 2] as const) {
      const learner = new NativeLearner({ model: convNet(95), threads });
      const predicted = learner.predict(task.support);
      const forward = learner.gradients(task, task.support).output;
      expect(predicted.length).toBe(1300 * 3);
      expect(Buffer.from(predicted.buffer).equals(Buffer.from(forward.buffer))).toBe(true);
      learner.dispose();
    }
  });


  it('follow every change of the weights: predictions after setParams and adapt equal a fresh engine', async () => {
    const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.05, innerIters: 3, innerBatch: 4 };
    const task = randomTask({ rng: Rng.fromSeed(91), count: 9, shape: [11, 8, 1], classes: 3 });
    const fresh = (params: Params): Float32Array => {
      const l = new NativeLearner({ model: convNet(92), threads: 1 });
      l.setParams(params);
      const y = l.predict(task.query);
      l.dispose();
      return y;
    };
    for (const threads of [1, 2] as const) {
      const learner = new NativeLearner({ model: convNet(92), threads });
      const first = learner.getParams();
      const before = learner.predict(task.query);
      // Twice with the same weights (the packing is reused), then other weights.
      expect([...learner.predict(task.query)]).toEqual([...before]);
      const adapted = await learner.adapt(task, inner, Rng.fromSeed(93));
      learner.setParams(adapted.params);
      const after = learner.predict(task.query);
      expect([...after]).not.toEqual([...before]);
      expect([...after]).toEqual([...fresh(adapted.params)]);
      learner.setParams(first);
      expect([...learner.predict(task.query)]).toEqual([...before]);
      learner.dispose();
    }
  });
});

describe.skipIf(nativeSkipReason !== undefined)('NativeLearner.scoreTasks', () => {
  const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 6, innerBatch: 5 };
  // A score that reads every output value, so that any difference in the adapted weights shows.
  const sumOfOutputs: TaskScoring = {
    batches: (task) => [task.query, task.support],
    score: (_task, [query, support]) => query!.reduce((a, v) => a + v, 0) + 3 * support!.reduce((a, v) => a + v, 0),
  };

  it('scores independent tasks on two engines exactly as one task at a time, and restores φ and the Adam state', async () => {
    const tasks = Array.from({ length: 7 }, (_, i) => randomTask({ rng: Rng.derive(71, i), count: 9, shape: [11, 8, 1], classes: 3 }));
    const two = new NativeLearner({ model: convNet(72), threads: 2 });
    const one = new NativeLearner({ model: convNet(72), threads: 1 });
    // A non-trivial Adam state to start every task from.
    for (const l of [two, one]) await l.adapt(tasks[0]!, inner, Rng.fromSeed(73));
    const phi = two.getParams();
    const state = two.getOptimizerState();
    expect(one.getOptimizerState()).toEqual(state);

    const parallel = await two.scoreTasks(tasks.map((task, i) => ({ task, rng: Rng.derive(74, i) })), inner, sumOfOutputs);
    const serial: number[] = [];
    const classes: number[] = [];
    for (const [i, task] of tasks.entries()) {
      const adapted = await one.adapt(task, inner, Rng.derive(74, i));
      one.setParams(adapted.params);
      serial.push(sumOfOutputs.score(task, [one.predict(task.query), one.predict(task.support)]));
      classes.push(scoreTask(one, task, false), scoreTask(one, task, true));
      one.setParams(phi);
      one.setOptimizerState(state);
    }
    expect(parallel).toEqual(serial);
    // The library's own scoring (accuracy on the queries, one by one with the support set or all at once).
    const accuracies = await Promise.all([false, true].map((t) => two.scoreTasks(tasks.map((task, i) => ({ task, rng: Rng.derive(74, i) })), inner, taskScoring(t))));
    expect(accuracies[0]!.flatMap((a, i) => [a, accuracies[1]![i]!])).toEqual(classes);
    expect(new Set(parallel).size).toBe(tasks.length);
    expect([...two.getParams().data]).toEqual([...phi.data]);
    expect(two.getOptimizerState()).toEqual(state);
    // The one-thread learner takes the same path on its own engine.
    expect(await one.scoreTasks(tasks.map((task, i) => ({ task, rng: Rng.derive(74, i) })), inner, sumOfOutputs)).toEqual(serial);
    expect(one.getOptimizerState()).toEqual(state);
    for (const l of [one, two]) l.dispose();
  });

  it('gives evaluate the same per-task scores as the one-task-at-a-time loop', async () => {
    const learner = new NativeLearner({ model: sineNet(75), threads: 2 });
    await learner.adapt(randomTask({ rng: Rng.fromSeed(76), count: 10, shape: [1], outputs: 1 }), inner, Rng.fromSeed(77));
    const plain = Object.assign(Object.create(learner) as NativeLearner, { scoreTasks: undefined });
    const options = { source: new SineTaskSource(), inner, samples: 45, seed: 3 };
    const a = await evaluate({ ...options, learner });
    const b = await evaluate({ ...options, learner: plain });
    expect(a.perTask).toEqual(b.perTask);
    expect(a.mean).toBe(b.mean);
    learner.dispose();
  });

  it('gives evaluateMany, all sets in one call, the results of one evaluate per set', async () => {
    const learner = new NativeLearner({ model: sineNet(80), threads: 2 });
    await learner.adapt(randomTask({ rng: Rng.fromSeed(81), count: 10, shape: [1], outputs: 1 }), inner, Rng.fromSeed(82));
    const phi = learner.getParams();
    const state = learner.getOptimizerState();
    const plain = Object.assign(Object.create(learner) as NativeLearner, { scoreTasks: undefined });
    const sets = [
      { source: new SineTaskSource(), seed: 5, samples: 1 },
      { source: new SineTaskSource({ amplitudeRange: [1, 2] }), seed: 6, samples: 3 },
    ];
    const many = await evaluateMany({ learner, inner, sets });
    expect(many.map((r) => r.samples)).toEqual([1, 3]);
    for (const [i, set] of sets.entries()) {
      const one = await evaluate({ learner: plain, inner, ...set });
      expect(many[i]!.perTask).toEqual(one.perTask);
      expect(many[i]!.mean).toBe(one.mean);
    }
    // Different sets draw different tasks, and nothing of φ or the Adam state moved.
    expect(many[0]!.perTask[0]).not.toBe(many[1]!.perTask[0]);
    expect([...learner.getParams().data]).toEqual([...phi.data]);
    expect(learner.getOptimizerState()).toEqual(state);
    await expect(evaluateMany({ learner, inner, sets: [{ ...sets[0]!, samples: 0 }] })).rejects.toThrow(/`samples` must be a whole number ≥ 1/);
    learner.dispose();
  });

  it('rejects a bad task without losing φ, and stays usable', async () => {
    const learner = new NativeLearner({ model: sineNet(78), threads: 2 });
    const phi = learner.getParams();
    const good = randomTask({ rng: Rng.fromSeed(79), count: 10, shape: [1], outputs: 1 });
    const bad = { ...good, support: { ...good.support, inputs: new Float32Array(3) } };
    await expect(learner.scoreTasks([{ task: good, rng: Rng.fromSeed(1) }, { task: bad, rng: Rng.fromSeed(2) }], inner, sumOfOutputs)).rejects.toThrow(/do not fit the model's input/);
    expect([...learner.getParams().data]).toEqual([...phi.data]);
    const [score] = await learner.scoreTasks([{ task: good, rng: Rng.fromSeed(1) }], inner, sumOfOutputs);
    expect(Number.isFinite(score)).toBe(true);
    learner.dispose();
  });
});

describe.skipIf(nativeSkipReason !== undefined)('dispose', () => {
  it('frees the engine once running work is done; later use is a clear error', async () => {
    const nl = new NativeLearner({ model: sineNet(51), threads: 2 });
    const task = randomTask({ rng: Rng.fromSeed(51), count: 10, shape: [1], outputs: 1 });
    const pending = nl.adapt(task, { optimizer: 'sgd', learningRate: 0.01, innerIters: 50, innerBatch: 5 }, Rng.fromSeed(52));
    nl.dispose();
    await expect(pending).resolves.toMatchObject({ loss: expect.any(Number) });
    await expect(nl.adapt(task, { optimizer: 'sgd', learningRate: 0.01, innerIters: 1, innerBatch: 5 }, Rng.fromSeed(53))).rejects.toThrow(/disposed/);
    expect(() => nl.getParams()).toThrow(/disposed/);
  });
});
