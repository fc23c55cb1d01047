import type { NativeAdaptArgs, NativeFitArgs, NativeLoss } from './native-plan.js';

// The checks the addon makes on its arguments (native/src/addon.cc), made before a WebAssembly
// call: the module trusts every size and index it is given.

/** The engine's sizes that arguments are checked against. */
export interface EngineSizes {
  inputSize: number;
  outputSize: number;
  paramSize: number;
}

export function checkF32(value: unknown, what: string): Float32Array {
  if (!(value instanceof Float32Array)) throw new TypeError(`${what} must be a Float32Array`);
  return value;
}

function checkI32(value: unknown, what: string): Int32Array {
  if (!(value instanceof Int32Array)) throw new TypeError(`${what} must be an Int32Array`);
  return value;
}

export function checkLoss(loss: unknown): NativeLoss {
  if (loss !== 'softmax-xent' && loss !== 'mse' && loss !== 'sigmoid-bce') throw new TypeError("loss must be 'softmax-xent', 'sigmoid-bce' or 'mse'");
  return loss;
}

export function targetSize(loss: NativeLoss, s: EngineSizes): number {
  return loss === 'softmax-xent' ? 1 : s.outputSize;
}

/** Class labels of the examples `at` lists (all when absent) must be integers in 0..outputSize−1. */
export function checkLabels(targets: Float32Array, s: EngineSizes, at?: Int32Array): void {
  const n = at ? at.length : targets.length;
  for (let k = 0; k < n; k++) {
    const label = targets[at ? at[k]! : k]!;
    if (!(label >= 0 && label < s.outputSize && Number.isInteger(label))) throw new Error(`class label ${label} is not in 0..${s.outputSize - 1}`);
  }
}

function checkIndices(indices: Int32Array, count: number): void {
  for (const i of indices) if (i < 0 || i >= count) throw new Error('batch index out of range');
}

export function checkOptimizer(value: unknown): 'sgd' | 'adam' {
  if (value !== 'sgd' && value !== 'adam') throw new Error('optimizer must be sgd or adam');
  return value;
}

/** One task's adapt options, as the addon's parseArgs checks them. */
export function checkAdaptArgs(a: NativeAdaptArgs, s: EngineSizes): void {
  if (typeof a !== 'object' || a === null) throw new TypeError('adapt needs an options object per task');
  const x = checkF32(a.inputs, 'inputs');
  const t = checkF32(a.targets, 'targets');
  const b = checkI32(a.batches, 'batches');
  const loss = checkLoss(a.loss);
  if (!(Number.isInteger(a.count) && a.count > 0 && Number.isInteger(a.batchSize) && a.batchSize > 0)) throw new Error('count and batchSize must be positive');
  if (x.length !== a.count * s.inputSize) throw new Error('inputs do not match count × input size');
  if (t.length !== a.count * targetSize(loss, s)) throw new Error('targets do not match count × target size');
  if (b.length % a.batchSize !== 0) throw new Error('batches is not a whole number of batches');
  checkIndices(b, a.count);
  if (loss === 'softmax-xent') checkLabels(t, s);
  checkOptimizer(a.optimizer);
  const divisor = a.lossDivisor ?? 0;
  if (!(divisor >= 0) || !Number.isFinite(divisor)) throw new Error('lossDivisor must be a positive number (or 0: the batch\'s size)');
  if (a.into !== undefined) {
    if (typeof a.into !== 'object' || a.into === null) throw new TypeError('into must be { params, lastStep }');
    for (const key of ['params', 'lastStep'] as const) {
      if (checkF32(a.into[key], key).length !== s.paramSize) throw new Error(`into.${key} must hold paramSize floats`);
    }
  }
  if (a.predict !== undefined) {
    if (!Array.isArray(a.predict)) throw new TypeError('predict must be an array of { inputs, count }');
    for (const p of a.predict) {
      if (typeof p !== 'object' || p === null) throw new TypeError('predict must be an array of { inputs, count }');
      const px = checkF32(p.inputs, 'predict inputs');
      if (!(Number.isInteger(p.count) && p.count > 0) || px.length !== p.count * s.inputSize) throw new Error('predict inputs do not match count × input size');
    }
  }
}

/** Whether any two of the arrays share memory (the results given as `into` may not). */
export function anyOverlap(arrays: readonly Float32Array[]): boolean {
  for (let i = 0; i < arrays.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = arrays[i]!;
      const b = arrays[j]!;
      if (a.buffer !== b.buffer || a.length === 0 || b.length === 0) continue;
      if (a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength) return true;
    }
  }
  return false;
}

/** fit's options, as the addon's Fit checks them. */
export function checkFitArgs(f: NativeFitArgs, s: EngineSizes): void {
  if (typeof f !== 'object' || f === null) throw new TypeError('fit needs an options object');
  const x = checkF32(f.inputs, 'inputs');
  const t = checkF32(f.targets, 'targets');
  const order = checkI32(f.order, 'order');
  const sizes = checkI32(f.sizes, 'sizes');
  const loss = checkLoss(f.loss);
  if (!(Number.isInteger(f.count) && f.count > 0)) throw new Error('count must be positive');
  if (x.length !== f.count * s.inputSize) throw new Error('inputs do not match count × input size');
  if (t.length !== f.count * targetSize(loss, s)) throw new Error('targets do not match count × target size');
  let total = 0;
  for (const n of sizes) {
    if (n <= 0) throw new Error('batch sizes must be positive');
    total += n;
  }
  if (total !== order.length) throw new Error("the batch sizes do not add up to the order's length");
  checkIndices(order, f.count);
  if (loss === 'softmax-xent') checkLabels(t, s, order);
  checkOptimizer(f.optimizer);
  const period = f.period ?? 0;
  const counter = f.counter ?? 0;
  if (period < 0 || counter < 0 || (period > 0 && counter >= period)) throw new Error('period and counter must satisfy 0 ≤ counter < period');
  if (period > 0 && checkF32(f.slow, 'slow').length !== s.paramSize) throw new Error('slow weights do not fit this model');
  if (!(f.losses instanceof Float64Array) || f.losses.length !== sizes.length) throw new TypeError('losses must be a Float64Array with one value per batch');
  if (checkF32(f.outputs, 'outputs').length !== order.length * s.outputSize) throw new Error('outputs must hold one output per example of the order');
}
