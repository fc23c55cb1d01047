import * as tf from '@tensorflow/tfjs';
import { InvalidOptionsError, ReptileError, UnsupportedModelError } from '../_utils/errors.js';
import { Rng } from '../core/rng.js';
import { sizeOf } from '../core/params.js';
import { loadNative, requestedIsa, requestedThreads, type NativeEngine, type NativeLoss } from '../engine/native.js';
import { compileModel } from '../learners/compile-model.js';
import { checkNoRegularizers, modelWeights } from '../learners/weights.js';
import { Reptile } from '../optim/reptile.js';

/** Where {@link fit} trains: `auto` (the engine, else `model.fit` with one line why), `native` (the engine or an error), `tfjs` (`model.fit`). */
export type FitEngine = 'auto' | 'native' | 'tfjs';

/**
 * Options of {@link fit}: tfjs's `ModelFitArgs` (epochs, batchSize, shuffle, validationData,
 * validationSplit, initialEpoch, verbose, callbacks, yieldEvery), plus `seed` (the shuffling order
 * of epoch e is a pure function of seed and e, so runs repeat), `engine` and `threads`.
 */
export interface FitOptions extends tf.ModelFitArgs {
  /** Seed of the shuffled order (default 0). */
  seed?: number;
  /** Where to train; default `auto`. */
  engine?: FitEngine;
  /** Engine threads (1 or 2); default `REPTILE_NATIVE_THREADS`, else 2 on a machine with two CPUs. Results do not depend on it. */
  threads?: 1 | 2;
  /** Where the fallback line goes; default `console.warn`. */
  log?: (line: string) => void;
}

type Loss = 'categoricalCrossentropy' | 'sparseCategoricalCrossentropy' | 'binaryCrossentropy' | 'meanSquaredError';
type Metric = 'binaryAccuracy' | 'categoricalAccuracy' | 'sparseCategoricalAccuracy';

const LOSS_NAMES: Record<string, Loss> = {
  categoricalCrossentropy: 'categoricalCrossentropy',
  sparseCategoricalCrossentropy: 'sparseCategoricalCrossentropy',
  binaryCrossentropy: 'binaryCrossentropy',
  meanSquaredError: 'meanSquaredError',
  mse: 'meanSquaredError',
  MSE: 'meanSquaredError',
};

const OWN_OPTIONS = new Set(['seed', 'engine', 'threads', 'log']);
const TFJS_OPTIONS = new Set(['epochs', 'batchSize', 'shuffle', 'validationData', 'validationSplit', 'initialEpoch', 'verbose', 'callbacks', 'yieldEvery']);
const EPSILON = 1e-7;

/** Why the engine cannot run this `fit` (one clause), or the prepared run. */
class Unsupported extends Error {}

interface InnerOpt {
  kind: 'sgd' | 'adam';
  optimizer: tf.Optimizer;
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
}

interface Prepared {
  loss: Loss;
  nativeLoss: NativeLoss;
  metrics: { name: string; fn: Metric }[];
  inner: InnerOpt;
  reptile: Reptile | undefined;
  outputs: number;
}

/** A tensor as float32 values (labels too). */
function valuesOf(t: tf.Tensor): Float32Array {
  const v = t.dataSync();
  return v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>);
}

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

function checkOptions(o: FitOptions): void {
  if (o === null || typeof o !== 'object') throw new InvalidOptionsError('fit options must be an object such as { epochs: 2, batchSize: 32 }');
  const positiveInt = (name: keyof FitOptions, min: number): void => {
    const v = o[name];
    if (v !== undefined && !(typeof v === 'number' && Number.isInteger(v) && v >= min)) {
      throw new InvalidOptionsError(`${name} must be a whole number ≥ ${min}, got ${JSON.stringify(v)}`, { option: name });
    }
  };
  positiveInt('epochs', 0);
  positiveInt('batchSize', 1);
  positiveInt('initialEpoch', 0);
  positiveInt('seed', 0);
  if (o.validationSplit !== undefined && !(typeof o.validationSplit === 'number' && o.validationSplit >= 0 && o.validationSplit < 1)) {
    throw new InvalidOptionsError(`validationSplit must be a number in [0, 1), got ${JSON.stringify(o.validationSplit)}`, { option: 'validationSplit' });
  }
  if (o.threads !== undefined && o.threads !== 1 && o.threads !== 2) throw new InvalidOptionsError(`threads must be 1 or 2, got ${JSON.stringify(o.threads)}`, { option: 'threads' });
}

