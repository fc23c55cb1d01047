import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/core/rng.js';
import { selectBackend } from '../src/engine/backend.js';
import { loadNative, type NativeIsa } from '../src/engine/native.js';
import { compileModel } from '../src/learners/compile-model.js';
import { NativeLearner } from '../src/learners/native-learner.js';
import type { Task } from '../src/tasks/task.js';
import { init, nativeSkipReason, randomTask, relErr, tfjsGradients } from './native-helpers.js';

// docs/architecture.md, invariant 3, for graphs: the merge layers (Add, Concatenate, Multiply), a
// tensor read by several layers (its gradients summed), nested Sequential models and dilated
// convolutions give tfjs autograd's output, loss, parameter and input gradients.
const status = loadNative();
const isas = (status.ok ? status.addon.supportedIsas() : []) as NativeIsa[];
const TOL = 1e-4;

beforeAll(async () => {
  await selectBackend('cpu');
});

/** A functional model from its input shape and a function wiring layers onto the input. */
export function graph(inputShape: number[], wire: (x: tf.SymbolicTensor) => tf.SymbolicTensor): tf.LayersModel {
  const input = tf.input({ shape: inputShape });
  return tf.model({ inputs: input, outputs: wire(input) });
}

const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]): tf.SymbolicTensor => layer.apply(x) as tf.SymbolicTensor;

/** Compares one model's native gradients with tfjs autograd's on a random task. */
function check(name: string, model: tf.LayersModel, inputShape: number[], seed: number, isa: NativeIsa, classes?: number): void {
  const outSize = model.outputs[0]!.shape[1] as number;
  const rng = Rng.derive(seed, 78);
  const task: Task = randomTask({ rng, count: 2 + rng.int(5), shape: inputShape, ...(classes ? { classes } : { outputs: outSize }) });
  const native = new NativeLearner({ model, isa });
  const got = native.gradients(task, task.support);
  const want = tfjsGradients(model, task, task.support);
  const where = `${name}, seed ${seed}, isa ${isa}`;
  expect(relErr(got.output, want.output), `output, ${where}`).toBeLessThanOrEqual(TOL);
  expect(Math.abs(got.loss - want.loss) / Math.max(Math.abs(want.loss), 1e-6), `loss, ${where}`).toBeLessThanOrEqual(TOL);
  expect(relErr(got.grad.data, want.grad), `param gradient, ${where}`).toBeLessThanOrEqual(TOL);
  expect(relErr(got.inputGrad, want.inputGrad), `input gradient, ${where}`).toBeLessThanOrEqual(TOL);
  native.dispose();
}

