import * as tf from '@tensorflow/tfjs';
import { InvalidOptionsError, ReptileError, UnsupportedModelError } from '../_utils/errors.js';
import { Rng } from '../core/rng.js';
import { loadNative, requestedIsa, requestedThreads, type NativeEngine } from '../engine/native.js';
import { compileModel } from '../learners/compile-model.js';
import { flattenTensors, modelWeights, writeModelWeights } from '../learners/weights.js';
import { labelsOf, metricSum, validate } from './metrics.js';
import { checkOptions, engineTargets, OWN_OPTIONS, prepare, Unsupported, valuesOf, type FitOptions, type Prepared } from './prepare.js';
import { adamMoments, writeBack, type LayerVar } from './write-back.js';

export type { FitEngine, FitOptions } from './prepare.js';

/**
 * Keras's `model.fit` for a compiled tfjs model, run on the native engine (paper §3 with the
 * training set as the one task when the optimizer is {@link Reptile}: Lookahead): the same
 * contract — epochs, batch size, shuffle, validation, initial epoch, callbacks called in tfjs's
 * order with the same logs, EarlyStopping, a `tf.History` — so switching from `model.fit(x, y,
 * args)` to `fit(model, x, y, args)` costs one line. The engine runs the Reptile optimizer (over
 * Adam or SGD), `tf.train.adam` and `tf.train.sgd` with the losses categoricalCrossentropy,
 * sparseCategoricalCrossentropy (softmax outputs), binaryCrossentropy (sigmoid outputs) and
 * meanSquaredError, and the accuracy metrics. At the end, or when a callback stops training, the
 * weights and the optimizer's state (Reptile's slow weights and step, Adam's moments) are written
 * back, so `model.evaluate`, `model.predict`, `model.save(..., { includeOptimizer: true })` and a
 * later `fit` or `model.fit` continue exactly from there. A model, loss, optimizer or option the
 * engine does not run goes to `model.fit` with one line saying why (`engine: 'auto'`), or throws
 * `UnsupportedModelError` / `InvalidOptionsError` (`engine: 'native'`). Without `shuffle: false`
 * the order of epoch e is drawn from `seed` and e (tfjs draws it from `Math.random`).
 */
export async function fit(model: tf.LayersModel, x: tf.Tensor | tf.Tensor[], y: tf.Tensor | tf.Tensor[], options: FitOptions = {}): Promise<tf.History> {
  const engineChoice = options.engine ?? 'auto';
  if (engineChoice !== 'auto' && engineChoice !== 'native' && engineChoice !== 'tfjs') {
    throw new InvalidOptionsError(`engine must be 'auto', 'native' or 'tfjs', got ${JSON.stringify(engineChoice)}`, { option: 'engine' });
  }
  checkOptions(options);
  const tfArgs: tf.ModelFitArgs = {};
  for (const [k, v] of Object.entries(options)) if (!OWN_OPTIONS.has(k)) (tfArgs as Record<string, unknown>)[k] = v;
  if (engineChoice === 'tfjs') return model.fit(x, y, tfArgs);
  let prepared: Prepared;
  try {
    prepared = prepare(model, x, y, options);
  } catch (e) {
    // Bad data is the caller's to fix on either engine; what the engine lacks goes to model.fit.
    if (e instanceof InvalidOptionsError || (!(e instanceof Unsupported) && !(e instanceof ReptileError))) throw e;
    if (engineChoice === 'native') throw e instanceof ReptileError ? e : new UnsupportedModelError(`the native engine cannot run this fit: ${e.message}`);
    (options.log ?? console.warn)(`reptile-ml: fit runs on tfjs's model.fit because ${e.message.replace(/;.*$/, '')}`);
    return model.fit(x, y, tfArgs);
  }
  return runOnEngine(model, x as tf.Tensor, y as tf.Tensor, options, prepared);
}

/** Whether any callback acts between batches (then the engine runs one batch per call). */
function needsBatches(callbacks: unknown[]): boolean {
  const base = tf.History.prototype as unknown as Record<string, unknown>;
  return callbacks.some((c) => {
    if (c instanceof tf.CustomCallback) {
      const cc = c as unknown as { batchBegin?: unknown; batchEnd?: unknown; yield?: unknown };
      return cc.batchBegin != null || cc.batchEnd != null || cc.yield != null;
    }
    const r = c as Record<string, unknown>;
    return r.onBatchBegin !== base.onBatchBegin || r.onBatchEnd !== base.onBatchEnd;
  });
}