/** Checks that the engine runs this model, loss, optimizer, data and options; throws Unsupported with the reason. */
function prepare(model: tf.LayersModel, x: tf.Tensor | tf.Tensor[], y: tf.Tensor | tf.Tensor[], o: FitOptions): Prepared {
  const extra = Object.keys(o).find((k) => !OWN_OPTIONS.has(k) && !TFJS_OPTIONS.has(k) && (o as Record<string, unknown>)[k] !== undefined);
  if (extra !== undefined) throw new Unsupported(`the engine does not take the option '${extra}'`);
  if (o.shuffle !== undefined && typeof o.shuffle !== 'boolean') throw new Unsupported(`the engine takes shuffle true or false, not ${JSON.stringify(o.shuffle)}`);
  const status = loadNative();
  if (!status.ok) throw new Unsupported(`the native engine is unavailable (${status.reason})`);
  const m = model as unknown as { optimizer?: tf.Optimizer; loss?: unknown; metricsNames?: string[]; metricsTensors?: [unknown, number][]; isTraining?: boolean };
  if (!m.optimizer || m.loss === undefined) throw new Unsupported('the model is not compiled (call model.compile first)');
  if (Array.isArray(x) || Array.isArray(y)) throw new Unsupported('the engine takes one input tensor and one target tensor');
  if (model.outputs.length !== 1 || model.inputs.length !== 1) throw new Unsupported('the model has several inputs or outputs');
  const lossName = typeof m.loss === 'string' ? LOSS_NAMES[m.loss] : undefined;
  if (lossName === undefined) throw new Unsupported(`the loss ${typeof m.loss === 'string' ? `'${m.loss}'` : 'is a function or a list, which'} is not one the engine computes (categoricalCrossentropy, sparseCategoricalCrossentropy, binaryCrossentropy, meanSquaredError)`);
  checkNoRegularizers(model);
  compileModel(model); // throws the compiler's UnsupportedModelError for a layer it does not run
  const last = model.layers[model.layers.length - 1]!;
  const activation = last.getClassName() === 'Softmax' ? 'softmax' : ((last.getConfig() as Record<string, unknown>).activation as string | undefined);
  let nativeLoss: NativeLoss;
  if (lossName === 'categoricalCrossentropy' || lossName === 'sparseCategoricalCrossentropy') {
    if (activation !== 'softmax') throw new Unsupported(`${lossName} reads the output as probabilities and the engine computes it only after a softmax output layer`);
    nativeLoss = 'softmax-xent';
  } else if (lossName === 'binaryCrossentropy') {
    if (activation !== 'sigmoid') throw new Unsupported('binaryCrossentropy runs on the engine only after a sigmoid output layer');
    nativeLoss = 'sigmoid-bce' as NativeLoss;
  } else {
    nativeLoss = 'mse';
  }
  const outputs = sizeOf(model.outputs[0]!.shape.slice(1) as number[]);
  const metrics: { name: string; fn: Metric }[] = [];
  const names = m.metricsNames ?? ['loss'];
  (m.metricsTensors ?? []).forEach(([fn], i) => {
    const name = names[i + 1] ?? '';
    // tfjs's bundle may rename the functions (categoricalAccuracy$1).
    const fnName = ((fn as { name?: string }).name ?? '').replace(/\$\d+$/, '');
    if (fnName !== 'binaryAccuracy' && fnName !== 'categoricalAccuracy' && fnName !== 'sparseCategoricalAccuracy') {
      throw new Unsupported(`the metric '${name}' is not one the engine computes (accuracy and its variants)`);
    }
    metrics.push({ name, fn: fnName });
  });
  let reptile: Reptile | undefined;
  let innerOpt = m.optimizer;
  // Not instanceof: tf.Optimizer's Symbol.hasInstance answers true for every optimizer.
  if (m.optimizer.getClassName() === Reptile.className) {
    reptile = m.optimizer as Reptile;
    innerOpt = reptile.inner;
  }
  const cls = innerOpt.getClassName();
  const io = innerOpt as unknown as { learningRate: number; beta1: number; beta2: number; epsilon: number };
  let inner: InnerOpt;
  if (cls === 'Adam') inner = { kind: 'adam', optimizer: innerOpt, learningRate: io.learningRate, beta1: io.beta1, beta2: io.beta2, epsilon: io.epsilon };
  else if (cls === 'SGD') inner = { kind: 'sgd', optimizer: innerOpt, learningRate: io.learningRate, beta1: 0, beta2: 0, epsilon: 0 };
  else throw new Unsupported(`the optimizer ${reptile ? `Reptile over ${cls}` : cls} is not one the engine runs (Reptile over Adam or SGD, adam, sgd)`);
  const n = x.shape[0];
  if (x.shape.length < 2 || sizeOf(x.shape.slice(1)) !== sizeOf(model.inputs[0]!.shape.slice(1) as number[])) {
    throw new InvalidOptionsError(`x of shape [${x.shape.join(', ')}] does not fit the model's input [null, ${model.inputs[0]!.shape.slice(1).join(', ')}]`);
  }
  if (y.shape[0] !== n) throw new InvalidOptionsError(`x has ${n} examples but y has ${y.shape[0]}: give one target per example`);
  const ySize = sizeOf(y.shape.slice(1));
  const expect = lossName === 'sparseCategoricalCrossentropy' ? 1 : outputs;
  if (ySize !== expect) throw new InvalidOptionsError(`y of shape [${y.shape.join(', ')}] does not fit ${lossName} on ${outputs} outputs (expected ${expect} value${expect === 1 ? '' : 's'} per example)`);
  if (o.validationData) {
    const [vx, vy, extraData] = o.validationData as unknown[];
    if (!(vx instanceof tf.Tensor) || !(vy instanceof tf.Tensor) || extraData !== undefined) throw new Unsupported('the engine takes validationData as [x, y] tensors (no sample weights)');
    if (sizeOf(vx.shape.slice(1)) !== sizeOf(x.shape.slice(1)) || vy.shape[0] !== vx.shape[0] || sizeOf(vy.shape.slice(1)) !== ySize) {
      throw new InvalidOptionsError(`validationData of shapes [${vx.shape.join(', ')}] and [${vy.shape.join(', ')}] do not match x and y`, { option: 'validationData' });
    }
  }
  // Soft labels would train another loss than the engine's; found here, they go to model.fit.
  if (lossName === 'categoricalCrossentropy') {
    engineTargets(lossName, valuesOf(y), n, outputs);
    if (o.validationData) {
      const vy = (o.validationData as tf.Tensor[])[1]!;
      engineTargets(lossName, valuesOf(vy), vy.shape[0], outputs);
    }
  }
  return { loss: lossName, nativeLoss, metrics, inner, reptile, outputs };
}

