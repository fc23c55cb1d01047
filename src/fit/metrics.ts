import type { NativeEngine } from '../engine/native.js';
import type { Loss, Metric, Prepared } from './prepare.js';

// The accuracies and losses fit reports, computed from the engine's outputs as tfjs computes them.

const EPSILON = 1e-7;

/** Each example's class as the accuracies read it: the label itself (sparse targets), else the first largest target value (tf.argMax). */
export function labelsOf(loss: Loss, y: Float32Array, n: number, ySize: number): Float32Array {
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
export function metricOf(fn: Metric, out: Float32Array, o: number, t: Float32Array, tOff: number, outputs: number, label: number): number {
  if (fn === 'binaryAccuracy') {
    let hits = 0;
    for (let j = 0; j < outputs; j++) hits += (out[o + j]! > 0.5 ? 1 : 0) === t[tOff + j] ? 1 : 0;
    return hits / outputs;
  }
  let best = 0;
  for (let j = 1; j < outputs; j++) if (out[o + j]! > out[o + best]!) best = j;
  return best === label ? 1 : 0;
}

/**
 * The sum of a metric over training rows [from, from + count): row r's output at r·outputs in
 * `out`, its example `order[r]` (targets in `t`, `ySize` values each; class in `labels`).
 */
export function metricSum(fn: Metric, out: Float32Array, outputs: number, order: Int32Array, from: number, count: number, t: Float32Array, ySize: number, labels: Float32Array): number {
  let sum = 0;
  if (fn === 'binaryAccuracy') {
    for (let r = from; r < from + count; r++) sum += metricOf(fn, out, r * outputs, t, order[r]! * ySize, outputs, 0);
    return sum;
  }
  for (let r = from; r < from + count; r++) {
    const o = r * outputs;
    let best = 0;
    let top = out[o]!;
    for (let j = 1; j < outputs; j++) {
      const v = out[o + j]!;
      if (v > top) {
        top = v;
        best = j;
      }
    }
    if (best === labels[order[r]!]) sum++;
  }
  return sum;
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

export function validate(engine: NativeEngine, val: { x: Float32Array; y: Float32Array; n: number }, labels: Float32Array, p: Prepared, batchSize: number): Record<string, number> {
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
