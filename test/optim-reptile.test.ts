import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionsError, UsageError } from '../src/_utils/errors.js';
import { selectBackend } from '../src/engine/backend.js';
import { Reptile, type ReptileOptions } from '../src/optim/reptile.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

/** Runs `steps` minimize steps of a fixed least-squares problem on fresh variables and returns the values after each step. */
function trajectory(makeOptimizer: () => tf.Optimizer, steps: number, gradForm: 'map' | 'array' = 'map'): number[][] {
  const opt = makeOptimizer();
  const w = tf.variable(tf.tensor2d([[0.3, -0.2], [0.1, 0.5], [-0.4, 0.2]]));
  const b = tf.variable(tf.tensor1d([0.05, -0.1]));
  const x = tf.tensor2d([[1, 2, 3], [0.5, -1, 2], [-1, 0.25, 1], [2, 1, -0.5]]);
  const y = tf.tensor2d([[1, 0], [0, 1], [1, 1], [-1, 0.5]]);
  const out: number[][] = [];
  for (let s = 0; s < steps; s++) {
    if (gradForm === 'map') opt.minimize(() => tf.losses.meanSquaredError(y, tf.add(tf.matMul(x, w), b)) as tf.Scalar);
    else opt.minimize(() => tf.losses.meanSquaredError(y, tf.add(tf.matMul(x, w), b)) as tf.Scalar, false, [w, b]);
    out.push([...w.dataSync(), ...b.dataSync()]);
  }
  tf.dispose([w, b, x, y]);
  opt.dispose();
  return out;
}

describe('Reptile optimizer: degenerate settings', () => {
  it('with syncPeriod 1 and ε = 1 follows its inner SGD exactly', () => {
    const ref = trajectory(() => tf.train.sgd(0.05), 25);
    const rep = trajectory(() => new Reptile({ learningRate: 0.05, innerOptimizer: 'sgd', syncPeriod: 1, metaStepSize: 1 }), 25);
    expect(rep).toEqual(ref);
  });

  it('with syncPeriod 1 and ε = 1 follows its inner Adam exactly, gradients as a map and as an array', () => {
    const ref = trajectory(() => tf.train.adam(0.02), 25);
    expect(trajectory(() => new Reptile({ learningRate: 0.02, innerOptimizer: 'adam', syncPeriod: 1, metaStepSize: 1 }), 25, 'map')).toEqual(ref);
    expect(trajectory(() => new Reptile({ learningRate: 0.02, innerOptimizer: 'adam', syncPeriod: 1, metaStepSize: 1 }), 25, 'array')).toEqual(ref);
  });

  it('with ε = 1 and any k follows an inner optimizer instance exactly (the sync is then a no-op)', () => {
    const ref = trajectory(() => tf.train.momentum(0.05, 0.9), 20);
    expect(trajectory(() => new Reptile({ innerOptimizer: tf.train.momentum(0.05, 0.9), syncPeriod: 4, metaStepSize: 1 }), 20)).toEqual(ref);
  });

  it('with ε = 0 keeps the slow weights at their start and resets the model to them at every sync', () => {
    const opt = new Reptile({ learningRate: 0.1, syncPeriod: 3, metaStepSize: 0 });
    const v = tf.variable(tf.tensor1d([1, -2, 0.5]));
    const start = Array.from(v.dataSync());
    for (let s = 1; s <= 9; s++) {
      opt.minimize(() => tf.sum(tf.square(tf.sub(v, tf.tensor1d([3, 3, 3])))) as tf.Scalar);
      const slow = opt.getSlowWeights()[0]!;
      expect(Array.from(slow.dataSync())).toEqual(start);
      if (s % 3 === 0) expect(Array.from(v.dataSync())).toEqual(start);
      else expect(Array.from(v.dataSync())).not.toEqual(start);
    }
    v.dispose();
    opt.dispose();
  });
});

