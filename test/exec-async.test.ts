import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reptileUpdate } from '../src/core/meta-update.js';
import { Params, createLayout } from '../src/core/params.js';
import { linearSchedule } from '../src/core/schedule.js';
import { selectBackend } from '../src/engine/backend.js';
import { AsyncDriver, type TaskAnswer } from '../src/exec/async-driver.js';
import { createExecutor } from '../src/exec/create-executor.js';
import { taskStreams, type AsyncSpanRequest } from '../src/exec/executor.js';
import { ThreadsExecutor } from '../src/exec/threads.js';
import { createLearner } from '../src/learners/create-learner.js';
import type { Learner, OptimizerState } from '../src/learners/learner.js';
import { createSineModel } from '../src/learners/models.js';
import { SineTaskSource } from '../src/tasks/sine.js';
import { metaTrain } from '../src/train/meta-train.js';
import { InvalidOptionsError } from '../src/_utils/errors.js';
import { runReptile } from './helpers/redis.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

// ---------------------------------------------------------------------------------------------
// The driver on its own: a scalar φ, tasks whose adapted W is known, answers in an order the
// test chooses.

const layout = createLayout([{ name: 'w', shape: [1] }]);

/** A learner of one scalar parameter and no optimizer state: all the driver touches. */
function scalarLearner(value: number): Learner {
  let phi = new Params(layout, Float32Array.of(value));
  return {
    layout,
    innerState: 'reset',
    getParams: () => phi,
    setParams: (p: Params) => void (phi = p),
    getOptimizerState: (): OptimizerState | undefined => undefined,
    setOptimizerState: () => {},
  } as unknown as Learner;
}

/** Tasks sent, with a hand to answer each: task n adapts to W = 10 + n. */
function manualSender() {
  const out = new Map<number, { phi: number; answer: (a: TaskAnswer) => void }>();
  const sent: number[] = [];
  const send = (request: AsyncSpanRequest, task: number) =>
    new Promise<TaskAnswer>((resolve) => {
      sent.push(task);
      out.set(task, { phi: request.learner.getParams().data[0]!, answer: resolve });
    });
  const answer = async (task: number) => {
    const o = out.get(task);
    if (o === undefined) throw new Error(`task ${task} is not out`);
    out.delete(task);
    o.answer({ result: { params: new Params(layout, Float32Array.of(10 + task)), loss: task, lastStep: undefined as never }, state: undefined });
    await new Promise((r) => setImmediate(r));
  };
  return { send, answer, sent, out };
}

function spanRequest(learner: Learner, iteration: number, epsilon: number, extra: Partial<AsyncSpanRequest> = {}): AsyncSpanRequest {
  return {
    learner,
    source: {} as never,
    seed: 1,
    iteration,
    metaBatch: 2,
    totalTasks: 6,
    inner: {} as never,
    foml: false,
    apply: (r) => {
      learner.setParams(reptileUpdate(learner.getParams(), [r.params], epsilon / 2));
      return undefined;
    },
    ...extra,
  };
}

