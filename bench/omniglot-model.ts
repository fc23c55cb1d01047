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
