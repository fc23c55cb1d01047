import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/core/rng.js';
import { epochOrder, fit, type FitOptions } from '../src/fit/fit.js';
import { Reptile } from '../src/optim/reptile.js';
import { nativeSkipReason, relErr } from './native-helpers.js';

// The oracle is tfjs's own model.fit on the same weights, data and batch order (docs/architecture.md,
// invariant 3). Both sides run float32 arithmetic in different orders (the engine's fused kernels
// against tfjs's op-by-op graph), so each step differs by rounding, ~1e-7 relative; Adam divides
// by √v̂ and so amplifies differences in small gradients. Measured after 200 steps (relative
// error over all weights): 0.6–1.9e-7 for SGD, Adam and Reptile over SGD, 1.1–1.6e-6 for Reptile
// over Adam (the convnet included); epoch losses within 1.1e-6. The bound below, 1e-4 relative
// after 200 steps, is the and leaves a margin of 60× over the worst of them; accuracies
// are compared within one validation example.

beforeAll(async () => {
  await tf.setBackend('cpu');
});

type OptName = 'reptile-adam' | 'reptile-sgd' | 'adam' | 'sgd';
type Head = 'softmax' | 'sparse' | 'sigmoid' | 'mse';

function optimizer(name: OptName): tf.Optimizer {
  switch (name) {
    case 'reptile-adam':
      return new Reptile({ learningRate: 0.003, innerOptimizer: 'adam', syncPeriod: 3, metaStepSize: 0.5 });
    case 'reptile-sgd':
      return new Reptile({ learningRate: 0.05, innerOptimizer: 'sgd', syncPeriod: 4, metaStepSize: 0.4 });
    case 'adam':
      return tf.train.adam(0.002, 0.8, 0.99);
    case 'sgd':
      return tf.train.sgd(0.05);
  }
}

const LOSS: Record<Head, string> = {
  softmax: 'categoricalCrossentropy',
  sparse: 'sparseCategoricalCrossentropy',
  sigmoid: 'binaryCrossentropy',
  mse: 'meanSquaredError',
};