/** The merge models: each merge layer, a tensor read twice, a nested Sequential model. */
export const MERGE_MODELS: { name: string; inputShape: number[]; classes?: number; build: (seed: number) => tf.LayersModel }[] = [
  {
    name: 'Add: a residual block (two 3x3 convs, a 1x1 conv shortcut)',
    inputShape: [6, 5, 3],
    classes: 3,
    build: (s) =>
      graph([6, 5, 3], (x) => {
        const a = apply(tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(s), biasInitializer: init(s + 1) }), x);
        const b = apply(tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', kernelInitializer: init(s + 2) }), a);
        const short = apply(tf.layers.conv2d({ filters: 4, kernelSize: 1, useBias: false, kernelInitializer: init(s + 3) }), x);
        const sum = apply(tf.layers.add(), [b, short]);
        return apply(tf.layers.dense({ units: 3, kernelInitializer: init(s + 4) }), apply(tf.layers.flatten(), apply(tf.layers.reLU(), sum)));
      }),
  },
  {
    name: 'Add: an identity skip (the input read by a Dense layer and by Add) and three inputs',
    inputShape: [7],
    build: (s) =>
      graph([7], (x) => {
        const h = apply(tf.layers.dense({ units: 7, activation: 'tanh', kernelInitializer: init(s), biasInitializer: init(s + 1) }), x);
        const g = apply(tf.layers.dense({ units: 7, activation: 'elu', kernelInitializer: init(s + 2) }), h);
        const sum = apply(tf.layers.add(), [x, h, g]);
        return apply(tf.layers.dense({ units: 2, kernelInitializer: init(s + 3) }), sum);
      }),
  },
  {
    name: 'Concatenate: two conv branches joined along channels, and the input itself',
    inputShape: [5, 6, 2],
    classes: 4,
    build: (s) =>
      graph([5, 6, 2], (x) => {
        const a = apply(tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', kernelInitializer: init(s) }), x);
        const b = apply(tf.layers.conv2d({ filters: 2, kernelSize: 1, activation: 'relu', kernelInitializer: init(s + 1), biasInitializer: init(s + 2) }), x);
        const cat = apply(tf.layers.concatenate(), [a, x, b]);
        return apply(tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: init(s + 3) }), apply(tf.layers.flatten(), cat));
      }),
  },
  {
    name: 'Multiply: a sigmoid gate on a tanh branch',
    inputShape: [6],
    classes: 3,
    build: (s) =>
      graph([6], (x) => {
        const gate = apply(tf.layers.dense({ units: 5, activation: 'sigmoid', kernelInitializer: init(s), biasInitializer: init(s + 1) }), x);
        const value = apply(tf.layers.dense({ units: 5, activation: 'tanh', kernelInitializer: init(s + 2) }), x);
        const prod = apply(tf.layers.multiply(), [gate, value]);
        return apply(tf.layers.dense({ units: 3, kernelInitializer: init(s + 3) }), prod);
      }),
  },
  {
    name: 'a nested Sequential model (conv, batch norm read by ReLU and by Add) inside a functional model',
    inputShape: [6, 6, 2],
    classes: 3,
    build: (s) => {
      const inner = tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init(s) }),
          tf.layers.batchNormalization({ gammaInitializer: init(s + 1), betaInitializer: init(s + 2) }),
        ],
      });
      return graph([6, 6, 2], (x) => {
        const bn = apply(inner, x);
        const r = apply(tf.layers.reLU(), bn);
        const c = apply(tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', kernelInitializer: init(s + 3) }), r);
        const sum = apply(tf.layers.add(), [c, bn]);
        const pooled = apply(tf.layers.globalAveragePooling2d({}), sum);
        return apply(tf.layers.dense({ units: 3, kernelInitializer: init(s + 4) }), pooled);
      });
    },
  },
];

describe.skipIf(nativeSkipReason !== undefined)('merge layers against tfjs autograd', () => {
  for (const m of MERGE_MODELS) {
    it(m.name, () => {
      for (const isa of isas) {
        for (const seed of [1, 2]) {
          const model = m.build(seed * 10);
          check(m.name, model, m.inputShape, seed, isa, m.classes);
          model.dispose();
        }
      }
    });
  }

  it('plans list what each op reads only where it is not the op before', () => {
    const plan = compileModel(MERGE_MODELS[0]!.build(1));
    expect(plan.ops.map((o) => [o.kind, o.inputs])).toEqual([
      ['conv', undefined],
      ['relu', undefined],
      ['conv', undefined],
      ['conv', [-1]],
      ['add', [2, 3]],
      ['relu', undefined],
      ['dense', undefined],
    ]);
  });
});

/** A dilated conv's kernel [kh, kw, cin, cout] spread out to [(kh − 1)·dh + 1, (kw − 1)·dw + 1, cin, cout] with zeros between its taps. */
function spread(k: Float32Array, [kh, kw, cin, cout]: number[], dh: number, dw: number): Float32Array {
  const eh = (kh! - 1) * dh + 1;
  const ew = (kw! - 1) * dw + 1;
  const out = new Float32Array(eh * ew * cin! * cout!);
  const inner = cin! * cout!;
  for (let i = 0; i < kh!; i++) for (let j = 0; j < kw!; j++) out.set(k.subarray((i * kw! + j) * inner, (i * kw! + j + 1) * inner), (i * dh * ew + j * dw) * inner);
  return out;
}