describe('the asynchronous driver', () => {
  it('applies answers as they arrive, moving φ by ε/metaBatch toward each, and keeps `window` tasks out', async () => {
    const s = manualSender();
    const learner = scalarLearner(0);
    const driver = new AsyncDriver(s.send, { maxStaleness: 5, window: 2 });
    const span = driver.runSpan(spanRequest(learner, 0, 0.5, { resume: { next: 0, owed: [] } }));
    await new Promise((r) => setImmediate(r));
    expect(s.sent).toEqual([0, 1]);
    await s.answer(1); // φ = 0 + 0.25·(11 − 0) = 2.75; task 2 sent from 2.75
    expect(s.sent).toEqual([0, 1, 2]);
    expect(s.out.get(2)!.phi).toBeCloseTo(2.75, 6);
    await s.answer(2); // sent at version 1, applied at version 1: staleness 0; φ = 2.75 + 0.25·(12 − 2.75)
    const r = await span;
    expect(r.tasks).toEqual([1, 2]);
    expect(r.staleness).toEqual([0, 0]);
    expect(learner.getParams().data[0]).toBeCloseTo(2.75 + 0.25 * (12 - 2.75), 5);
    // Task 0 is still out and owed; 3 was sent at the span's end so workers stay busy.
    expect(r.progress).toEqual({ next: 4, owed: [0, 3] });
    expect(driver.totals).toEqual({ sent: 4, applied: 2, stale: 0, duplicates: 0 });
  });

  it('drops an answer computed from a φ more than maxStaleness updates old and sends its task again from the current φ', async () => {
    const s = manualSender();
    const learner = scalarLearner(0);
    const driver = new AsyncDriver(s.send, { maxStaleness: 1, window: 3 });
    const first = driver.runSpan(spanRequest(learner, 0, 1, { resume: { next: 0, owed: [] } }));
    await new Promise((r) => setImmediate(r));
    await s.answer(1); // version 1
    await s.answer(2); // sent at 0, age 1: applied, version 2
    await first;
    const second = driver.runSpan(spanRequest(learner, 1, 1));
    await new Promise((r) => setImmediate(r));
    const phiBefore = learner.getParams().data[0]!;
    await s.answer(0); // sent at version 0, now 2: dropped and sent again at once
    expect(learner.getParams().data[0]).toBe(phiBefore);
    expect(s.sent.filter((t) => t === 0)).toHaveLength(2);
    expect(s.out.get(0)!.phi).toBe(phiBefore);
    await s.answer(0); // sent again at version 2, applied at 2: version 3
    await s.answer(4); // sent at version 2 (the first span's end), applied at 3
    const r = await second;
    expect(r.tasks).toEqual([0, 4]);
    expect(r.staleness).toEqual([0, 1]);
    // Task 3, sent at version 1, is still out; answered now it is 2 updates old and will be dropped.
    expect(r.progress.owed).toEqual([3, 5]);
    expect(r.dropped).toBe(1);
    expect(driver.totals).toMatchObject({ applied: 4, stale: 1 });
  }, 5000);

  it('resumes from a progress record: owed tasks first, then the next never sent; answers of the run before are ignored', async () => {
    const s = manualSender();
    const learner = scalarLearner(0);
    const driver = new AsyncDriver(s.send, { maxStaleness: 9, window: 2 });
    const first = driver.runSpan(spanRequest(learner, 0, 1, { resume: { next: 0, owed: [] } }));
    await new Promise((r) => setImmediate(r));
    await s.answer(0);
    await s.answer(1);
    await first;
    expect(s.sent).toEqual([0, 1, 2, 3]);
    // A fresh start at meta-iteration 1 that owes task 1 (as a checkpoint may say).
    const span = driver.runSpan(spanRequest(learner, 1, 1, { resume: { next: 3, owed: [1] } }));
    await new Promise((r) => setImmediate(r));
    expect(s.sent).toEqual([0, 1, 2, 3, 1, 3]);
    await s.answer(2); // of the run before: ignored
    await s.answer(1);
    await s.answer(3);
    const r = await span;
    expect(r.tasks).toEqual([1, 3]);
    expect(r.progress).toEqual({ next: 6, owed: [4, 5] });
    expect(driver.totals).toMatchObject({ applied: 4, duplicates: 0 });
  });
});

// ---------------------------------------------------------------------------------------------
// The threads executor in the asynchronous mode, against an oracle that replays its schedule.

const inner = { optimizer: 'sgd' as const, learningRate: 0.02, innerIters: 3, innerBatch: 10 };
const config = { metaIters: 6, metaBatch: 3, ...inner, metaStep: 0.9, metaStepFinal: 0.1, seed: 7, innerState: 'reset' as const };

/**
 * The asynchronous schedule with one worker, which answers in the order tasks were sent:
 * `metaBatch` tasks out, each from the φ of the moment it was sent; an answer applied moves φ by
 * ε(i)/metaBatch toward its W, ε(i) the schedule's at meta-iteration i = ⌊applied / metaBatch⌋.
 */
