import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnsupportedModelError } from '../src/_utils/errors.js';
import { selectBackend } from '../src/engine/backend.js';
import type { Executor } from '../src/exec/executor.js';
import { describeLearner, fixedWeightsOf, runSpecOf } from '../src/exec/job.js';
import { RedisExecutor, runRedisWorker } from '../src/exec/redis.js';
import { JobRunner } from '../src/exec/runtime.js';
import { ThreadsExecutor } from '../src/exec/threads.js';
import { createLearner } from '../src/learners/create-learner.js';
import { SineTaskSource } from '../src/tasks/sine.js';
import { evaluate } from '../src/train/evaluate.js';
import { metaTrain } from '../src/train/meta-train.js';
import { redisSkipReason, startRedis, type TestRedis } from './helpers/redis.js';
import { nativeSkipReason } from './native-helpers.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

const init = (seed: number) => tf.initializers.glorotUniform({ seed });

/** Weights no fresh initialisation gives: the layer's own, scaled and shifted. */
function perturb(layer: tf.layers.Layer): void {
  layer.setWeights(layer.getWeights().map((w, i) => tf.tidy(() => w.mul(1.7).add(i === 0 ? 0.05 : 0.3))));
}

/** Sine regression through a frozen Dense layer and a frozen 1×1 Conv2D, both with weights unlike a fresh init. */
function frozenModel(): tf.LayersModel {
  const frozenDense = tf.layers.dense({ units: 8, activation: 'tanh', inputShape: [1], kernelInitializer: init(11) });
  const frozenConv = tf.layers.conv2d({ filters: 2, kernelSize: 1, activation: 'tanh', kernelInitializer: init(13) });
  const model = tf.sequential({
    layers: [frozenDense, tf.layers.dense({ units: 8, activation: 'tanh', kernelInitializer: init(12) }), tf.layers.reshape({ targetShape: [2, 2, 2] }), frozenConv, tf.layers.flatten(), tf.layers.dense({ units: 1, kernelInitializer: init(14) })],
  });
  perturb(frozenDense);
  perturb(frozenConv);
  frozenDense.trainable = false;
  frozenConv.trainable = false;
  return model;
}

/** Sine regression through a SeparableConv2D with depth multiplier 2 (which tfjs's getConfig drops). */
function separableModel(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({ units: 8, activation: 'tanh', inputShape: [1], kernelInitializer: init(21) }),
      tf.layers.reshape({ targetShape: [2, 2, 2] }),
      tf.layers.separableConv2d({ filters: 3, kernelSize: 1, depthMultiplier: 2, activation: 'tanh', depthwiseInitializer: init(22), pointwiseInitializer: init(23) }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 1, kernelInitializer: init(24) }),
    ],
  });
}

/** Sine regression through a BatchNormalization whose moving statistics are far from a fresh layer's (0 and 1). */
function batchNormModel(): tf.LayersModel {
  const bn = tf.layers.batchNormalization({});
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 4, activation: 'tanh', inputShape: [1], kernelInitializer: init(31) }), bn, tf.layers.dense({ units: 1, kernelInitializer: init(32) })] });
  const [gamma, beta] = bn.getWeights();
  bn.setWeights([gamma!, beta!, tf.tensor1d([0.5, -0.25, 0.125, 1]), tf.tensor1d([4, 0.5, 2, 0.25])]);
  return model;
}

const config = { seed: 3, metaIters: 4, metaBatch: 3, innerIters: 3, innerBatch: 5, learningRate: 0.02, optimizer: 'adam' as const, innerState: 'shared' as const };

async function trainedParams(make: () => tf.LayersModel, kind: 'tfjs' | 'native', executor?: Executor): Promise<Buffer> {
  const model = make();
  const learner = createLearner({ model, learner: kind, innerState: 'shared' });
  try {
    await metaTrain({ learner, source: new SineTaskSource({ shots: 5 }), config, ...(executor ? { executor } : {}) });
    const data = learner.getParams().data;
    return Buffer.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice());
  } finally {
    learner.dispose();
    model.dispose();
  }
}

const kinds = (['tfjs', 'native'] as const).filter((k) => k === 'tfjs' || nativeSkipReason === undefined);

