import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { taskStreams } from '../src/exec/executor.js';
import { selectBackend } from '../src/engine/backend.js';
import { createSineModel } from '../src/learners/models.js';
import { TfjsLearner } from '../src/learners/tfjs.js';
import { SineTaskSource } from '../src/tasks/sine.js';
import { checkpointPath, readCheckpoint } from '../src/train/checkpoint.js';
import { metaTrain } from '../src/train/meta-train.js';
import { DivergenceError, ReptileError } from '../src/_utils/errors.js';
import { Params } from '../src/core/params.js';
import type { Rng } from '../src/core/rng.js';
import type { AdaptResult, InnerOptions, Learner } from '../src/learners/learner.js';
import type { Task } from '../src/tasks/task.js';
import { fixedPointSource, scalarModel, tempDir } from './helpers/fixtures.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

const sgdOne = { metaBatch: 1, innerBatch: 1, learningRate: 0.1, optimizer: 'sgd' as const, metaIters: 1 };

describe('metaTrain on hand-computed problems', () => {
  // Loss (w − 3)², gradient 2(w − 3), SGD with α = 0.1 from w = 1:
  // w1 = 1 + 0.4 = 1.4, w2 = 1.4 + 0.32 = 1.72, w3 = 1.72 + 0.256 = 1.976.
  it('Reptile moves φ by ε toward the adapted weight', async () => {
    const learner = new TfjsLearner({ model: scalarModel(1) });
    await metaTrain({ learner, source: fixedPointSource(3), config: { ...sgdOne, innerIters: 3, metaStep: 0.5, metaStepFinal: 0.5 } });
    // φ = 1 + 0.5·(1.976 − 1) = 1.488
    expect(learner.getParams().data[0]).toBeCloseTo(1.488, 5);
  });

  it('FOMAML moves φ by ε along the last inner step only', async () => {
    const learner = new TfjsLearner({ model: scalarModel(1) });
    await metaTrain({ learner, source: fixedPointSource(3), config: { ...sgdOne, innerIters: 3, metaStep: 0.5, metaStepFinal: 0.5, foml: true } });
    // last step w3 − w2 = 0.256, φ = 1 + 0.5·0.256 = 1.128
    expect(learner.getParams().data[0]).toBeCloseTo(1.128, 5);
  });

  it('one SGD inner step with ε = 1 equals a plain SGD step on the same batch', async () => {
    const source = new SineTaskSource();
    const learner = new TfjsLearner({ model: createSineModel({ seed: 3 }) });
    const reference = createSineModel({ seed: 3 });
    await metaTrain({ learner, source, config: { metaIters: 1, metaBatch: 1, innerIters: 1, innerBatch: 10, learningRate: 0.02, optimizer: 'sgd', metaStep: 1, metaStepFinal: 1, seed: 11 } });
    const task = source.sample(taskStreams(11, 0, 0).task);
    const x = tf.tensor2d(task.support.inputs, [10, 1]);
    const y = tf.tensor2d(task.support.targets, [10, 1]);
    tf.train.sgd(0.02).minimize(() => tf.losses.meanSquaredError(y, reference.apply(x) as tf.Tensor) as tf.Scalar);
    const expected = new TfjsLearner({ model: reference }).getParams().data;
    const got = learner.getParams().data;
    let maxDiff = 0;
    for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - expected[i]!));
    expect(maxDiff).toBeLessThan(1e-6);
    // and it really moved
    const start = new TfjsLearner({ model: createSineModel({ seed: 3 }) }).getParams().data;
    expect(got.some((v, i) => v !== start[i])).toBe(true);
  });
});