async function oracle(): Promise<Float32Array> {
  const source = new SineTaskSource();
  const learner = createLearner({ model: createSineModel({ seed: 3 }), learner: 'tfjs', innerState: 'reset' });
  const schedule = linearSchedule(config.metaStep, config.metaStepFinal, config.metaIters);
  const total = config.metaIters * config.metaBatch;
  let phi = learner.getParams();
  const queue: { task: number; phi: Params }[] = [];
  let next = 0;
  for (let applied = 0; applied < total; applied++) {
    while (queue.length < config.metaBatch && next < total) queue.push({ task: next++, phi });
    const { task, phi: from } = queue.shift()!;
    learner.setParams(from);
    const streams = taskStreams(config.seed, Math.floor(task / config.metaBatch), task % config.metaBatch);
    const w = await learner.adapt(source.sample(streams.task), inner, streams.batches);
    phi = reptileUpdate(phi, [w.params], schedule(Math.floor(applied / config.metaBatch)) / config.metaBatch);
  }
  learner.dispose?.();
  return phi.data;
}

describe('the threads executor in the asynchronous mode', () => {
  let threads: ThreadsExecutor;
  afterAll(async () => {
    await threads?.close();
  });

  it('with one worker (answers in order) gives the oracle of the asynchronous schedule bit for bit; every task applied once', async () => {
    threads = new ThreadsExecutor({ workers: 1, sync: 'async' });
    const learner = createLearner({ model: createSineModel({ seed: 3 }), learner: 'tfjs', innerState: 'reset' });
    const applied: number[] = [];
    await metaTrain({ learner, source: new SineTaskSource(), executor: threads, config, callbacks: { onMetaIterEnd: (_i, logs) => void applied.push(...logs.async!.tasks) } });
    expect(applied.sort((a, b) => a - b)).toEqual(Array.from({ length: 18 }, (_, i) => i));
    expect(threads.asyncCounters).toEqual({ sent: 18, applied: 18, stale: 0, duplicates: 0 });
    expect(Array.from(learner.getParams().data)).toEqual(Array.from(await oracle()));
    tf.disposeVariables();
  }, 120_000);
});

describe('the options of the asynchronous mode', () => {
  it('refuses a staleness bound without the asynchronous mode, a negative one, an unknown mode and inline async, in one line each', async () => {
    await expect(createExecutor({ executor: 'threads', maxStaleness: 2 })).rejects.toThrow(/^`maxStaleness` is for the asynchronous mode: set `sync` to 'async', or drop `maxStaleness`$/);
    await expect(createExecutor({ executor: 'threads', sync: 'async', maxStaleness: -1 })).rejects.toThrow(InvalidOptionsError);
    await expect(createExecutor({ executor: 'threads', sync: 'later' as never })).rejects.toThrow(/^`sync` must be 'sync' or 'async'/);
    await expect(createExecutor({ sync: 'async' })).rejects.toThrow(/^the inline executor runs one task at a time/);
  });

  it('reptile train refuses a bad --sync or --max-staleness with one line and exit code 2, before anything is written', async () => {
    const cases: [string[], RegExp][] = [
      [['--max-staleness', '2'], /^reptile: --max-staleness is for the asynchronous mode: add --sync async, or drop --max-staleness$/],
      [['--executor', 'threads', '--sync', 'async', '--max-staleness', '-1'], /^reptile: --max-staleness '-1' is invalid \(expected a whole number from 0 to 1,000,000\)/],
      [['--executor', 'threads', '--sync', 'async', '--max-staleness', '1.5'], /^reptile: --max-staleness '1.5' is invalid/],
      [['--sync', 'async'], /^reptile: --sync async needs workers that run side by side: add --executor threads or --executor redis, or drop --sync$/],
      [['--sync', 'later'], /^reptile: --sync 'later' is invalid \(expected one of sync, async\)/],
    ];
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-async-refused-'));
    for (const [flags, message] of cases) {
      const dir = path.join(root, 'ck');
      const r = await runReptile(['train', '--task', 'sine', '--meta-iters', '2', '--checkpoint', dir, ...flags]);
      expect(r.code, flags.join(' ')).toBe(2);
      expect(fs.existsSync(dir)).toBe(false);
      expect(r.stderr.trim().split('\n'), flags.join(' ')).toEqual([expect.stringMatching(message)]);
    }
  }, 120_000);
});
