import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { bytesToFloats, floatsToBytes } from '../src/core/codec.js';
import { Rng } from '../src/core/rng.js';
import { BlobVerdicts, checkJob, checkResult, jobDigest, runSpecOf, stateToWire, type JobResult, type TaskJob } from '../src/exec/job.js';
import { sourceFromSpec } from '../src/exec/runtime.js';
import { decodeResult, encodeResult } from '../src/exec/redis.js';
import { TfjsLearner } from '../src/learners/tfjs.js';
import { createSineModel } from '../src/learners/models.js';
import { SineTaskSource } from '../src/tasks/sine.js';

await tf.setBackend('cpu');

const model = createSineModel({ hidden: [4], seed: 1 });
const learner = new TfjsLearner({ model, innerState: 'shared' });
const source = new SineTaskSource({ shots: 5 });
const spec = runSpecOf(learner, source);
const size = learner.layout.size;
const phi = new Uint8Array(floatsToBytes(learner.getParams().data));
const state = stateToWire({ kind: 'adam', step: 3, m: new Float32Array(size).fill(0.5), v: new Float32Array(size).fill(0.25) })!;
const job: TaskJob = {
  runId: spec.runId,
  kind: 'adapt',
  iteration: 4,
  seed: 7,
  taskIndices: [0, 1],
  inner: { optimizer: 'adam', learningRate: 1e-3, innerIters: 2, innerBatch: 5 },
  transductive: false,
  wantLastStep: true,
  phi,
  state,
  digest: jobDigest(phi, state),
};
/** A second moment (0.25 everywhere) changed by f. */
const squares = (f: (a: Float32Array) => void): Uint8Array => {
  const a = new Float32Array(size).fill(0.25);
  f(a);
  return new Uint8Array(floatsToBytes(a));
};
const floats = (f: (a: Float32Array) => void): Uint8Array => {
  const a = bytesToFloats(phi);
  f(a);
  return new Uint8Array(floatsToBytes(a));
};

describe('the float32 codec', () => {
  it('round-trips bytes exactly, from any offset, and refuses a ragged or wrongly sized payload', () => {
    const values = new Float32Array([1.5, -0, Number.MIN_VALUE, 3.4e38, NaN]);
    const bytes = new Uint8Array(3 + values.byteLength);
    bytes.set(floatsToBytes(values), 3);
    const back = bytesToFloats(bytes.subarray(3), 5);
    expect(Buffer.from(back.buffer).equals(Buffer.from(values.buffer))).toBe(true);
    expect(() => bytesToFloats(new Uint8Array(7))).toThrow(/not a whole number of floats/);
    expect(() => bytesToFloats(new Uint8Array(8), 3)).toThrow(/2 values, expected 3/);
  });
});