describe('determinism and exact resume', () => {
  const config = { metaIters: 200, metaBatch: 2, innerIters: 3, innerBatch: 5, learningRate: 0.01, optimizer: 'adam' as const, metaStep: 1, metaStepFinal: 0, seed: 5 };

  it('same seed gives bit-identical parameters; another seed does not', async () => {
    const run = async (seed: number) => {
      const learner = new TfjsLearner({ model: createSineModel({ seed: 1 }) });
      await metaTrain({ learner, source: new SineTaskSource(), config: { ...config, metaIters: 30, seed } });
      return Array.from(learner.getParams().data);
    };
    const a = await run(5);
    expect(await run(5)).toEqual(a);
    expect(await run(6)).not.toEqual(a);
  });

  it('100 iterations, then a resume for 100 more, equals 200 uninterrupted (Adam state included)', async () => {
    const source = new SineTaskSource();
    const dir = tempDir();
    const controller = new AbortController();
    const first = new TfjsLearner({ model: createSineModel({ seed: 1 }) });
    const part1 = await metaTrain({
      learner: first,
      source,
      config,
      checkpointDir: dir,
      checkpointEvery: 1000,
      signal: controller.signal,
      callbacks: { onMetaIterEnd: (i) => (i === 99 ? controller.abort() : undefined) },
    });
    expect(part1.stopped).toBe(true);
    expect(readCheckpoint(dir).iteration).toBe(100);
    expect(readCheckpoint(dir).optimizer?.kind).toBe('adam');

    const second = new TfjsLearner({ model: createSineModel({ seed: 99 }) });
    const part2 = await metaTrain({ learner: second, source, config, checkpointDir: dir });
    expect(part2.startIteration).toBe(100);
    expect(part2.iterations).toBe(200);

    const whole = new TfjsLearner({ model: createSineModel({ seed: 1 }) });
    await metaTrain({ learner: whole, source, config });
    expect(Array.from(second.getParams().data)).toEqual(Array.from(whole.getParams().data));
    expect(Array.from(second.getOptimizerState()!.v!)).toEqual(Array.from(whole.getOptimizerState()!.v!));
  });

  it('refuses to resume with different settings, and leaves the checkpoint as it was', async () => {
    const dir = tempDir();
    const learner = new TfjsLearner({ model: createSineModel({ seed: 1 }) });
    await metaTrain({ learner, source: new SineTaskSource(), config: { ...config, metaIters: 5 }, checkpointDir: dir });
    const before = fs.readFileSync(checkpointPath(dir));
    await expect(metaTrain({ learner, source: new SineTaskSource(), config: { ...config, metaIters: 5, learningRate: 0.5 }, checkpointDir: dir })).rejects.toThrow(
      /`learningRate` = 0.01, not 0.5: resume with the same settings, or use a new `checkpointDir`/,
    );
    expect(fs.readFileSync(checkpointPath(dir)).equals(before)).toBe(true);
  });
});

describe('checkpoint files', () => {
  const small = { metaIters: 3, metaBatch: 1, innerIters: 2, innerBatch: 5, learningRate: 0.01, optimizer: 'adam' as const };

  it('is written atomically with no temporary file left behind', async () => {
    const dir = tempDir();
    const learner = new TfjsLearner({ model: createSineModel({ seed: 1 }) });
    await metaTrain({ learner, source: new SineTaskSource(), config: small, checkpointDir: dir });
    // Nothing but the checkpoint itself: no temporary file of a write is left behind.
    expect(fs.readdirSync(dir)).toEqual(['reptile.ckpt']);
    const ckpt = readCheckpoint(dir);
    expect(ckpt.iteration).toBe(3);
    expect(Array.from(ckpt.params.data)).toEqual(Array.from(learner.getParams().data));
  });

  it('detects truncation, edits and a different architecture', async () => {
    const dir = tempDir();
    const learner = new TfjsLearner({ model: createSineModel({ seed: 1 }) });
    await metaTrain({ learner, source: new SineTaskSource(), config: small, checkpointDir: dir });
    const file = checkpointPath(dir);
    const good = fs.readFileSync(file);

    const other = new TfjsLearner({ model: createSineModel({ seed: 1, hidden: [32] }) });
    await expect(metaTrain({ learner: other, source: new SineTaskSource(), config: small, checkpointDir: dir })).rejects.toThrow(/different model/);

    fs.writeFileSync(file, good.subarray(0, good.length - 100));
    expect(() => readCheckpoint(dir)).toThrow(ReptileError);
    expect(() => readCheckpoint(dir)).toThrow(/corrupt/);

    const edited = Buffer.from(good);
    edited[edited.length - 200] = edited[edited.length - 200]! ^ 0x01;
    fs.writeFileSync(file, edited);
    expect(() => readCheckpoint(dir)).toThrow(/checksum mismatch/);
  });

  it('fails before training when the directory cannot be written', async () => {
    const dir = tempDir();
    const blocker = path.join(dir, 'a-file');
    fs.writeFileSync(blocker, 'keep me');
    const learner = new TfjsLearner({ model: createSineModel({ seed: 1 }) });
    await expect(metaTrain({ learner, source: new SineTaskSource(), config: small, checkpointDir: path.join(blocker, 'ckpt') })).rejects.toThrow(
      /cannot write checkpoints/,
    );
    expect(fs.readFileSync(blocker, 'utf8')).toBe('keep me');
  });
});