describe('Reptile optimizer: hand-computed trajectory', () => {
  it('SGD on f(x, y) = ½x² + y² over two sync periods (k = 2, ε = 0.5, lr 0.25)', () => {
    // ∇f = (x, 2y), so one SGD step with lr 0.25 is x ← 0.75·x, y ← 0.5·y. Start θ = φ = (1, 1).
    //   step 1: θ = (0.75, 0.5)
    //   step 2: θ = (0.5625, 0.25); sync: φ = ½·(1, 1) + ½·(0.5625, 0.25) = (0.78125, 0.625); θ ← φ
    //   step 3: θ = (0.5859375, 0.3125)
    //   step 4: θ = (0.439453125, 0.15625); sync: φ = ½·(0.78125, 0.625) + ½·(0.439453125, 0.15625)
    //                                             = (0.6103515625, 0.390625); θ ← φ
    // Every value is a dyadic fraction, so float32 holds it exactly.
    const expected = [
      { theta: [0.75, 0.5], phi: [1, 1] },
      { theta: [0.78125, 0.625], phi: [0.78125, 0.625] },
      { theta: [0.5859375, 0.3125], phi: [0.78125, 0.625] },
      { theta: [0.6103515625, 0.390625], phi: [0.6103515625, 0.390625] },
    ];
    const opt = new Reptile({ learningRate: 0.25, innerOptimizer: 'sgd', syncPeriod: 2, metaStepSize: 0.5 });
    const v = tf.variable(tf.tensor1d([1, 1]));
    const coef = tf.tensor1d([0.5, 1]);
    for (const [i, e] of expected.entries()) {
      opt.minimize(() => tf.sum(tf.mul(coef, tf.square(v))) as tf.Scalar);
      expect(Array.from(v.dataSync()), `θ after step ${i + 1}`).toEqual(e.theta);
      expect(Array.from(opt.getSlowWeights()[0]!.dataSync()), `φ after step ${i + 1}`).toEqual(e.phi);
    }
    expect(opt.iterations).toBe(4);
    tf.dispose([v, coef]);
    opt.dispose();
  });
});

/** A small classifier with fixed initial weights, for the model.fit / save / load tests. */
function smallModel(): tf.Sequential {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 5, activation: 'relu', inputShape: [4], kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  return model;
}

function batches(n: number): { x: tf.Tensor2D; y: tf.Tensor2D }[] {
  return Array.from({ length: n }, (_, i) => ({
    x: tf.tensor2d(Array.from({ length: 8 * 4 }, (_, j) => Math.sin(0.7 * (i * 32 + j))), [8, 4]),
    y: tf.oneHot(tf.tensor1d(Array.from({ length: 8 }, (_, j) => (i + j) % 3), 'int32'), 3).toFloat() as tf.Tensor2D,
  }));
}

async function weightsOf(model: tf.LayersModel): Promise<number[][]> {
  return Promise.all(model.getWeights().map(async (w) => Array.from(await w.data())));
}

