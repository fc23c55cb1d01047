import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll } from 'vitest';
import type { Rng } from '../../src/core/rng.js';
import type { Task, TaskSource } from '../../src/tasks/task.js';

const made: string[] = [];
// A test file's temporary directories go once its tests have run (its own hooks first).
afterAll(() => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary directory, removed once the test file's tests have run. */
export function tempDir(prefix = 'reptile-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** A one-weight linear model y = w·x with w = `w0`: its MSE loss on (x = 1, y = c) is (w − c)². */
export function scalarModel(w0: number): tf.Sequential {
  return tf.sequential({
    layers: [tf.layers.dense({ units: 1, useBias: false, inputShape: [1], kernelInitializer: tf.initializers.constant({ value: w0 }) })],
  });
}

/** A source that always returns the single-point regression task (x = 1, y = c). */
export function fixedPointSource(c: number): TaskSource {
  const task: Task = {
    kind: 'regression',
    support: { count: 1, inputs: Float32Array.of(1), inputShape: [1], targets: Float32Array.of(c), targetShape: [1] },
    query: { count: 1, inputs: Float32Array.of(1), inputShape: [1], targets: Float32Array.of(c), targetShape: [1] },
  };
  return { kind: 'regression', inputShape: [1], outputSize: 1, sample: (_rng: Rng) => task, describe: () => ({ task: 'fixed', c }) };
}