describe('resources', () => {
  it('keeps tf.memory().numTensors flat over 500 meta-iterations', async () => {
    const learner = new TfjsLearner({ model: createSineModel({ seed: 2 }) });
    let early = -1;
    await metaTrain({
      learner,
      source: new SineTaskSource(),
      config: { metaIters: 500, metaBatch: 2, innerIters: 2, innerBatch: 10, learningRate: 0.01, optimizer: 'adam' },
      callbacks: { onMetaIterEnd: (i) => void (i === 9 ? (early = tf.memory().numTensors) : undefined) },
    });
    expect(early).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(early);
  });

  it('writes one JSON line per meta-iteration to the log', async () => {
    const dir = tempDir();
    const log = path.join(dir, 'log.jsonl');
    const learner = new TfjsLearner({ model: createSineModel({ seed: 2 }) });
    await metaTrain({ learner, source: new SineTaskSource(), config: { metaIters: 7, innerIters: 1, innerBatch: 5, optimizer: 'sgd', learningRate: 0.01 }, logFile: log });
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { iteration: number; epsilon: number; loss: number });
    expect(lines.map((l) => l.iteration)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    for (const l of lines) expect(Number.isFinite(l.loss)).toBe(true);
  });
});

describe('divergence', () => {
  // A learner that behaves until meta-iteration `failAt`, then returns non-finite weights: the
  // run is pointed at a checkpoint directory it has already written to, and must leave the last
  // good checkpoint there exactly as it was.
  function failingLearner(failAt: number): { learner: Learner; calls: () => number } {
    const inner = new TfjsLearner({ model: createSineModel({ seed: 1 }) });
    let calls = 0;
    const learner: Learner = Object.assign(Object.create(inner) as Learner, {
      adapt: async (task: Task, options: InnerOptions, rng: Rng): Promise<AdaptResult> => {
        const r = await inner.adapt(task, options, rng);
        if (calls++ < failAt) return r;
        const bad = new Float32Array(r.params.data);
        bad[3] = Number.NaN;
        return { ...r, params: new Params(r.params.layout, bad) };
      },
    });
    return { learner, calls: () => calls };
  }

  it('stops with one clear error when the parameters stop being finite, leaving the checkpoint it was writing intact', async () => {
    const dir = tempDir();
    const { learner } = failingLearner(5);
    const config = { metaIters: 20, innerIters: 2, innerBatch: 10, learningRate: 0.01, optimizer: 'sgd' as const, metaStep: 1, metaStepFinal: 1 };
    let good: Buffer | undefined;
    const snapshot = { onMetaIterEnd: (i: number) => void (i === 3 ? (good = fs.readFileSync(checkpointPath(dir))) : undefined) };
    await expect(metaTrain({ learner, source: new SineTaskSource(), config, checkpointDir: dir, checkpointEvery: 2, callbacks: snapshot })).rejects.toThrow(
      /training diverged at meta-iteration 5 .*lower `learningRate` or `metaStep`; the last good checkpoint is untouched/,
    );
    // The run wrote checkpoints at iterations 2 and 4 into this very directory, then diverged at 5.
    expect(good).toBeDefined();
    expect(fs.readFileSync(checkpointPath(dir)).equals(good!)).toBe(true);
    const ckpt = readCheckpoint(dir);
    expect(ckpt.iteration).toBe(4);
    expect(ckpt.params.data.every(Number.isFinite)).toBe(true);
    // Nothing but the checkpoint itself: no temporary file of a write is left behind.
    expect(fs.readdirSync(dir)).toEqual(['reptile.ckpt']);
  });

  it('a diverging learning rate stops at the first meta-iteration and writes no checkpoint', async () => {
    const dir = tempDir();
    const wild = new TfjsLearner({ model: createSineModel({ seed: 1 }) });
    const config = { metaIters: 50, innerIters: 2, innerBatch: 10, learningRate: 1e30, optimizer: 'sgd' as const, metaStep: 1, metaStepFinal: 1 };
    await expect(metaTrain({ learner: wild, source: new SineTaskSource(), config, checkpointDir: dir })).rejects.toThrow(DivergenceError);
    expect(fs.existsSync(checkpointPath(dir))).toBe(false);
  });
});