function standardize(callbacks: FitOptions['callbacks'], yieldEvery: tf.ModelFitArgs['yieldEvery']): tf.CustomCallback[] {
  if (callbacks == null) return [];
  const list = (Array.isArray(callbacks) ? callbacks : [callbacks]) as unknown[];
  const history = Object.getPrototypeOf(tf.History.prototype) as object;
  return list.map((c) => (Object.prototype.isPrototypeOf.call(history, c as object) ? c : new tf.CustomCallback(c as tf.CustomCallbackArgs, yieldEvery))) as tf.CustomCallback[];
}

async function runOnEngine(model: tf.LayersModel, xT: tf.Tensor, yT: tf.Tensor, o: FitOptions, p: Prepared): Promise<tf.History> {
  // A Sequential trains through the LayersModel inside it (its fit, its flags, what callbacks see).
  const inner = (model as unknown as { model?: tf.LayersModel }).model;
  const core = model.getClassName() === 'Sequential' && inner ? inner : model;
  const m = core as unknown as { isTraining: boolean; stopTraining: boolean; history: tf.History };
  if (m.isTraining) throw new Error('Cannot start training because another fit() call is ongoing.');
  const epochs = o.epochs ?? 1;
  const batchSize = o.batchSize ?? 32;
  const initialEpoch = o.initialEpoch ?? 0;
  const shuffle = o.shuffle ?? true;
  const seed = o.seed ?? 0;
  const status = loadNative();
  if (!status.ok) throw new ReptileError(`the native engine is unavailable: ${status.reason}`); // prepare checked it
  const plan = { ...compileModel(model, requestedIsa()), threads: o.threads ?? requestedThreads() };

  const xAll = valuesOf(xT);
  const yAll = valuesOf(yT);
  const total = xT.shape[0];
  const inSize = plan.inputSize;
  const ySize = yAll.length / Math.max(total, 1);
  let train = total;
  let val: { x: Float32Array; y: Float32Array; n: number } | undefined;
  if (o.validationData) {
    const [vx, vy] = o.validationData as [tf.Tensor, tf.Tensor];
    val = { x: valuesOf(vx), y: valuesOf(vy), n: vx.shape[0] };
  } else if (o.validationSplit !== undefined && o.validationSplit > 0) {
    train = Math.floor(total * (1 - o.validationSplit));
    val = { x: xAll.subarray(train * inSize), y: yAll.subarray(train * ySize), n: total - train };
  }
  const x = xAll.subarray(0, train * inSize);
  const yRaw = yAll.subarray(0, train * ySize);
  const targets = engineTargets(p.loss, yRaw, train, p.outputs);
  const labels = labelsOf(p.loss, yRaw, train, ySize);
  const valLabels = val ? labelsOf(p.loss, val.y, val.n, ySize) : undefined;

  const engine: NativeEngine = new status.addon.Engine(plan);
  const weights = model.trainableWeights as unknown as LayerVar[];
  const opt = p.inner.optimizer as unknown as { iterations: number };
  let reptileIter = p.reptile ? p.reptile.iterations : 0;
  let innerStep = opt.iterations;
  let counter = p.reptile ? reptileIter % p.reptile.syncPeriod : 0;
  let slow: Float32Array | undefined;
  let stepsRun = 0;
  try {
    engine.setParams(modelWeights(model));
    if (p.inner.kind === 'adam') {
      const [m1, v1] = await adamMoments(p.inner.optimizer, weights.length);
      const size = engine.getParams().length;
      engine.setOptimizerState('adam', innerStep, m1 ?? new Float32Array(size), v1 ?? new Float32Array(size));
    } else {
      engine.setOptimizerState('sgd', innerStep);
    }
    if (p.reptile) {
      const s = p.reptile.getSlowWeights();
      slow = s.length === weights.length && s.every((t) => t !== undefined) ? flattenTensors(s as tf.Tensor[]) : modelWeights(model);
    }

    const userCallbacks = standardize(o.callbacks, o.yieldEvery);
    const batchMode = needsBatches(userCallbacks);
    const history = new tf.History();
    const list = new tf.CallbackList([...userCallbacks, history]);
    const outLabels = ['loss', ...p.metrics.map((q) => q.name)];
    const callbackMetrics = [...outLabels, ...(val ? outLabels.map((l) => `val_${l}`) : [])];
    list.setParams({ epochs, initialEpoch, samples: train, steps: null, batchSize, verbose: o.verbose ?? 1, doValidation: val !== undefined, metrics: callbackMetrics } as unknown as tf.CustomCallbackArgs as never);
    list.setModel(core);
    m.history = history;
    m.isTraining = true;
    await list.onTrainBegin();
    m.stopTraining = false;
    const verbose = o.verbose !== undefined && o.verbose >= 1;

    const base = { inputs: x, targets, count: train, loss: p.nativeLoss, optimizer: p.inner.kind, learningRate: p.inner.learningRate, beta1: p.inner.beta1, beta2: p.inner.beta2, epsilon: p.inner.epsilon };
    const period = p.reptile?.syncPeriod ?? 0;
    const alpha = p.reptile?.metaStepSize ?? 0;
    for (let epoch = initialEpoch; epoch < epochs; epoch++) {
      const started = Date.now();
      await list.onEpochBegin(epoch);
      const order = epochOrder(train, shuffle ? seed : undefined, epoch);
      const numBatches = Math.ceil(train / batchSize);
      const sizes = new Int32Array(numBatches);
      for (let b = 0; b < numBatches; b++) sizes[b] = Math.min(batchSize, train - b * batchSize);
      const losses = new Float64Array(numBatches);
      const outputs = new Float32Array(train * p.outputs);
      const sums = new Float64Array(outLabels.length);
      let seen = 0;
      let done = 0;
      const run = async (from: number, to: number): Promise<void> => {
        const lo = from * batchSize;
        const hi = Math.min(to * batchSize, train);
        counter = await engine.fit({
          ...base,
          order: order.subarray(lo, hi),
          sizes: sizes.subarray(from, to),
          period,
          alpha,
          counter,
          ...(slow ? { slow } : {}),
          dropoutSeed: seed,
          firstStep: innerStep,
          losses: losses.subarray(from, to),
          outputs: outputs.subarray(lo * p.outputs, hi * p.outputs),
        });
        stepsRun += to - from;
        innerStep += to - from;
        reptileIter += to - from;
      };
      const batchLogs = (b: number): Record<string, number> => {
        const size = sizes[b]!;
        const logs: Record<string, number> = { batch: b, size, loss: losses[b]! };
        for (const q of p.metrics) logs[q.name] = metricSum(q.fn, outputs, p.outputs, order, b * batchSize, size, yRaw, ySize, labels) / size;
        return logs;
      };
      const account = (logs: Record<string, number>): void => {
        outLabels.forEach((l, k) => (sums[k]! += logs[l]! * logs.size!));
        seen += logs.size!;
      };
      if (batchMode) {
        for (let b = 0; b < numBatches; b++) {
          // One logs object, empty at onBatchBegin and filled for onBatchEnd, as tfjs hands it over.
          const logs: Record<string, number> = {};
          await list.onBatchBegin(b, logs);
          await run(b, b + 1);
          done = b + 1;
          Object.assign(logs, batchLogs(b));
          account(logs);
          // Callbacks see the model as it is now (weights; the optimizer state follows at epoch end).
          writeModelWeights(model, engine.getParams());
          await list.onBatchEnd(b, logs);
          if (m.stopTraining) break;
        }
      } else if (numBatches > 0) {
        await run(0, numBatches);
        done = numBatches;
        // account(batchLogs(b)) for every batch, without the objects: the same sums, in the same order.
        for (let b = 0; b < numBatches; b++) {
          const size = sizes[b]!;
          sums[0]! += losses[b]! * size;
          p.metrics.forEach((q, k) => (sums[k + 1]! += (metricSum(q.fn, outputs, p.outputs, order, b * batchSize, size, yRaw, ySize, labels) / size) * size));
          seen += size;
        }
      }
      const epochLogs: Record<string, number> = {};
      if (val && done === numBatches) Object.assign(epochLogs, validate(engine, val, valLabels!, p, batchSize));
      if (seen > 0) outLabels.forEach((l, k) => (epochLogs[l] = sums[k]! / seen));
      if (verbose) console.log(`Epoch ${epoch + 1}/${epochs} - ${((Date.now() - started) / 1000).toFixed(2)}s - ${Object.entries(epochLogs).map(([k, v]) => `${k}: ${v.toPrecision(4)}`).join(' - ')}`);
      await writeBack(model, engine, p, { innerStep, reptileIter, slow, stepsRun });
      await list.onEpochEnd(epoch, epochLogs);
      if (m.stopTraining) break;
    }
    await writeBack(model, engine, p, { innerStep, reptileIter, slow, stepsRun });
    await list.onTrainEnd();
    await history.syncData();
    return history;
  } finally {
    m.isTraining = false;
    engine.release();
  }
}

/**
 * The order of the examples in epoch `epoch`: 0, 1, …, n − 1 without a seed, else a permutation
 * drawn from (seed, epoch) alone (Fisher–Yates on `Rng.derive(seed, epoch)`).
 */
export function epochOrder(n: number, seed: number | undefined, epoch: number): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  // (Rng.shuffle only reads and writes by index: an Int32Array takes the same swaps.)
  if (seed !== undefined) Rng.derive(seed, epoch).shuffle(order as unknown as number[]);
  return order;
}
