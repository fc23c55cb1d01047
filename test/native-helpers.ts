import * as tf from '@tensorflow/tfjs';
import { Rng } from '../src/core/rng.js';
import { loadNative } from '../src/engine/native.js';
import { wasmEngineStatus } from '../src/engine/wasm-module.js';
import { lossTargetTensor, lossValue, outputSize, taskLoss } from '../src/learners/loss.js';
import type { Examples, Task } from '../src/tasks/task.js';

/**
 * Why native tests are skipped (the addon did not build), or undefined when it loaded. Where
 * REPTILE_REQUIRE_NATIVE=1 (CI sets it), a missing addon fails the suites instead of skipping them.
 */
export const nativeSkipReason: string | undefined = (() => {
  const s = loadNative();
  if (s.ok) return undefined;
  if (process.env.REPTILE_REQUIRE_NATIVE === '1') throw new Error(`REPTILE_REQUIRE_NATIVE=1 but the native engine is unavailable: ${s.reason}`);
  const line = `native engine tests skipped: ${s.reason}`;
  console.warn(line);
  return line;
})();

/** Why the WebAssembly engine's tests are skipped (the module was not built), or undefined; a failure where REPTILE_WASM_REQUIRED=1. */
export const wasmSkipReason: string | undefined = (() => {
  const s = wasmEngineStatus();
  if (s.ok) return undefined;
  if (process.env.REPTILE_WASM_REQUIRED === '1') throw new Error(`REPTILE_WASM_REQUIRED=1 but the WebAssembly engine is unavailable: ${s.reason}`);
  const line = `WebAssembly engine tests skipped: ${s.reason}`;
  console.warn(line);
  return line;
})();

/** ‖a − b‖ / ‖b‖ (with a floor on ‖b‖ so that two zero vectors agree). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return Math.sqrt(d) / Math.max(Math.sqrt(n), 1e-12);
}

/** Random examples of `shape` with `count` examples; labels for `classes` or regression targets. */
export function randomTask(options: { rng: Rng; count: number; shape: number[]; classes?: number; outputs?: number }): Task {
  const make = (count: number): Examples => {
    const size = options.shape.reduce((a, b) => a * b, 1);
    const inputs = new Float32Array(count * size);
    for (let i = 0; i < inputs.length; i++) inputs[i] = options.rng.uniform(-1, 1);
    if (options.classes) {
      const targets = new Float32Array(count);
      for (let i = 0; i < count; i++) targets[i] = i < options.classes ? i : options.rng.int(options.classes);
      return { count, inputs, inputShape: options.shape, targets, targetShape: [] };
    }
    const out = options.outputs ?? 1;
    const targets = new Float32Array(count * out);
    for (let i = 0; i < targets.length; i++) targets[i] = options.rng.uniform(-1, 1);
    return { count, inputs, inputShape: options.shape, targets, targetShape: [out] };
  };
  const support = make(options.count);
  return options.classes
    ? { kind: 'classification', numClasses: options.classes, support, query: make(2) }
    : { kind: 'regression', support, query: make(2) };
}

/** Loss (the one the learners train for this model and task), flat parameter gradient, input gradient and output of a tfjs model in training mode. */
export function tfjsGradients(model: tf.LayersModel, task: Task, set: Examples): { loss: number; grad: Float32Array; inputGrad: Float32Array; output: Float32Array } {
  return tf.tidy(() => {
    const x = tf.tensor(set.inputs, [set.count, ...set.inputShape]);
    const kind = taskLoss(model, task);
    const y = lossTargetTensor(kind, task, set, outputSize(model));
    const lossOf = (out: tf.Tensor): tf.Scalar => lossValue(kind, y, out);
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const output = (model.apply(x, { training: true }) as tf.Tensor).dataSync() as Float32Array;
    const flat = new Float32Array(vars.reduce((s, v) => s + v.size, 0));
    let loss: number;
    if (vars.length === 0) {
      loss = lossOf(model.apply(x, { training: true }) as tf.Tensor).dataSync()[0]!;
    } else {
      const { value, grads } = tf.variableGrads(() => lossOf(model.apply(x, { training: true }) as tf.Tensor), vars);
      let off = 0;
      for (const v of vars) {
        flat.set(grads[v.name]!.dataSync() as Float32Array, off);
        off += v.size;
      }
      loss = value.dataSync()[0]!;
    }
    const inputGrad = tf.grad((xx: tf.Tensor) => lossOf(model.apply(xx, { training: true }) as tf.Tensor))(x).dataSync() as Float32Array;
    return { loss, grad: flat, inputGrad: inputGrad.slice(), output: output.slice() };
  });
}

/** A seeded initializer so that models are reproducible. */
export function init(seed: number): ReturnType<typeof tf.initializers.randomUniform> {
  return tf.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed });
}
