import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/core/rng.js';
import { selectBackend } from '../src/engine/backend.js';
import type { AdaptResult, InnerOptions, Learner } from '../src/learners/learner.js';
import { NativeLearner } from '../src/learners/native-learner.js';
import { TfjsLearner } from '../src/learners/tfjs.js';
import { WasmLearner } from '../src/learners/wasm-learner.js';
import { relaxedSimdSupported } from '../src/engine/wasm-module.js';
import type { Task } from '../src/tasks/task.js';
import { checkpointPayload, runReptile } from './helpers/redis.js';
import { makeTemp } from './few-shot/fixtures.js';
import { init, nativeSkipReason, randomTask, relErr, wasmSkipReason } from './native-helpers.js';

// The engine compiled to WebAssembly (native/wasm/reptile.wasm): whole inner loops against the
// tfjs oracle and the addon, bit-identical to itself, and the same bits on the threads executor's
// workers as inline. Every layer's forward and backward pass is checked against tfjs autograd in
// native-layers.test.ts, which runs its cases on this engine too.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TOL = 1e-4;

beforeAll(async () => {
  await selectBackend('cpu');
});

function sineNet(seed: number): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [1], units: 32, activation: 'tanh', kernelInitializer: init(seed) }),
      tf.layers.dense({ units: 32, activation: 'tanh', kernelInitializer: init(seed + 1) }),
      tf.layers.dense({ units: 1, kernelInitializer: init(seed + 2) }),
    ],
  });
}

/** An Omniglot-style stack: convolutions without bias, batch norm, ReLU, pooling, softmax head. */
function convNet(seed: number): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [14, 14, 1], filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: init(seed) }),
      tf.layers.batchNormalization({ gammaInitializer: init(seed + 1), betaInitializer: init(seed + 2) }),
      tf.layers.reLU(),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init(seed + 3) }),
      tf.layers.batchNormalization(),
      tf.layers.reLU(),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 5, activation: 'softmax', kernelInitializer: init(seed + 4) }),
    ],
  });
}

/**
 * The same without batch norm, for the comparison with tfjs: behind a batch norm some weight
 * gradients are zero in exact arithmetic and float32 noise in both engines, and Adam's first steps
 * (β1 = 0) turn noise into ±learning-rate steps of either sign (the addon and this engine agree).
 */
function plainConvNet(seed: number): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [14, 14, 1], filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernelInitializer: init(seed), biasInitializer: init(seed + 1) }),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(seed + 2), biasInitializer: init(seed + 3) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 5, activation: 'softmax', kernelInitializer: init(seed + 4) }),
    ],
  });
}

const ADAM_20: InnerOptions = { optimizer: 'adam', learningRate: 0.003, innerIters: 20, innerBatch: 10, beta1: 0, beta2: 0.999 };

/** Adapts both learners to the same tasks in turn (Adam state carried), comparing every result. */
async function compare(a: Learner, b: Learner, tasks: Task[], inner: InnerOptions, what: string): Promise<void> {
  for (let t = 0; t < tasks.length; t++) {
    const ra = await a.adapt(tasks[t]!, inner, Rng.derive(3, t));
    const rb = await b.adapt(tasks[t]!, inner, Rng.derive(3, t));
    expect(relErr(ra.params.data, rb.params.data), `${what}: adapted weights, task ${t}`).toBeLessThanOrEqual(TOL);
    expect(relErr(ra.lastStep.data, rb.lastStep.data), `${what}: last step, task ${t}`).toBeLessThanOrEqual(TOL * 10);
    expect(Math.abs(ra.loss - rb.loss) / Math.abs(rb.loss), `${what}: loss, task ${t}`).toBeLessThanOrEqual(TOL);
    expect(relErr(a.predict(tasks[t]!.query), b.predict(tasks[t]!.query)), `${what}: predictions, task ${t}`).toBeLessThanOrEqual(TOL);
    // Reptile-style: φ moves to the adapted weights, the same φ for both.
    a.setParams(rb.params);
    b.setParams(rb.params);
  }
  const sa = a.getOptimizerState();
  const sb = b.getOptimizerState();
  expect(sa?.step).toBe(sb?.step);
  if (sa?.kind === 'adam' && sb?.kind === 'adam' && sa.m && sb.m && sa.v && sb.v) {
    expect(relErr(sa.m, sb.m), `${what}: Adam m`).toBeLessThanOrEqual(TOL);
    expect(relErr(sa.v, sb.v), `${what}: Adam v`).toBeLessThanOrEqual(TOL * 10);
  }
}

const sineTasks = (seed: number): Task[] => Array.from({ length: 3 }, (_, t) => randomTask({ rng: Rng.derive(seed, t), count: 50, shape: [1], outputs: 1 }));
const classTasks = (seed: number): Task[] => Array.from({ length: 3 }, (_, t) => randomTask({ rng: Rng.derive(seed, 10 + t), count: 15, shape: [14, 14, 1], classes: 5 }));