describe('Reptile optimizer: serialisation', () => {
  it('registers as "Reptile" and round-trips its config through fromConfig', () => {
    expect(tf.serialization.SerializationMap.getMap().classNameMap['Reptile']?.[0]).toBe(Reptile);
    const a = new Reptile({ learningRate: 0.003, innerOptimizer: 'adam', syncPeriod: 7, metaStepSize: 0.25 });
    const b = Reptile.fromConfig(Reptile, a.getConfig()) as Reptile;
    expect(b).toBeInstanceOf(Reptile);
    expect(b.getConfig()).toEqual(a.getConfig());
    expect(b.inner).toBeInstanceOf(tf.AdamOptimizer);
    a.dispose();
    b.dispose();
  });

  it('an inner optimizer that cannot save its state is an error at save time, not a silently smaller save', async () => {
    class Stateless extends tf.SGDOptimizer {
      override getWeights(): ReturnType<tf.Optimizer['getWeights']> {
        return Promise.reject(new Error('getWeights() is not implemented for this optimizer yet.'));
      }
    }
    const r = new Reptile({ innerOptimizer: new Stateless(0.1), syncPeriod: 2 });
    const m = smallModel();
    m.compile({ optimizer: r, loss: 'categoricalCrossentropy' });
    const d = batches(1)[0]!;
    await m.trainOnBatch(d.x, d.y);
    await expect(r.getWeights()).rejects.toThrow(/^Reptile: the inner optimizer SGD cannot save its state \(getWeights\(\) is not implemented for this optimizer yet\.\): save the model without includeOptimizer, or use an `innerOptimizer` that implements getWeights/);
    await expect(m.save(tf.io.withSaveHandler(async () => ({ modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })), { includeOptimizer: true })).rejects.toThrow(/cannot save its state/);
    r.dispose();
  });

  for (const inner of ['sgd', 'adam'] as const) {
    it(`model.save → tf.loadLayersModel → continue equals uninterrupted training (inner ${inner}, saved mid-period)`, async () => {
      const data = batches(12);
      const opts: ReptileOptions = { learningRate: 0.05, innerOptimizer: inner, syncPeriod: 3, metaStepSize: 0.4 };
      const a = smallModel();
      a.compile({ optimizer: new Reptile(opts), loss: 'categoricalCrossentropy' });
      for (const d of data.slice(0, 8)) await a.trainOnBatch(d.x, d.y); // 8 steps: two steps into the third period
      let saved: tf.io.ModelArtifacts | undefined;
      await a.save(tf.io.withSaveHandler(async (art) => {
        saved = art;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }), { includeOptimizer: true });
      const b = await tf.loadLayersModel(tf.io.fromMemory(saved!));
      expect(b.optimizer).toBeInstanceOf(Reptile);
      expect(b.optimizer.iterations).toBe(8);
      expect((b.optimizer as Reptile).getConfig()).toEqual((a.optimizer as Reptile).getConfig());
      expect(await weightsOf(b)).toEqual(await weightsOf(a));
      // The whole optimizer state (iterations, slow weights, inner state) came back bit for bit.
      const stateOf = async (m: tf.LayersModel) =>
        Promise.all((await m.optimizer.getWeights()).map(async (w) => [w.name, Array.from(await w.tensor.data())]));
      expect(await stateOf(b)).toEqual(await stateOf(a));
      if (inner === 'adam') {
        // tfjs's Adam.setWeights recomputes β^(t+1) with pow(), off in the last bits from the running product.
        const acc = (m: tf.LayersModel) => {
          const o = (m.optimizer as Reptile).inner as unknown as { accBeta1: tf.Variable; accBeta2: tf.Variable };
          return [o.accBeta1.dataSync()[0], o.accBeta2.dataSync()[0]];
        };
        expect(acc(b)).toEqual(acc(a));
      }
      for (const d of data.slice(8)) {
        await a.trainOnBatch(d.x, d.y);
        await b.trainOnBatch(d.x, d.y);
      }
      expect(await weightsOf(b)).toEqual(await weightsOf(a));
      const slowA = (a.optimizer as Reptile).getSlowWeights().map((t) => Array.from(t!.dataSync()));
      const slowB = (b.optimizer as Reptile).getSlowWeights().map((t) => Array.from(t!.dataSync()));
      expect(slowB).toEqual(slowA);
      for (const m of [a, b]) {
        m.optimizer.dispose();
        m.dispose();
      }
      tf.dispose(data.flatMap((d) => [d.x, d.y]));
    });
  }

  it('is used when a saved model names it only by its class name (after registerClass)', async () => {
    const data = batches(6);
    const ref = smallModel();
    const artifacts = await new Promise<tf.io.ModelArtifacts>((resolve) => {
      void ref.save(tf.io.withSaveHandler(async (art) => {
        resolve(art);
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }));
    });
    // A training config as Keras writes it: snake_case, the optimizer only by class name.
    artifacts.trainingConfig = {
      loss: 'categorical_crossentropy',
      metrics: [],
      optimizer_config: { class_name: 'Reptile', config: { learning_rate: 0.1, inner_optimizer: 'sgd', sync_period: 2, meta_step_size: 0.5 } },
    } as unknown as tf.io.TrainingConfig;
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
    expect(loaded.optimizer).toBeInstanceOf(Reptile);
    const r = loaded.optimizer as Reptile;
    expect([r.learningRate, r.syncPeriod, r.metaStepSize, r.innerOptimizerName]).toEqual([0.1, 2, 0.5, 'sgd']);
    ref.compile({ optimizer: new Reptile({ learningRate: 0.1, innerOptimizer: 'sgd', syncPeriod: 2, metaStepSize: 0.5 }), loss: 'categoricalCrossentropy' });
    for (const d of data) {
      await ref.trainOnBatch(d.x, d.y);
      await loaded.trainOnBatch(d.x, d.y);
    }
    expect(await weightsOf(loaded)).toEqual(await weightsOf(ref));
    for (const m of [ref, loaded]) {
      m.optimizer.dispose();
      m.dispose();
    }
    tf.dispose(data.flatMap((d) => [d.x, d.y]));
  });

  it('trains the documentation network through model.fit (gradients arrive as an array)', async () => {
    const model = smallModel();
    model.compile({ optimizer: new Reptile({ learningRate: 0.1 }), loss: 'categoricalCrossentropy' });
    const data = batches(4);
    const x = tf.concat(data.map((d) => d.x));
    const y = tf.concat(data.map((d) => d.y));
    const h = await model.fit(x, y, { epochs: 20, batchSize: 8, shuffle: false, verbose: 0 });
    const losses = h.history['loss'] as number[];
    expect(losses[losses.length - 1]!).toBeLessThan(losses[0]!);
    expect(model.optimizer.iterations).toBe(80);
    model.optimizer.dispose();
    model.dispose();
    tf.dispose([x, y, ...data.flatMap((d) => [d.x, d.y])]);
  });
});

