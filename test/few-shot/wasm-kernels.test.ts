import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { selectBackend } from '../../src/engine/backend.js';
import { col2im, im2col } from '../../src/engine/wasm-kernels.js';
import { createMiniImageNetModel, createOmniglotModel } from '../../src/learners/models.js';
import { Rng } from '../../src/core/rng.js';

function values(n: number, seed: number): Float32Array {
  const rng = Rng.derive(seed);
  return Float32Array.from({ length: n }, () => rng.uniform(-1, 1));
}

function relError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(a[i]!));
  }
  return diff / scale;
}

async function onBackend<T>(name: string, f: () => T): Promise<T> {
  await selectBackend(name as 'cpu' | 'wasm');
  expect(tf.getBackend()).toBe(name);
  return f();
}

describe('wasm convolution gradient kernels', () => {
  it('im2col and col2im are adjoint: <im2col(x), c> = <x, col2im(c)>', () => {
    const g = { batch: 2, inH: 5, inW: 4, inC: 3, outH: 3, outW: 2, outC: 1, kH: 3, kW: 3, strideH: 2, strideW: 2, top: 1, left: 1 };
    const x = values(2 * 5 * 4 * 3, 1);
    const c = values(2 * 3 * 2 * 27, 2);
    const col = new Float32Array(c.length);
    im2col(x, g, col);
    const back = new Float32Array(x.length);
    col2im(c, g, back);
    let lhs = 0;
    let rhs = 0;
    for (let i = 0; i < c.length; i++) lhs += col[i]! * c[i]!;
    for (let i = 0; i < x.length; i++) rhs += x[i]! * back[i]!;
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-4 * Math.abs(lhs));
  });

  const cases: { x: [number, number, number, number]; f: [number, number, number, number]; stride: number; pad: 'same' | 'valid' }[] = [
    { x: [3, 9, 9, 2], f: [3, 3, 2, 4], stride: 2, pad: 'same' },
    { x: [2, 8, 8, 3], f: [3, 3, 3, 5], stride: 1, pad: 'same' },
    { x: [2, 9, 8, 2], f: [3, 3, 2, 3], stride: 2, pad: 'valid' },
    { x: [1, 28, 28, 1], f: [3, 3, 1, 64], stride: 2, pad: 'same' },
    { x: [2, 7, 7, 64], f: [3, 3, 64, 64], stride: 2, pad: 'same' },
    { x: [1, 6, 5, 2], f: [2, 3, 2, 2], stride: 1, pad: 'valid' },
  ];

  it('Conv2D gradients (input and filter) on wasm equal the cpu backend within 1e-4', async () => {
    for (const [i, c] of cases.entries()) {
      const run = () =>
        tf.tidy(() => {
          const x = tf.tensor(values(c.x.reduce((a, b) => a * b), 10 + i), c.x);
          const w = tf.tensor(values(c.f.reduce((a, b) => a * b), 20 + i), c.f);
          const dy = values(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.stride, c.pad).size, 30 + i);
          const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), tf.tensor(dy, tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad).shape))))([x, w]);
          return [dx!.dataSync() as Float32Array, dw!.dataSync() as Float32Array];
        });
      const cpu = await onBackend('cpu', run);
      const wasm = await onBackend('wasm', run);
      expect(relError(cpu[0]!, wasm[0]!), `dx, case ${i}`).toBeLessThanOrEqual(1e-4);
      expect(relError(cpu[1]!, wasm[1]!), `dw, case ${i}`).toBeLessThanOrEqual(1e-4);
    }
  });

  it("the paper's Omniglot and Mini-ImageNet nets: every weight gradient on wasm equals cpu within 1e-4", async () => {
    for (const [make, shape] of [
      [() => createOmniglotModel({ classes: 5, seed: 3 }), [4, 28, 28, 1]],
      [() => createMiniImageNetModel({ classes: 5, seed: 3, size: 20 }), [3, 20, 20, 3]],
    ] as const) {
      const x = values((shape as readonly number[]).reduce((a, b) => a * b, 1), 41);
      const labels = Int32Array.from({ length: shape[0] }, (_, i) => i % 5);
      const grads = (): Float32Array[] => {
        const model = make();
        try {
          return tf.tidy(() => {
            const xs = tf.tensor(x, [...shape]);
            const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), 5).toFloat();
            const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
            const { grads: g } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(ys, model.apply(xs, { training: true }) as tf.Tensor) as tf.Scalar, vars);
            return vars.map((v) => g[v.name]!.dataSync() as Float32Array);
          });
        } finally {
          model.dispose();
        }
      };
      const cpu = await onBackend('cpu', grads);
      const wasm = await onBackend('wasm', grads);
      expect(wasm).toHaveLength(cpu.length);
      // The biases of convolutions followed by batch norm have zero gradient in exact arithmetic
      // (batch norm subtracts the batch mean, which absorbs the bias); both backends give
      // rounding noise there (~1e-7), which a relative error cannot compare. Every other tensor
      // is compared on its own, and the whole gradient as one vector.
      const flat = (list: Float32Array[]) => Float32Array.from(list.flatMap((g) => Array.from(g)));
      expect(relError(flat(cpu), flat(wasm))).toBeLessThanOrEqual(1e-4);
      const convBiases = new Set([1, 5, 9, 13]);
      cpu.forEach((g, i) => {
        if (convBiases.has(i)) {
          expect(Math.max(...g.map(Math.abs), ...wasm[i]!.map(Math.abs)), `conv bias ${i}`).toBeLessThan(1e-5);
        } else {
          expect(relError(g, wasm[i]!), `weight ${i}`).toBeLessThanOrEqual(1e-4);
        }
      });
    }
  });
});
