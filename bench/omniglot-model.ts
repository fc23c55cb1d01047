import { Rng } from '../src/core/rng.js';
import type { Task } from '../src/tasks/task.js';

/** A 5-way, 10-shot task of random 28×28 images (pure compute: no data pipeline), as the PyTorch reference uses. */
export function randomOmniglotTask(rng: Rng, classes = 5, shots = 10): Task {
  const count = classes * shots;
  const inputs = new Float32Array(count * 784);
  for (let i = 0; i < inputs.length; i++) inputs[i] = rng.uniform(0, 1);
  const targets = new Float32Array(count);
  for (let i = 0; i < count; i++) targets[i] = Math.floor(i / shots);
  const support = { count, inputs, inputShape: [28, 28, 1], targets, targetShape: [] };
  return { kind: 'classification', numClasses: classes, support, query: support };
}

/**
 * FLOPs of the Omniglot network (4 × conv 3×3 stride 2, 64 channels, then dense) per example, 2
 * per multiply-add: forward, and a training step (forward, input gradient — not for the first
 * layer — and weight gradient).
 */
export function flopsPerExample(classes: number): { forward: number; step: number } {
  let forward = 0;
  let step = 0;
  let size = 28;
  let cin = 1;
  for (let i = 0; i < 4; i++) {
    const out = Math.ceil(size / 2);
    const flop = 2 * out * out * 9 * cin * 64;
    forward += flop;
    step += flop * (i === 0 ? 2 : 3);
    size = out;
    cin = 64;
  }
  forward += 2 * 256 * classes;
  step += 2 * 256 * classes * 3;
  return { forward, step };
}