describe('a worker checks every job before it runs it', () => {
  it('accepts the honest job', () => {
    expect(checkJob(job, { spec })).toBeUndefined();
  });

  const hostile: [string, unknown, RegExp][] = [
    ['not an object', 'rm -rf /', /not an object/],
    ['an unknown run', { ...job, runId: 'r000000000000' }, /is for run 'r000000000000'/],
    ['an unknown kind', { ...job, kind: 'exec' }, /unknown job kind 'exec'/],
    ['a negative iteration', { ...job, iteration: -1 }, /iteration -1 is not a whole number/],
    ['a fractional task index', { ...job, taskIndices: [0, 1.5] }, /task index 1.5/],
    ['a task index beyond the meta-batch', { ...job, taskIndices: [5] }, /task index 5 is not a whole number below 5/],
    ['no tasks', { ...job, taskIndices: [] }, /names no tasks/],
    ['too many tasks', { ...job, taskIndices: Array.from({ length: 10_001 }, (_, i) => i) }, /more than 10000/],
    ['a huge inner loop', { ...job, inner: { ...job.inner, innerIters: 1e9 } }, /above 100000/],
    ['a bad learning rate', { ...job, inner: { ...job.inner, learningRate: -1 } }, /`learningRate` must be a positive number/],
    ['φ as a JSON array of numbers', { ...job, phi: Array.from(bytesToFloats(phi)) }, /φ is not binary/],
    ['a short φ', { ...job, phi: phi.subarray(0, phi.length - 4) }, new RegExp(`φ has ${phi.length - 4} bytes, not ${phi.length}`)],
    ['an oversized φ', { ...job, phi: new Uint8Array(phi.length * 1000) }, /φ has \d+ bytes/],
    ['a φ with NaN', { ...job, phi: floats((a) => (a[2] = NaN)), digest: jobDigest(floats((a) => (a[2] = NaN)), state) }, /φ holds a non-finite value at 2/],
    ['a φ with Infinity', { ...job, phi: floats((a) => (a[0] = Infinity)), digest: jobDigest(floats((a) => (a[0] = Infinity)), state) }, /non-finite value at 0/],
    ['an optimizer state of the wrong size', { ...job, state: { ...state, m: new Uint8Array(8) } }, /optimizer state m has 8 bytes/],
    ['a malformed optimizer state', { ...job, state: { kind: 'rmsprop', step: 1 } }, /optimizer state is malformed/],
    ['a negative second moment', { ...job, state: { ...state, v: squares((a) => (a[5] = -1e-3)) } }, /optimizer state v holds a negative value at 5/],
    ['a φ changed after the digest', { ...job, phi: floats((a) => (a[1] = 123)) }, /digest does not match/],
    ['a 64-bit seed', { ...job, seed: 2 ** 40 }, /not a 32-bit whole number/],
  ];
  for (const [name, payload, reason] of hostile) {
    it(`rejects ${name}, naming the reason`, () => {
      expect(checkJob(payload, { spec, maxTasks: 5 })).toMatch(reason);
    });
  }
});

describe('a worker checks the φ and state that several jobs share once', () => {
  it('reuses the verdict only for the very same bytes, digest and state header', () => {
    const verdicts = new BlobVerdicts();
    let scans = 0;
    const counting = { verdict: (j: Parameters<BlobVerdicts['verdict']>[0], compute: () => string | undefined) => verdicts.verdict(j, () => (scans++, compute())) } as unknown as BlobVerdicts;
    expect(checkJob(job, { spec, verdicts: counting })).toBeUndefined();
    expect(checkJob({ ...job, taskIndices: [1] }, { spec, verdicts: counting })).toBeUndefined();
    expect(scans).toBe(1);
    // Same bytes, another step count in the header: the digest covers it, so it is checked afresh and refused.
    expect(checkJob({ ...job, state: { ...state, step: 4 } }, { spec, verdicts: counting })).toMatch(/digest does not match/);
    expect(scans).toBe(2);
    // Another φ object with the same digest (forged): checked afresh.
    expect(checkJob({ ...job, phi: floats((a) => (a[0] = 7)) }, { spec, verdicts: counting })).toMatch(/digest does not match/);
    expect(scans).toBe(3);
    // A bad verdict is remembered as bad, not as good.
    const bad = { ...job, digest: '0000000000000000' };
    expect(checkJob(bad, { spec, verdicts })).toMatch(/digest does not match/);
    expect(checkJob({ ...bad, taskIndices: [1] }, { spec, verdicts })).toMatch(/digest does not match/);
    // Fields outside φ and the state are checked on every job, verdict or not.
    expect(checkJob({ ...job, iteration: -1 }, { spec, verdicts })).toMatch(/iteration -1/);
  });
});