/** The engine's targets: class labels for the softmax cross-entropies (one-hot rows checked), else the values. */
function engineTargets(loss: Loss, y: Float32Array, n: number, outputs: number): Float32Array {
  if (loss === 'sparseCategoricalCrossentropy') return y;
  if (loss !== 'categoricalCrossentropy') return y;
  const labels = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let label = -1;
    for (let j = 0; j < outputs; j++) {
      const v = y[i * outputs + j]!;
      if (v === 1 && label < 0) label = j;
      else if (v !== 0) throw new Unsupported(`the targets of example ${i} are not one-hot (the engine trains categoricalCrossentropy on one-hot targets)`);
    }
    if (label < 0) throw new Unsupported(`the targets of example ${i} are not one-hot (the engine trains categoricalCrossentropy on one-hot targets)`);
    labels[i] = label;
  }
  return labels;
}

/** Each example's class as the accuracies read it: the label itself (sparse targets), else the first largest target value (tf.argMax). */
function labelsOf(loss: Loss, y: Float32Array, n: number, ySize: number): Float32Array {
  if (loss === 'sparseCategoricalCrossentropy') return y;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < ySize; j++) if (y[i * ySize + j]! > y[i * ySize + best]!) best = j;
    out[i] = best;
  }
  return out;
}

