import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/engine/backend.js';
import { createOmniglotModel } from '../src/learners/models.js';

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