describe('the coordinator checks every result against the job it answers', () => {
  const params = new Uint8Array(phi);
  const outcome = { taskIndex: 0, loss: 0.5, params, lastStep: params, state };
  const result: JobResult = { runId: job.runId, kind: 'adapt', iteration: 4, digest: job.digest, layoutHash: learner.layout.hash, outcomes: [outcome, { ...outcome, taskIndex: 1 }] };
  const expect_ = { job, layout: learner.layout, wantState: true };
  it('accepts the honest result', () => {
    expect(checkResult(result, expect_)).toBeUndefined();
  });
  const hostile: [string, unknown, RegExp][] = [
    ['from another run', { ...result, runId: 'rX' }, /for run 'rX'/],
    ['for another iteration (late)', { ...result, iteration: 3 }, /for iteration 3, not 4/],
    ['computed from another φ (stale)', { ...result, digest: '0000000000000000' }, /another φ \(digest mismatch\)/],
    ['of another layout', { ...result, layoutHash: 'deadbeef' }, /layout deadbeef/],
    ['with a task missing', { ...result, outcomes: [outcome] }, /1 outcomes for a job of 2 tasks/],
    ['answering other tasks', { ...result, outcomes: [outcome, { ...outcome, taskIndex: 9 }] }, /outcome 1 is not for task 1/],
    ['with oversized weights', { ...result, outcomes: [{ ...outcome, params: new Uint8Array(params.length + 4) }, outcome] }, /adapted weights has \d+ bytes/],
    ['with non-finite weights', { ...result, outcomes: [{ ...outcome, lastStep: floats((a) => (a[3] = NaN)) }, { ...outcome, taskIndex: 1 }] }, /last step holds a non-finite value at 3/],
    ['without the shared state', { ...result, outcomes: [{ ...outcome, state: undefined }, { ...outcome, taskIndex: 1 }] }, /optimizer state is missing/],
    ['with a negative second moment', { ...result, outcomes: [{ ...outcome, state: { ...state, v: squares((a) => (a[2] = -1)) } }, { ...outcome, taskIndex: 1 }] }, /task 0: optimizer state v holds a negative value at 2/],
  ];
  for (const [name, payload, reason] of hostile) {
    it(`rejects a result ${name}`, () => {
      expect(checkResult(payload, expect_)).toMatch(reason);
    });
  }
});

describe('task sources rebuilt from their description', () => {
  it('gives the very tasks of the original', () => {
    const rebuilt = sourceFromSpec(source.describe());
    const a = source.sample(Rng.derive(1, 2, 3));
    const b = rebuilt.sample(Rng.derive(1, 2, 3));
    expect(Array.from(b.support.inputs)).toEqual(Array.from(a.support.inputs));
    expect(Array.from(b.query.targets)).toEqual(Array.from(a.query.targets));
  });
  it('refuses a source it does not know, and a few-shot source without its data', () => {
    expect(() => sourceFromSpec({ task: 'python', code: 'os.system(...)' })).toThrow(/of kind 'python' cannot be rebuilt on a worker/);
    expect(() => sourceFromSpec({ task: 'few-shot', classes: 5, shots: 1 })).toThrow(/does not say which data/);
  });
});

describe('results on the wire (one binary value per result)', () => {
  const params = new Uint8Array(phi);
  const result: JobResult = {
    runId: job.runId,
    kind: 'adapt',
    iteration: 4,
    digest: job.digest,
    layoutHash: learner.layout.hash,
    outcomes: [{ taskIndex: 0, loss: 0.5, params, state: { kind: 'adam', step: 5, m: state.m!, v: state.v! } }],
  };
  it('round-trips, with every array byte for byte and aligned', () => {
    const back = decodeResult(encodeResult(result), size);
    if (typeof back === 'string') throw new Error(back);
    expect(back.outcomes[0]!.params!.byteOffset % 4).toBe(0);
    expect(Buffer.from(back.outcomes[0]!.params!).equals(Buffer.from(params))).toBe(true);
    expect(Buffer.from(back.outcomes[0]!.state!.v!).equals(Buffer.from(state.v!))).toBe(true);
    expect(checkResult(back, { job: { ...job, taskIndices: [0], wantLastStep: false }, layout: learner.layout, wantState: true })).toBeUndefined();
  });
  it('refuses a truncated, padded, mislabelled or unreadable value', () => {
    const bytes = encodeResult(result);
    expect(decodeResult(bytes.subarray(0, 3), size)).toMatch(/truncated/);
    expect(decodeResult(bytes.subarray(0, bytes.length - 4), size)).toMatch(/shorter than its header says/);
    expect(decodeResult(Buffer.concat([bytes, Buffer.alloc(8)]), size)).toMatch(/8 bytes more than its header says/);
    const lying = Buffer.from(bytes);
    lying.writeUInt32LE(0xffffff, 0);
    expect(decodeResult(lying, size)).toMatch(/header is malformed/);
    const garbage = Buffer.alloc(64);
    garbage.writeUInt32LE(10, 0);
    expect(decodeResult(garbage, size)).toMatch(/not readable/);
  });
});