describe('Reptile optimizer: memory', () => {
  for (const inner of ['sgd', 'adam'] as const) {
    it(`leaks no tensor over 1,000 steps (inner ${inner}) and frees everything on dispose`, () => {
      const before = tf.memory().numTensors;
      const opt = new Reptile({ learningRate: 0.01, innerOptimizer: inner, syncPeriod: 5 });
      const w = tf.tidy(() => tf.variable(tf.randomNormal([6, 3], 0, 1, 'float32', 3)));
      const x = tf.randomNormal([10, 6], 0, 1, 'float32', 4);
      const step = () => opt.minimize(() => tf.mean(tf.square(tf.matMul(x, w))) as tf.Scalar);
      for (let i = 0; i < 10; i++) step(); // lazily created state (slow weights, moments) exists from here on
      const steady = tf.memory().numTensors;
      for (let i = 0; i < 1000; i++) step();
      expect(tf.memory().numTensors).toBe(steady);
      opt.dispose();
      tf.dispose([w, x]);
      expect(tf.memory().numTensors).toBe(before);
    });
  }
});

describe('Reptile optimizer: bad options (one clear line each)', () => {
  const cases: [string, unknown, RegExp][] = [
    ['negative learning rate', { learningRate: -0.1 }, /`learningRate` must be a positive finite number, got -0\.1/],
    ['zero learning rate', { learningRate: 0 }, /`learningRate` must be a positive finite number, got 0/],
    ['learning rate as a string', { learningRate: '0.01' }, /`learningRate` must be a positive finite number, got '0\.01'/],
    ['NaN learning rate', { learningRate: Number.NaN }, /`learningRate` must be a positive finite number, got NaN/],
    ['syncPeriod 0', { syncPeriod: 0 }, /`syncPeriod` must be a whole number ≥ 1 .*got 0/],
    ['fractional syncPeriod', { syncPeriod: 2.5 }, /`syncPeriod` must be a whole number ≥ 1 .*got 2\.5/],
    ['ε > 1', { metaStepSize: 1.5 }, /`metaStepSize` \(ε\) must be a number in \[0, 1\], got 1\.5/],
    ['negative ε', { metaStepSize: -0.1 }, /`metaStepSize` \(ε\) must be a number in \[0, 1\], got -0\.1/],
    ['unknown inner optimizer', { innerOptimizer: 'rmsprop' }, /`innerOptimizer` must be 'sgd', 'adam' or a tf\.Optimizer instance, got 'rmsprop'/],
    ['inner optimizer of the wrong type', { innerOptimizer: 3 }, /`innerOptimizer` must be .* got 3/],
    // A stand-in with the optimizer's interface: a real tf.Optimizer here would run tfjs before beforeAll.
    ['learning rate beside an instance', { learningRate: 0.1, innerOptimizer: { applyGradients: () => {} } }, /`learningRate` applies only to a named `innerOptimizer`/],
    ['misspelt option', { learning_rate: 0.1 }, /unknown Reptile option 'learning_rate'/],
    ['options not an object', 0.01, /Reptile options must be an object .* got 0\.01/],
  ];
  for (const [what, options, pattern] of cases) {
    it(`rejects ${what}`, () => {
      let err: unknown;
      try {
        new Reptile(options as ReptileOptions);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidOptionsError);
      expect(err).toBeInstanceOf(UsageError);
      expect((err as InvalidOptionsError).exitCode).toBe(2);
      const msg = (err as Error).message;
      expect(msg).toMatch(pattern);
      expect(msg).not.toContain('\n');
    });
  }
});
