import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/engine/backend.js';
import { createOmniglotModel } from '../src/learners/models.js';
import { createResNet12 } from '../src/learners/resnet12.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

// The second conv kernel is 3×3×64×64: fan_in = fan_out = 576.
function maxAbsOfSecondConvKernel(model: tf.Sequential): number {
  const kernel = model.layers.filter((l) => l.getClassName() === 'Conv2D')[1]!.getWeights()[0]!;
  return tf.tidy(() => tf.max(tf.abs(kernel)).dataSync()[0]!);
}

describe('few-shot network initialisation', () => {
  it('fan-in (default) draws kernels from U(±1/√fan_in)', () => {
    const m = maxAbsOfSecondConvKernel(createOmniglotModel({ classes: 5, seed: 1 }));
    expect(m).toBeLessThanOrEqual(1 / Math.sqrt(576));
    expect(m).toBeGreaterThan(0.95 / Math.sqrt(576));
  });

  it('glorot draws kernels from U(±√(6/(fan_in + fan_out)))', () => {
    const bound = Math.sqrt(6 / (576 + 576));
    const m = maxAbsOfSecondConvKernel(createOmniglotModel({ classes: 5, seed: 1, init: 'glorot' }));
    expect(m).toBeLessThanOrEqual(bound);
    expect(m).toBeGreaterThan(0.95 * bound);
  });
});

describe('createResNet12', () => {
  it("has MetaOptNet's shape: four residual blocks of 64-160-320-640 filters, about 12.4M parameters, logits for the classes", () => {
    const model = createResNet12({ classes: 5 });
    expect(model.inputs[0]!.shape).toEqual([null, 84, 84, 3]);
    expect(model.outputs[0]!.shape).toEqual([null, 5]);
    const count = model.trainableWeights.reduce((s, w) => s + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
    // Per block: 3·3·(cin + 2w)·w + cin·w conv weights and 4 batch norms of 2w; then the dense head.
    let cin = 3;
    let want = 0;
    for (const w of [64, 160, 320, 640]) {
      want += 9 * (cin + 2 * w) * w + cin * w + 8 * w;
      cin = w;
    }
    want += 640 * 5 + 5;
    expect(count).toBe(want);
    expect(count / 1e6).toBeCloseTo(12.4, 1);
    const layers = model.layers.map((l) => l.getClassName());
    expect(layers.filter((c) => c === 'Conv2D')).toHaveLength(16);
    expect(layers.filter((c) => c === 'Add')).toHaveLength(4);
    expect(layers.filter((c) => c === 'MaxPooling2D')).toHaveLength(4);
    expect(layers.filter((c) => c === 'LeakyReLU')).toHaveLength(12);
    expect(model.layers.filter((l) => l.getClassName() === 'Conv2D').every((l) => (l.getConfig() as { useBias: boolean }).useBias === false)).toBe(true);
    model.dispose();
  });

  it('takes widths, size, channels and a flatten head; refuses widths that are not four positive integers', () => {
    const model = createResNet12({ classes: 3, widths: [4, 5, 6, 7], size: 28, channels: 1, head: 'flatten' });
    // 28 → 14 → 7 → 4 → 2 pixels after the four pools ('same' padding), flattened: 2·2·7.
    expect(model.layers.at(-1)!.getConfig()).toMatchObject({ units: 3 });
    expect((model.layers.at(-1)!.trainableWeights[0]!.shape as number[])[0]).toBe(28);
    const out = model.predict(tf.zeros([2, 28, 28, 1])) as tf.Tensor;
    expect(out.shape).toEqual([2, 3]);
    model.dispose();
    expect(() => createResNet12({ classes: 3, widths: [4, 5, 6] as unknown as [number, number, number, number] })).toThrow(/four positive integers/);
  });
});
