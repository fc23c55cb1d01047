import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/core/rng.js';
import { selectBackend } from '../../src/engine/backend.js';
import { createOmniglotModel } from '../../src/learners/models.js';
import { TfjsLearner } from '../../src/learners/tfjs.js';
import { classifyQueries } from '../../src/train/evaluate.js';
import { exportLayersModel } from '../../src/recipes/few-shot/export.js';
import type { Examples, Task } from '../../src/tasks/task.js';
import { makeTemp } from './fixtures.js';

function randomExamples(count: number, seed: number, labels: number[]): Examples {
  const rng = Rng.derive(seed);
  return { count, inputs: Float32Array.from({ length: count * 784 }, () => (rng.next() < 0.2 ? 0 : 1)), inputShape: [28, 28, 1], targets: Float32Array.from(labels), targetShape: [] };
}

function withQuery(task: Task, q: number, replacement: Examples): Task {
  // Replaces every query but q by the replacement's examples.
  const inputs = Float32Array.from(replacement.inputs);
  inputs.set(task.query.inputs.subarray(q * 784, (q + 1) * 784), q * 784);
  return { ...task, query: { ...task.query, inputs } };
}

describe('few-shot evaluation and export', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  it('non-transductive: a query is classified with the support set only, so other queries cannot change it', () => {
    const model = createOmniglotModel({ classes: 5, seed: 7 });
    const learner = new TfjsLearner({ model });
    const seen: number[] = [];
    const inner = learner.predict.bind(learner);
    learner.predict = (ex: Examples) => {
      seen.push(ex.count);
      return inner(ex);
    };
    const task: Task = { kind: 'classification', numClasses: 5, support: randomExamples(10, 1, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]), query: randomExamples(5, 2, [0, 1, 2, 3, 4]) };
    const base = classifyQueries(learner, task, false);
    expect(seen).toEqual([11, 11, 11, 11, 11]);
    // The logits of query 0 in its batch, and after every other query is replaced by other images.
    const logitsOf = (t: Task) => Array.from(inner({ ...t.support, count: 11, inputs: Float32Array.from([...t.support.inputs, ...t.query.inputs.subarray(0, 784)]), targets: new Float32Array(11) })).slice(50, 55);
    for (let s = 3; s < 8; s++) {
      const changed = withQuery(task, 0, randomExamples(5, s, [0, 1, 2, 3, 4]));
      expect(classifyQueries(learner, changed, false)[0]).toBe(base[0]);
      expect(logitsOf(changed)).toEqual(logitsOf(task));
    }
    // Transductively the queries share batch statistics, so other queries do move query 0's logits.
    const trans = (t: Task) => Array.from(inner(t.query)).slice(0, 5);
    expect(trans(withQuery(task, 0, randomExamples(5, 3, [0, 1, 2, 3, 4])))).not.toEqual(trans(task));
    learner.dispose();
    model.dispose();
  });

  it('export → tf.loadLayersModel → identical predictions (batch statistics, as the paper runs it)', async () => {
    const model = createOmniglotModel({ classes: 5, seed: 11 });
    const learner = new TfjsLearner({ model });
    // Move φ away from the initialiser so the test cannot pass by re-initialising.
    const p = learner.getParams();
    const rng = Rng.derive(5);
    for (let i = 0; i < p.data.length; i++) p.data[i] = p.data[i]! + rng.uniform(-0.05, 0.05);
    learner.setParams(p);
    const dir = path.join(makeTemp(), 'exported');
    const files = await exportLayersModel(model, dir);
    expect(files.map((f) => path.basename(f))).toEqual(['model.json', 'weights.bin']);
    const json = JSON.parse(fs.readFileSync(files[0]!, 'utf8')) as { format: string; weightsManifest: { paths: string[] }[] };
    expect(json.format).toBe('layers-model');
    expect(json.weightsManifest[0]!.paths).toEqual(['weights.bin']);
    const loaded = await tf.loadLayersModel({
      load: async () => {
        const m = JSON.parse(fs.readFileSync(files[0]!, 'utf8')) as { modelTopology: object; weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] };
        const bin = fs.readFileSync(files[1]!);
        return { modelTopology: m.modelTopology, weightSpecs: m.weightsManifest[0]!.weights, weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) };
      },
    });
    const x = randomExamples(6, 9, [0, 0, 0, 0, 0, 0]);
    const ours = learner.predict(x);
    const theirs = tf.tidy(() => (loaded.apply(tf.tensor(x.inputs, [6, 28, 28, 1]), { training: true }) as tf.Tensor).dataSync());
    expect(Array.from(theirs)).toEqual(Array.from(ours));
    const back = new TfjsLearner({ model: loaded as tf.Sequential }).getParams();
    expect(Array.from(back.data)).toEqual(Array.from(learner.getParams().data));
    learner.dispose();
    model.dispose();
    loaded.dispose();
  });
});
