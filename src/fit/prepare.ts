import * as tf from '@tensorflow/tfjs';
import { InvalidOptionsError } from '../_utils/errors.js';
import { sizeOf } from '../core/params.js';
import { loadNative, type NativeLoss } from '../engine/native.js';
import { compileModel } from '../learners/compile-model.js';
import { outputActivation } from '../learners/loss.js';
import { checkNoRegularizers } from '../learners/weights.js';
import { Reptile } from '../optim/reptile.js';

// What fit's engine path accepts: its options, and the model, loss, optimizer, metrics and data
// checked before any step runs (whatever the engine lacks is an Unsupported, sent to model.fit).

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

export type Loss = 'categoricalCrossentropy' | 'sparseCategoricalCrossentropy' | 'binaryCrossentropy' | 'meanSquaredError';

export type Metric = 'binaryAccuracy' | 'categoricalAccuracy' | 'sparseCategoricalAccuracy';

const LOSS_NAMES: Record<string, Loss> = {
  categoricalCrossentropy: 'categoricalCrossentropy',
  sparseCategoricalCrossentropy: 'sparseCategoricalCrossentropy',
  binaryCrossentropy: 'binaryCrossentropy',
  meanSquaredError: 'meanSquaredError',
  mse: 'meanSquaredError',
  MSE: 'meanSquaredError',
};

export const OWN_OPTIONS = new Set(['seed', 'engine', 'threads', 'log']);

const TFJS_OPTIONS = new Set(['epochs', 'batchSize', 'shuffle', 'validationData', 'validationSplit', 'initialEpoch', 'verbose', 'callbacks', 'yieldEvery']);

/** Why the engine cannot run this `fit` (one clause), or the prepared run. */
export class Unsupported extends Error {}

interface InnerOpt {
  kind: 'sgd' | 'adam';
  optimizer: tf.Optimizer;
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
}

export interface Prepared {
  loss: Loss;
  nativeLoss: NativeLoss;
  metrics: { name: string; fn: Metric }[];
  inner: InnerOpt;
  reptile: Reptile | undefined;
  outputs: number;
}

/** A tensor as float32 values (labels too). */
export function valuesOf(t: tf.Tensor): Float32Array {
  const v = t.dataSync();
  return v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>);
}

export function checkOptions(o: FitOptions): void {
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
export function prepare(model: tf.LayersModel, x: tf.Tensor | tf.Tensor[], y: tf.Tensor | tf.Tensor[], o: FitOptions): Prepared {
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
  const activation = outputActivation(model);
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
export function engineTargets(loss: Loss, y: Float32Array, n: number, outputs: number): Float32Array {
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