describe.skipIf(wasmSkipReason !== undefined)('the WebAssembly engine', () => {
  it('runs on the relaxed-SIMD kernels where the runtime has relaxed SIMD (else SIMD128), on one thread', () => {
    const learner = new WasmLearner({ model: sineNet(1) });
    expect(learner.isa).toBe(relaxedSimdSupported() ? 'relaxed-simd128' : 'simd128');
    expect(learner.threads).toBe(1);
    learner.dispose();
  });

  it('equals the tfjs learner over whole 20-step Adam inner loops, state carried across tasks', async () => {
    for (const seed of [1, 2]) {
      await compare(new WasmLearner({ model: sineNet(seed) }), new TfjsLearner({ model: sineNet(seed) }), sineTasks(seed), ADAM_20, `sine net, seed ${seed}`);
    }
    await compare(new WasmLearner({ model: plainConvNet(1) }), new TfjsLearner({ model: plainConvNet(1) }), classTasks(1), ADAM_20, 'conv net');
  });

  it.skipIf(nativeSkipReason !== undefined)('equals the addon over whole inner loops, batch norm included', async () => {
    await compare(new WasmLearner({ model: convNet(4) }), new NativeLearner({ model: convNet(4), threads: 1 }), classTasks(4), ADAM_20, 'conv net');
  });

  it('gives the same bits from run to run, from a fresh engine as from one reused, and written into an earlier result', async () => {
    const run = async (into: boolean): Promise<Buffer[]> => {
      const learner = new WasmLearner({ model: convNet(5) });
      const out: Buffer[] = [];
      let last: AdaptResult | undefined;
      for (const [t, task] of classTasks(5).entries()) {
        const r = await learner.adapt(task, ADAM_20, Rng.derive(9, t), into && last ? { into: last } : undefined);
        if (into && last) expect(r.params.data).toBe(last.params.data);
        out.push(Buffer.from(r.params.data.slice().buffer));
        expect(learner.applyReptileUpdate([r.params], 0.5)).toBeUndefined();
        last = r;
      }
      out.push(Buffer.from(learner.getParams().data.buffer));
      learner.dispose();
      return out;
    };
    const first = await run(false);
    const second = await run(false);
    expect(second.every((b, i) => b.equals(first[i]!))).toBe(true);
    const third = await run(true);
    expect(third.every((b, i) => b.equals(first[i]!))).toBe(true);
    // adaptTasks is the same as adapt task after task.
    const learner = new WasmLearner({ model: convNet(5) });
    const batch = await learner.adaptTasks(classTasks(5).map((task, t) => ({ task, rng: Rng.derive(9, t) })), ADAM_20);
    expect(Buffer.from(batch[0]!.params.data.buffer).equals(first[0]!)).toBe(true);
    learner.dispose();
  });

  it('refuses bad input with the addon\'s messages instead of reading outside its memory', async () => {
    const learner = new WasmLearner({ model: convNet(6) });
    const task = classTasks(6)[0]!;
    const bad: Task = { ...task, support: { ...task.support, targets: task.support.targets.map(() => 7) } };
    await expect(learner.adapt(bad, ADAM_20, Rng.derive(1, 1))).rejects.toThrow(/7/);
    expect(() => learner.predict({ ...task.query, inputs: new Float32Array(3) })).toThrow(/do not fit the model's input/);
    learner.dispose();
    expect(() => learner.getParams()).toThrow(/this WasmLearner has been disposed/);
  });
});

describe.skipIf(wasmSkipReason !== undefined)('the WebAssembly engine in the CLI and its workers', () => {
  const sine = ['train', '--task', 'sine', '--hidden', '16,16', '--meta-iters', '6', '--meta-batch', '4', '--inner-state', 'shared', '--eval-samples', '8', '--checkpoint-every', '3', '--json', '--learner', 'wasm'];

  it('meta-trains the same bits on the threads executor\'s workers as inline', async () => {
    const dir = makeTemp('reptile-wasm-');
    const inline = await runReptile([...sine, '--checkpoint', path.join(dir, 'inline')]);
    const threads = await runReptile([...sine, '--executor', 'threads', '--workers', '2', '--checkpoint', path.join(dir, 'threads')]);
    expect(inline.code, inline.stderr).toBe(0);
    expect(threads.code, threads.stderr).toBe(0);
    expect(checkpointPayload(path.join(dir, 'threads')).equals(checkpointPayload(path.join(dir, 'inline')))).toBe(true);
    expect((JSON.parse(threads.stdout) as { heldOut: { mse: number } }).heldOut.mse).toBe((JSON.parse(inline.stdout) as { heldOut: { mse: number } }).heldOut.mse);
  });

  it('REPTILE_NATIVE=off: auto picks the WebAssembly engine and says so once; REPTILE_WASM=off then fails learner wasm', () => {
    const tsx = path.join(root, 'node_modules', '.bin', 'tsx');
    const script = `
      import { createLearner, createSineModel } from './src/index.ts';
      const a = createLearner({ model: createSineModel(), learner: 'auto' });
      const b = createLearner({ model: createSineModel(), learner: 'auto' });
      console.log(JSON.stringify({ a: a.constructor.name, b: b.constructor.name, isa: a.isa }));
    `;
    const r = spawnSync(tsx, ['--input-type=module', '-e', script], { cwd: root, env: { ...process.env, REPTILE_NATIVE: 'off' }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toEqual({ a: 'WasmLearner', b: 'WasmLearner', isa: relaxedSimdSupported() ? 'relaxed-simd128' : 'simd128' });
    expect(r.stderr.split('\n').filter((l) => l.startsWith('reptile: using'))).toEqual(['reptile: using the WebAssembly engine (one thread) because the native engine is unavailable: it is switched off by REPTILE_NATIVE=off']);
    const off = `
      import { createLearner, createSineModel, InvalidOptionsError } from './src/index.ts';
      try { createLearner({ model: createSineModel(), learner: 'wasm' }); } catch (e) { console.log(JSON.stringify({ typed: e instanceof InvalidOptionsError, message: e.message })); }
    `;
    const s = spawnSync(tsx, ['--input-type=module', '-e', off], { cwd: root, env: { ...process.env, REPTILE_WASM: 'off' }, encoding: 'utf8' });
    expect(s.status, s.stderr).toBe(0);
    expect(JSON.parse(s.stdout.trim().split('\n').pop()!)).toEqual({ typed: true, message: "the WebAssembly engine is unavailable: it is switched off by REPTILE_WASM=off; set `learner` to 'tfjs' or 'auto'" });
  });
});