describe('frozen weights and separable convolutions on the parallel executors', () => {
  let threads: ThreadsExecutor;
  beforeAll(() => {
    threads = new ThreadsExecutor({ workers: 2 });
  });
  afterAll(async () => {
    await threads.close();
  });

  for (const kind of kinds) {
    it(`a frozen Dense and Conv2D: the threads executor gives the inline parameters bit for bit (${kind})`, async () => {
      const inline = await trainedParams(frozenModel, kind);
      const parallel = await trainedParams(frozenModel, kind, threads);
      expect(parallel.equals(inline)).toBe(true);
    }, 120_000);

    it(`a SeparableConv2D with depth multiplier 2: the threads executor gives the inline parameters bit for bit (${kind})`, async () => {
      const inline = await trainedParams(separableModel, kind);
      const parallel = await trainedParams(separableModel, kind, threads);
      expect(parallel.equals(inline)).toBe(true);
    }, 120_000);
  }

  for (const kind of kinds) {
    // Adaptation moves the statistics on (in tfjs and in the engine alike) and nothing restores
    // them between tasks, so only a learner's first task starts from the model's very statistics.
    it(`batch normalisation's moving statistics: a worker's first task scores as inline (${kind}, moving statistics at test)`, async () => {
      const scores = async (executor?: Executor) => {
        const model = batchNormModel();
        const learner = createLearner({ model, learner: kind, innerState: 'shared', batchStatsAtTest: false });
        const r = await evaluate({ learner, source: new SineTaskSource({ shots: 5 }), inner: { optimizer: 'sgd', learningRate: 0.01, innerIters: 2, innerBatch: 5 }, samples: 1, seed: 4, ...(executor ? { executor } : {}) });
        learner.dispose();
        model.dispose();
        return r.perTask;
      };
      expect(await scores(threads)).toEqual(await scores());
    }, 120_000);
  }

  it('the spec carries the fixed weights and their digest; the run id hashes the digest', () => {
    const a = frozenModel();
    const b = frozenModel();
    // `b` differs from `a` only in one frozen value.
    const [kernel, bias] = b.layers[0]!.getWeights();
    const changed = kernel!.dataSync().slice();
    changed[0]! += 1;
    b.layers[0]!.setWeights([tf.tensor(changed, kernel!.shape), bias!]);
    const source = new SineTaskSource({ shots: 5 });
    const [la, lb] = [a, b].map((model) => createLearner({ model, learner: 'tfjs', innerState: 'shared' }));
    const spec = describeLearner(la!);
    expect(spec.fixedWeights?.shapes).toEqual([[1, 8], [8], [1, 1, 2, 2], [2]]);
    expect(spec.fixedWeights?.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(Buffer.from(spec.fixedWeights!.data, 'base64').length).toBe(4 * (8 + 8 + 4 + 2));
    expect(runSpecOf(la!, source).runId).not.toBe(runSpecOf(lb!, source).runId);
    expect(runSpecOf(la!, source).runId).toBe(runSpecOf(la!, source).runId);
    // A model without non-trainable weights carries none.
    expect(describeLearner(createLearner({ model: separableModel(), learner: 'tfjs' })).fixedWeights).toBeUndefined();
  });

  it('a worker refuses fixed weights that do not match their digest, with the reason', async () => {
    const learner = createLearner({ model: frozenModel(), learner: 'tfjs', innerState: 'shared' });
    const spec = runSpecOf(learner, new SineTaskSource({ shots: 5 }));
    const bytes = Buffer.from(spec.learner.fixedWeights!.data, 'base64');
    bytes[5]! ^= 1;
    const forged = { ...spec, learner: { ...spec.learner, fixedWeights: { ...spec.learner.fixedWeights!, data: bytes.toString('base64') } } };
    const runner = new JobRunner();
    try {
      await expect(runner.prepare(forged)).rejects.toThrow(/^the run's fixed weights do not match their digest \([0-9a-f]{16}…, the spec says [0-9a-f]{16}…\): corrupted or forged$/);
      // The honest spec: the rebuilt model holds the very frozen weights.
      const { learner: rebuilt } = await runner.prepare(spec);
      expect(describeLearner(rebuilt).fixedWeights).toEqual(spec.learner.fixedWeights);
    } finally {
      runner.dispose();
    }
  });

  it('refuses more than 64 MiB of fixed weights with one line naming the size and the inline executor', () => {
    const big = tf.sequential({ layers: [tf.layers.dense({ units: 8192, inputShape: [4097], kernelInitializer: 'zeros', trainable: false }), tf.layers.dense({ units: 1 })] });
    try {
      expect(() => fixedWeightsOf(big)).toThrow(UnsupportedModelError);
      expect(() => fixedWeightsOf(big)).toThrow(/^the model's non-trainable weights \(frozen layers, batch normalisation statistics\) take 128\.1 MiB, more than the 64 MiB a parallel executor sends to its workers: use the inline executor$/);
    } finally {
      big.dispose();
    }
  });
});

describe.skipIf(redisSkipReason !== undefined)('frozen weights on the redis executor', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('a frozen Dense and Conv2D: the redis executor gives the inline parameters bit for bit', async () => {
    const stop = new AbortController();
    const worker = runRedisWorker({ url: redis.url, signal: stop.signal, log: () => {} });
    const executor = await RedisExecutor.connect({ url: redis.url });
    try {
      const inline = await trainedParams(frozenModel, 'tfjs');
      const parallel = await trainedParams(frozenModel, 'tfjs', executor);
      expect(parallel.equals(inline)).toBe(true);
    } finally {
      await executor.close();
      stop.abort();
      await worker;
    }
  }, 120_000);
});