describe.skipIf(nativeSkipReason !== undefined)('Conv2D with dilation', () => {
  // tfjs has no gradient for a dilated convolution: the oracle is the same convolution with its
  // kernel spread out (zeros between the taps), whose kernel gradient at the taps is the dilated
  // kernel's gradient.
  const cases = [
    { h: 9, w: 8, cin: 1, filters: 3, k: [3, 3], d: [2, 2], padding: 'same', activation: 'relu' },
    { h: 10, w: 9, cin: 2, filters: 4, k: [3, 2], d: [2, 3], padding: 'valid', activation: 'linear' },
    { h: 8, w: 8, cin: 3, filters: 2, k: [2, 3], d: [3, 1], padding: 'same', activation: 'tanh' },
    // Wide enough that an undilated convolution would read its input in place (no im2col).
    { h: 7, w: 6, cin: 16, filters: 8, k: [3, 3], d: [2, 2], padding: 'same', activation: 'linear' },
  ] as const;
  for (const c of cases) {
    it(`${c.k.join('x')} kernel, dilation ${c.d.join('x')}, ${c.padding}, ${c.cin} → ${c.filters} channels, ${c.activation}: output, loss, gradients`, () => {
      for (const isa of isas) {
        for (const seed of [3, 4]) {
          const shape = [c.h, c.w, c.cin];
          const conv = (kernelSize: [number, number], dilationRate: [number, number]) =>
            tf.layers.conv2d({ inputShape: shape, filters: c.filters, kernelSize, dilationRate, padding: c.padding, activation: c.activation, kernelInitializer: init(seed), biasInitializer: init(seed + 1) });
          const model = tf.sequential({ layers: [conv([c.k[0], c.k[1]], [c.d[0], c.d[1]]), tf.layers.flatten(), tf.layers.dense({ units: 3, kernelInitializer: init(seed + 2) })] });
          const eh = (c.k[0] - 1) * c.d[0] + 1;
          const ew = (c.k[1] - 1) * c.d[1] + 1;
          const twin = tf.sequential({ layers: [conv([eh, ew], [1, 1]), tf.layers.flatten(), tf.layers.dense({ units: 3 })] });
          const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
          const kShape: number[] = [c.k[0], c.k[1], c.cin, c.filters];
          twin.setWeights([tf.tensor(spread(weights[0]!, kShape, c.d[0], c.d[1]), [eh, ew, c.cin, c.filters]), ...model.getWeights().slice(1)]);
          const rng = Rng.derive(seed, 79);
          const task = randomTask({ rng, count: 2 + rng.int(4), shape, classes: 3 });
          const native = new NativeLearner({ model, isa });
          const got = native.gradients(task, task.support);
          const want = tfjsGradients(twin, task, task.support);
          const where = `seed ${seed}, isa ${isa}`;
          expect(relErr(got.output, want.output), `output, ${where}`).toBeLessThanOrEqual(TOL);
          expect(Math.abs(got.loss - want.loss) / Math.abs(want.loss), `loss, ${where}`).toBeLessThanOrEqual(TOL);
          expect(relErr(got.inputGrad, want.inputGrad), `input gradient, ${where}`).toBeLessThanOrEqual(TOL);
          // The twin's kernel gradient at the taps, then the other weights' as they are.
          const kSize = kShape.reduce((a, b) => a * b, 1);
          const spreadSize = eh * ew * c.cin * c.filters;
          const inner = c.cin * c.filters;
          const taps = new Float32Array(kSize);
          for (let i = 0; i < c.k[0]; i++) for (let j = 0; j < c.k[1]; j++) taps.set(want.grad.subarray((i * c.d[0] * ew + j * c.d[1]) * inner, (i * c.d[0] * ew + j * c.d[1] + 1) * inner), (i * c.k[1] + j) * inner);
          const wantGrad = new Float32Array([...taps, ...want.grad.subarray(spreadSize)]);
          expect(relErr(got.grad.data, wantGrad), `param gradient, ${where}`).toBeLessThanOrEqual(TOL);
          // Forward against tfjs's own dilated convolution too.
          const x = tf.tensor(task.support.inputs, [task.support.count, ...shape]);
          expect(relErr(got.output, (model.predict(x) as tf.Tensor).dataSync()), `tfjs forward, ${where}`).toBeLessThanOrEqual(TOL);
          x.dispose();
          native.dispose();
          model.dispose();
          twin.dispose();
        }
      }
    });
  }
});