/** The metric of one example's output (`out`, `outputs` values) against its target row. */
function metricOf(fn: Metric, out: Float32Array, o: number, t: Float32Array, tOff: number, outputs: number, label: number): number {
  if (fn === 'binaryAccuracy') {
    let hits = 0;
    for (let j = 0; j < outputs; j++) hits += (out[o + j]! > 0.5 ? 1 : 0) === t[tOff + j] ? 1 : 0;
    return hits / outputs;
  }
  let best = 0;
  for (let j = 1; j < outputs; j++) if (out[o + j]! > out[o + best]!) best = j;
  return best === label ? 1 : 0;
}

/** tfjs's loss of one example (for validation), in double. */
function lossOf(loss: Loss, out: Float32Array, o: number, t: Float32Array, tOff: number, outputs: number, label: number): number {
  if (loss === 'meanSquaredError') {
    let s = 0;
    for (let j = 0; j < outputs; j++) s += (out[o + j]! - t[tOff + j]!) ** 2;
    return s / outputs;
  }
  if (loss === 'binaryCrossentropy') {
    let s = 0;
    for (let j = 0; j < outputs; j++) {
      const p = Math.min(Math.max(out[o + j]!, EPSILON), 1 - EPSILON);
      const z = Math.log(p / (1 - p));
      const target = t[tOff + j]!;
      s += Math.max(z, 0) - z * target + Math.log1p(Math.exp(-Math.abs(z)));
    }
    return s / outputs;
  }
  let sum = 0;
  for (let j = 0; j < outputs; j++) sum += out[o + j]!;
  const p = Math.min(Math.max(out[o + label]! / sum, EPSILON), 1 - EPSILON);
  return -Math.log(p);
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

interface LayerVar {
  name: string;
  shape: number[];
  read(): tf.Tensor;
  write(t: tf.Tensor): void;
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
      slow = s.length === weights.length && s.every((t) => t !== undefined) ? flatten(s as tf.Tensor[]) : modelWeights(model);
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
        const acc = new Float64Array(p.metrics.length);
        for (let r = b * batchSize; r < b * batchSize + size; r++) {
          const e = order[r]!;
          p.metrics.forEach((q, k) => {
            acc[k]! += metricOf(q.fn, outputs, r * p.outputs, yRaw, e * ySize, p.outputs, labels[e]!);
          });
        }
        p.metrics.forEach((q, k) => (logs[q.name] = acc[k]! / size));
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
          writeWeights(model, engine.getParams());
          await list.onBatchEnd(b, logs);
          if (m.stopTraining) break;
        }
      } else if (numBatches > 0) {
        await run(0, numBatches);
        done = numBatches;
        for (let b = 0; b < numBatches; b++) account(batchLogs(b));
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
  const order = Array.from({ length: n }, (_, i) => i);
  if (seed !== undefined) Rng.derive(seed, epoch).shuffle(order);
  return Int32Array.from(order);
}

function validate(engine: NativeEngine, val: { x: Float32Array; y: Float32Array; n: number }, labels: Float32Array, p: Prepared, batchSize: number): Record<string, number> {
  const inSize = val.x.length / Math.max(val.n, 1);
  let lossSum = 0;
  const acc = new Float64Array(p.metrics.length);
  const ySize = val.y.length / Math.max(val.n, 1);
  for (let lo = 0; lo < val.n; lo += batchSize) {
    const n = Math.min(batchSize, val.n - lo);
    const out = engine.predict(val.x.subarray(lo * inSize, (lo + n) * inSize), n, false);
    for (let r = 0; r < n; r++) {
      const e = lo + r;
      lossSum += lossOf(p.loss, out, r * p.outputs, val.y, e * ySize, p.outputs, labels[e]!);
      p.metrics.forEach((q, k) => (acc[k]! += metricOf(q.fn, out, r * p.outputs, val.y, e * ySize, p.outputs, labels[e]!)));
    }
  }
  const logs: Record<string, number> = { val_loss: lossSum / val.n };
  p.metrics.forEach((q, k) => (logs[`val_${q.name}`] = acc[k]! / val.n));
  return logs;
}

function flatten(ts: readonly tf.Tensor[]): Float32Array {
  const out = new Float32Array(ts.reduce((s, t) => s + t.size, 0));
  let off = 0;
  for (const t of ts) {
    out.set(t.dataSync() as Float32Array, off);
    off += t.size;
  }
  return out;
}