/** The 784-10-10 network with the head's output activation, or a small convnet; weights from fixed seeds. */
function network(head: Head, conv = false): tf.Sequential {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const act = head === 'sigmoid' ? 'sigmoid' : head === 'mse' ? 'linear' : 'softmax';
  const body = conv
    ? [
        tf.layers.conv2d({ inputShape: [10, 10, 1], filters: 4, kernelSize: 3, activation: 'relu', kernelInitializer: init(1) }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
      ]
    : [tf.layers.dense({ inputShape: [784], units: 10, activation: 'relu', kernelInitializer: init(1) })];
  return tf.sequential({ layers: [...body, tf.layers.dense({ units: 10, activation: act, kernelInitializer: init(2) })] });
}

function compiled(opt: OptName, head: Head, conv = false): tf.Sequential {
  const m = network(head, conv);
  m.compile({ optimizer: optimizer(opt), loss: LOSS[head], metrics: head === 'mse' ? [] : ['accuracy'] });
  return m;
}

/** n examples with labels that depend on the inputs (so training moves), in the head's target format. */
function data(n: number, head: Head, conv = false, seed = 7): { x: tf.Tensor; y: tf.Tensor } {
  const rng = Rng.fromSeed(seed);
  const size = conv ? 100 : 784;
  const xs = new Float32Array(n * size);
  for (let i = 0; i < xs.length; i++) xs[i] = rng.uniform(0, 1);
  const labels = Array.from({ length: n }, (_, i) => {
    let s = 0;
    for (let j = 0; j < 10; j++) s += xs[i * size + j * 7]!;
    return Math.min(9, Math.floor(s));
  });
  const x = conv ? tf.tensor4d(xs, [n, 10, 10, 1]) : tf.tensor2d(xs, [n, size]);
  if (head === 'sparse') return { x, y: tf.tensor2d(labels, [n, 1]) };
  const oneHot = tf.oneHot(tf.tensor1d(labels, 'int32'), 10).toFloat();
  if (head !== 'mse') return { x, y: oneHot };
  return { x, y: tf.tidy(() => oneHot.mul(2).sub(0.5)) };
}

function flatWeights(m: tf.LayersModel): Float32Array {
  const parts = m.getWeights().map((w) => w.dataSync() as Float32Array);
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function slowOf(m: tf.LayersModel): Float32Array | undefined {
  if (m.optimizer.getClassName() !== 'Reptile') return undefined;
  const parts = (m.optimizer as Reptile).getSlowWeights().map((t) => t!.dataSync() as Float32Array);
  return Float32Array.from(parts.flatMap((p) => Array.from(p)));
}

function dispose(...ms: tf.LayersModel[]): void {
  for (const m of ms) {
    m.optimizer?.dispose();
    m.dispose();
  }
}

const quiet: Pick<FitOptions, 'engine' | 'verbose'> = { engine: 'native', verbose: 0 };

describe.skipIf(nativeSkipReason !== undefined)('fit on the engine equals tfjs model.fit', () => {
  const cases: [OptName, Head, boolean][] = [];
  for (const opt of ['reptile-adam', 'reptile-sgd', 'adam', 'sgd'] as const) for (const head of ['softmax', 'sparse', 'sigmoid', 'mse'] as const) cases.push([opt, head, false]);
  cases.push(['reptile-adam', 'softmax', true], ['sgd', 'softmax', true]);

  for (const [opt, head, conv] of cases) {
    it(`${opt}, ${LOSS[head]}${conv ? ', convnet' : ''}: 200 steps, weights, slow weights and History within 1e-4`, async () => {
      // 1600 examples, batch 32 → 45 full batches of the 1440 training ones, 4.4 epochs ≈ 200 steps;
      // the last 160 are the validation split.
      const { x, y } = data(1600, head, conv);
      const a = compiled(opt, head, conv);
      const b = compiled(opt, head, conv);
      const args = { epochs: 4, batchSize: 32, shuffle: false, validationSplit: 0.1, verbose: 0 } as const;
      const hn = await fit(a, x, y, { ...args, engine: 'native' });
      const ht = await b.fit(x, y, args);
      expect(relErr(flatWeights(a), flatWeights(b))).toBeLessThan(1e-4);
      const sa = slowOf(a);
      if (sa) expect(relErr(sa, slowOf(b)!)).toBeLessThan(1e-4);
      expect(a.optimizer.iterations).toBe(b.optimizer.iterations);
      expect(Object.keys(hn.history).sort()).toEqual(Object.keys(ht.history).sort());
      expect(hn.epoch).toEqual(ht.epoch);
      for (const key of Object.keys(ht.history)) {
        const n = hn.history[key] as number[];
        const t = ht.history[key] as number[];
        if (key.endsWith('acc')) n.forEach((v, i) => expect(Math.abs(v - t[i]!)).toBeLessThanOrEqual(1.5 / 160));
        else expect(relErr(n, t)).toBeLessThan(1e-4);
      }
      // The model predicts and evaluates with the written-back weights.
      const pa = a.predict(x) as tf.Tensor;
      const pb = b.predict(x) as tf.Tensor;
      expect(relErr(pa.dataSync(), pb.dataSync())).toBeLessThan(1e-4);
      tf.dispose([x, y, pa, pb]);
      dispose(a, b);
    });
  }

  it('the same seeded order as tfjs fed with that permutation (shuffle from a seed)', async () => {
    const { x, y } = data(320, 'softmax');
    const a = compiled('reptile-adam', 'softmax');
    const b = compiled('reptile-adam', 'softmax');
    await fit(a, x, y, { ...quiet, epochs: 3, batchSize: 32, seed: 11 });
    for (let e = 0; e < 3; e++) {
      const idx = tf.tensor1d(epochOrder(320, 11, e), 'int32');
      const xs = tf.gather(x, idx);
      const ys = tf.gather(y, idx);
      await b.fit(xs, ys, { epochs: 1, batchSize: 32, shuffle: false, verbose: 0 });
      tf.dispose([idx, xs, ys]);
    }
    expect(relErr(flatWeights(a), flatWeights(b))).toBeLessThan(1e-4);
    expect(epochOrder(320, 11, 1)).not.toEqual(epochOrder(320, 11, 0));
    // The order is Rng.shuffle's, epoch by epoch (a size past 2^16 draws with rejection too); no seed, no shuffle.
    for (const [n, e] of [[320, 1], [70_001, 4]] as const) expect(Array.from(epochOrder(n, 11, e))).toEqual(Rng.derive(11, e).shuffle(Array.from({ length: n }, (_, i) => i)));
    expect(Array.from(epochOrder(5, undefined, 3))).toEqual([0, 1, 2, 3, 4]);
    tf.dispose([x, y]);
    dispose(a, b);
  });
});

describe.skipIf(nativeSkipReason !== undefined)('fit: write-back and continuation', () => {
  for (const opt of ['reptile-adam', 'reptile-sgd', 'adam', 'sgd'] as const) {
    it(`${opt}: two fits of 2 epochs equal one fit of 4, bit for bit (mid-period end)`, async () => {
      // 330 examples, batch 32: 11 batches per epoch (the last of 10), 22 steps per fit: not a
      // multiple of the sync period, so the second fit starts mid-period.
      const { x, y } = data(330, 'softmax');
      const a = compiled(opt, 'softmax');
      const b = compiled(opt, 'softmax');
      await fit(a, x, y, { ...quiet, epochs: 2, batchSize: 32, seed: 3 });
      await fit(a, x, y, { ...quiet, epochs: 4, initialEpoch: 2, batchSize: 32, seed: 3 });
      await fit(b, x, y, { ...quiet, epochs: 4, batchSize: 32, seed: 3 });
      expect(flatWeights(a)).toEqual(flatWeights(b));
      expect(slowOf(a)).toEqual(slowOf(b));
      expect(a.optimizer.iterations).toBe(44);
      const state = async (m: tf.LayersModel) => Promise.all((await m.optimizer.getWeights()).map(async (w) => Array.from(await w.tensor.data())));
      expect(await state(a)).toEqual(await state(b));
      tf.dispose([x, y]);
      dispose(a, b);
    });
  }

  it('one epoch on the engine, save with the optimizer, load, one epoch of model.fit = two epochs of model.fit', async () => {
    const { x, y } = data(330, 'softmax');
    const a = compiled('reptile-adam', 'softmax');
    const ref = compiled('reptile-adam', 'softmax');
    await fit(a, x, y, { ...quiet, epochs: 1, batchSize: 32, shuffle: false });
    let saved: tf.io.ModelArtifacts | undefined;
    await a.save(
      tf.io.withSaveHandler(async (art) => {
        saved = art;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
      { includeOptimizer: true },
    );
    const b = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    expect(b.optimizer.getClassName()).toBe('Reptile');
    expect(b.optimizer.iterations).toBe(11);
    await b.fit(x, y, { epochs: 1, batchSize: 32, shuffle: false, verbose: 0 });
    await ref.fit(x, y, { epochs: 2, batchSize: 32, shuffle: false, verbose: 0 });
    expect(relErr(flatWeights(b), flatWeights(ref))).toBeLessThan(1e-4);
    expect(relErr(slowOf(b)!, slowOf(ref)!)).toBeLessThan(1e-4);
    tf.dispose([x, y]);
    dispose(a, b, ref);
  });

  it('one and two engine threads give the same bits', async () => {
    const { x, y } = data(200, 'softmax', true);
    const a = compiled('reptile-adam', 'softmax', true);
    const b = compiled('reptile-adam', 'softmax', true);
    await fit(a, x, y, { ...quiet, epochs: 2, batchSize: 32, threads: 1 });
    await fit(b, x, y, { ...quiet, epochs: 2, batchSize: 32, threads: 2 });
    expect(flatWeights(a)).toEqual(flatWeights(b));
    expect(slowOf(a)).toEqual(slowOf(b));
    tf.dispose([x, y]);
    dispose(a, b);
  });

  it('the 784-10-10 network: one and two engine threads give the same bits (examples read in place)', async () => {
    const { x, y } = data(200, 'softmax');
    const a = compiled('reptile-adam', 'softmax');
    const b = compiled('reptile-adam', 'softmax');
    await fit(a, x, y, { ...quiet, epochs: 2, batchSize: 32, seed: 3, threads: 1 });
    await fit(b, x, y, { ...quiet, epochs: 2, batchSize: 32, seed: 3, threads: 2 });
    expect(flatWeights(a)).toEqual(flatWeights(b));
    expect(slowOf(a)).toEqual(slowOf(b));
    tf.dispose([x, y]);
    dispose(a, b);
  });

  it('memory stays flat over 80 fit calls (tensors, their bytes, native and resident memory)', async () => {
    // An engine never released keeps ~1 MB of its buffers resident outside the JS heap (its weights,
    // gradients, moments and activations for this network) until its wrapper is collected: without
    // release, the second 40 calls grew resident memory by 15-17 MB, with it by 2-6 MB. Resident and
    // external memory are read after collecting garbage; the allocator and the JIT settle within
    // the first calls, so a leak shows as growth in the second half of the calls as well as the first.
    const { x, y } = data(96, 'softmax');
    const a = compiled('reptile-adam', 'softmax');
    const args: FitOptions = { ...quiet, epochs: 1, batchSize: 32, validationSplit: 0.25 };
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const reading = async () => {
      gc();
      await new Promise((r) => setTimeout(r, 20));
      gc();
      return { tensors: tf.memory().numTensors, bytes: tf.memory().numBytes, ...process.memoryUsage() };
    };
    for (let i = 0; i < 5; i++) await fit(a, x, y, args);
    const m0 = await reading();
    for (let i = 0; i < 40; i++) await fit(a, x, y, args);
    const m1 = await reading();
    for (let i = 0; i < 40; i++) await fit(a, x, y, args);
    const m2 = await reading();
    expect([m1.tensors, m2.tensors]).toEqual([m0.tensors, m0.tensors]);
    expect([m1.bytes, m2.bytes]).toEqual([m0.bytes, m0.bytes]);
    expect(m2.rss - m1.rss).toBeLessThan(10 * 2 ** 20);
    expect(m2.rss - m0.rss).toBeLessThan(32 * 2 ** 20);
    expect(m2.external - m1.external).toBeLessThan(4 * 2 ** 20);
    tf.dispose([x, y]);
    dispose(a);
  });
});

describe.skipIf(nativeSkipReason !== undefined)('fit: callbacks', () => {
  const recorder = (events: string[]): tf.CustomCallbackArgs => ({
    onTrainBegin: (logs) => void events.push(`trainBegin ${Object.keys(logs ?? {}).sort().join(',')}`),
    onEpochBegin: (e) => void events.push(`epochBegin ${e}`),
    onBatchBegin: (b, logs) => void events.push(`batchBegin ${b} ${Object.keys(logs ?? {}).sort().join(',')}`),
    onBatchEnd: (b, logs) => void events.push(`batchEnd ${b} ${Object.keys(logs ?? {}).sort().join(',')}`),
    onEpochEnd: (e, logs) => void events.push(`epochEnd ${e} ${Object.keys(logs ?? {}).sort().join(',')}`),
    onTrainEnd: () => void events.push('trainEnd'),
  });

  it("are called in tfjs's order with the same logs keys, and batch logs hold the same values", async () => {
    const { x, y } = data(100, 'softmax');
    const a = compiled('adam', 'softmax');
    const b = compiled('adam', 'softmax');
    const en: string[] = [];
    const et: string[] = [];
    const lossesN: number[] = [];
    const lossesT: number[] = [];
    const args = { epochs: 2, batchSize: 32, shuffle: false, validationSplit: 0.2, verbose: 0 } as const;
    await fit(a, x, y, { ...args, engine: 'native', callbacks: [recorder(en), { onBatchEnd: (_b: number, l?: tf.Logs) => void lossesN.push(l!.loss!) }] });
    await b.fit(x, y, { ...args, callbacks: [recorder(et), { onBatchEnd: (_b: number, l?: tf.Logs) => void lossesT.push(l!.loss!) }] });
    expect(en).toEqual(et);
    expect(relErr(lossesN, lossesT)).toBeLessThan(1e-4);
    tf.dispose([x, y]);
    dispose(a, b);
  });

  it('EarlyStopping stops at the same epoch, and stopTraining in onBatchEnd stops after that batch', async () => {
    const { x, y } = data(200, 'softmax');
    const a = compiled('sgd', 'softmax');
    const b = compiled('sgd', 'softmax');
    // minDelta 10: no epoch counts as an improvement after the first, so patience 2 stops after epoch 3.
    const stop = () => tf.callbacks.earlyStopping({ monitor: 'loss', minDelta: 10, patience: 2 });
    const hn = await fit(a, x, y, { ...quiet, epochs: 10, batchSize: 32, shuffle: false, callbacks: stop() });
    const ht = await b.fit(x, y, { epochs: 10, batchSize: 32, shuffle: false, verbose: 0, callbacks: stop() });
    expect(hn.epoch).toEqual(ht.epoch);
    expect(hn.epoch).toEqual([0, 1, 2]);
    expect(relErr(flatWeights(a), flatWeights(b))).toBeLessThan(1e-4);

    const c = compiled('adam', 'softmax');
    const d = compiled('adam', 'softmax');
    const stopAt = (m: tf.LayersModel) => ({
      onBatchEnd: (batch: number) => {
        if (batch === 3) m.stopTraining = true;
      },
    });
    await fit(c, x, y, { ...quiet, epochs: 3, batchSize: 32, shuffle: false, callbacks: stopAt(c) });
    await d.fit(x, y, { epochs: 3, batchSize: 32, shuffle: false, verbose: 0, callbacks: stopAt(d) });
    expect(c.optimizer.iterations).toBe(4);
    expect(d.optimizer.iterations).toBe(4);
    expect(relErr(flatWeights(c), flatWeights(d))).toBeLessThan(1e-4);
    tf.dispose([x, y]);
    dispose(a, b, c, d);
  });
});

describe('fit: fallback and bad options', () => {
  it('falls back to model.fit with one line naming why, or throws when the engine was asked for', async () => {
    const { x, y } = data(64, 'softmax');
    const m = compiled('adam', 'softmax');
    m.compile({ optimizer: tf.train.rmsprop(0.01), loss: 'categoricalCrossentropy' });
    const lines: string[] = [];
    const h = await fit(m, x, y, { epochs: 1, batchSize: 32, verbose: 0, log: (l) => lines.push(l) });
    expect(h.epoch).toEqual([0]);
    expect(m.optimizer.iterations).toBe(2);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^reptile-ml: fit runs on tfjs's model\.fit because (the optimizer RMSProp is not one the engine runs|the native engine is unavailable)/);
    if (nativeSkipReason === undefined) {
      await expect(fit(m, x, y, { epochs: 1, engine: 'native' })).rejects.toThrow(/optimizer RMSProp is not one the engine runs/);
      // Soft labels: categoricalCrossentropy on targets that are not one-hot is not the engine's loss.
      const soft = compiled('adam', 'softmax');
      const ys = tf.fill([64, 10], 0.1);
      await fit(soft, x, ys, { epochs: 1, verbose: 0, log: (l) => lines.push(l) });
      expect(lines[1]).toMatch(/^reptile-ml: fit runs on tfjs's model\.fit because the targets of example 0 are not one-hot/);
      expect(soft.optimizer.iterations).toBe(2);
      ys.dispose();
      dispose(soft);
    }
    tf.dispose([x, y]);
    dispose(m);
  });

  it('refuses bad options with one line naming the option', async () => {
    const { x, y } = data(8, 'softmax');
    const m = compiled('adam', 'softmax');
    await expect(fit(m, x, y, { epochs: -1 })).rejects.toThrow(/^epochs must be a whole number ≥ 0, got -1$/);
    await expect(fit(m, x, y, { batchSize: 0 })).rejects.toThrow(/^batchSize must be a whole number ≥ 1/);
    await expect(fit(m, x, y, { validationSplit: 1 })).rejects.toThrow(/^validationSplit must be a number in \[0, 1\)/);
    await expect(fit(m, x, y, { engine: 'gpu' as never })).rejects.toThrow(/^engine must be 'auto', 'native' or 'tfjs'/);
    if (nativeSkipReason === undefined) {
      const wrong = tf.zeros([8, 3]);
      await expect(fit(m, x, wrong, { engine: 'native' })).rejects.toThrow(/^y of shape \[8, 3\] does not fit categoricalCrossentropy on 10 outputs/);
      wrong.dispose();
    }
    tf.dispose([x, y]);
    dispose(m);
  });
});