/** Writes flat weights into `model.trainableWeights`, in order. */
function writeWeights(model: tf.LayersModel, flat: Float32Array): void {
  const weights = model.trainableWeights as unknown as LayerVar[];
  tf.tidy(() => {
    let off = 0;
    for (const w of weights) {
      const n = sizeOf(w.shape);
      w.write(tf.tensor(flat.subarray(off, off + n), w.shape, 'float32'));
      off += n;
    }
  });
}

interface AdamInternals {
  accumulatedFirstMoment: { originalName: string; variable: tf.Variable }[];
  accumulatedSecondMoment: { originalName: string; variable: tf.Variable }[];
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  beta1: number;
  beta2: number;
  iterations_: number;
}

/** Adam's first and second moments, flat in `model.trainableWeights` order (zeros before its first step). */
async function adamMoments(opt: tf.Optimizer, count: number): Promise<[Float32Array | undefined, Float32Array | undefined]> {
  const a = opt as unknown as AdamInternals;
  const m = a.accumulatedFirstMoment ?? [];
  const v = a.accumulatedSecondMoment ?? [];
  if (m.length !== count || v.length !== count) return [undefined, undefined];
  return [flatten(m.map((x) => x.variable)), flatten(v.map((x) => x.variable))];
}

/** Writes the engine's weights, batch-norm statistics and optimizer state back into the model and its optimizer. */
async function writeBack(model: tf.LayersModel, engine: NativeEngine, p: Prepared, s: { innerStep: number; reptileIter: number; slow: Float32Array | undefined; stepsRun: number }): Promise<void> {
  const weights = model.trainableWeights as unknown as LayerVar[];
  writeWeights(model, engine.getParams());
  const pieces = (flat: Float32Array): tf.Tensor[] => {
    let off = 0;
    return weights.map((w) => {
      const n = sizeOf(w.shape);
      const t = tf.tensor(flat.subarray(off, off + n), w.shape, 'float32');
      off += n;
      return t;
    });
  };
  const stats = engine.getMovingStats();
  let k = 0;
  tf.tidy(() => {
    for (const layer of model.layers) {
      if (layer.getClassName() !== 'BatchNormalization') continue;
      const st = stats[k++]!;
      for (const w of layer.weights) {
        const name = w.originalName ?? w.name;
        if (name.endsWith('moving_mean')) w.write(tf.tensor(st.mean, w.shape as number[], 'float32'));
        if (name.endsWith('moving_variance')) w.write(tf.tensor(st.variance, w.shape as number[], 'float32'));
      }
    }
  });
  if (s.stepsRun === 0) return;
  const inner = p.inner.optimizer as unknown as AdamInternals;
  inner.iterations_ = s.innerStep;
  if (p.inner.kind === 'adam') {
    const state = engine.getOptimizerState()!;
    const write = (list: { originalName: string; variable: tf.Variable }[] | undefined, flat: Float32Array, suffix: string) => {
      const ts = pieces(flat);
      if (list && list.length === weights.length) {
        list.forEach((e, i) => e.variable.assign(ts[i]!));
        tf.dispose(ts);
        return list;
      }
      tf.dispose((list ?? []).map((e) => e.variable));
      const made = ts.map((t, i) => ({ originalName: `${weights[i]!.name}/${suffix}`, variable: tf.variable(t, false) }));
      tf.dispose(ts);
      return made;
    };
    inner.accumulatedFirstMoment = write(inner.accumulatedFirstMoment, state.m!, 'm');
    inner.accumulatedSecondMoment = write(inner.accumulatedSecondMoment, state.v!, 'v');
    tf.tidy(() => {
      inner.accBeta1.assign(tf.scalar(Math.pow(inner.beta1, s.innerStep + 1)));
      inner.accBeta2.assign(tf.scalar(Math.pow(inner.beta2, s.innerStep + 1)));
    });
  }
  if (p.reptile && s.slow) {
    const r = p.reptile as unknown as { slow: (tf.Variable | undefined)[]; iterations_: number };
    r.iterations_ = s.reptileIter;
    const ts = pieces(s.slow);
    r.slow = ts.map((t, i) => {
      const old = r.slow[i];
      if (old && tf.util.arraysEqual(old.shape, t.shape)) {
        old.assign(t);
        return old;
      }
      old?.dispose();
      return tf.variable(t, false);
    });
    tf.dispose(ts);
  }
}
