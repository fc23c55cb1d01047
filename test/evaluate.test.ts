import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Params } from '../src/core/params.js';
import type { Rng } from '../src/core/rng.js';
import { selectBackend } from '../src/engine/backend.js';
import { InlineExecutor } from '../src/exec/inline.js';
import { createLearner } from '../src/learners/create-learner.js';
import type { AdaptResult, InnerOptions, Learner, OptimizerState } from '../src/learners/learner.js';
import { createSineModel } from '../src/learners/models.js';
import { TfjsLearner } from '../src/learners/tfjs.js';
import { SineTaskSource } from '../src/tasks/sine.js';
import type { Examples, Task, TaskSource } from '../src/tasks/task.js';
import { evalTaskStreams, evaluate, mse } from '../src/train/evaluate.js';
import { metaTrain } from '../src/train/meta-train.js';
import { scalarModel } from './helpers/fixtures.js';
import { nativeSkipReason } from './native-helpers.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

/** Delegates to a learner and records φ and the optimizer state each `adapt` starts from. */
class RecordingLearner implements Learner {
  readonly starts: { params: Float32Array; state: OptimizerState | undefined }[] = [];
  constructor(private readonly inner: Learner) {}
  get layout() {
    return this.inner.layout;
  }
  get innerState() {
    return this.inner.innerState;
  }
  getParams(): Params {
    return this.inner.getParams();
  }
  setParams(p: Params): void {
    this.inner.setParams(p);
  }
  async adapt(task: Task, options: InnerOptions, rng: Rng): Promise<AdaptResult> {
    this.starts.push({ params: new Float32Array(this.inner.getParams().data), state: copyState(this.inner.getOptimizerState()) });
    return this.inner.adapt(task, options, rng);
  }
  predict(examples: Examples): Float32Array {
    return this.inner.predict(examples);
  }
  getOptimizerState(): OptimizerState | undefined {
    return this.inner.getOptimizerState();
  }
  setOptimizerState(s: OptimizerState | undefined): void {
    this.inner.setOptimizerState(s);
  }
  dispose(): void {
    this.inner.dispose();
  }
}

function copyState(s: OptimizerState | undefined): OptimizerState | undefined {
  if (s === undefined) return undefined;
  return { kind: s.kind, step: s.step, ...(s.m ? { m: new Float32Array(s.m) } : {}), ...(s.v ? { v: new Float32Array(s.v) } : {}) };
}

const adam: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 4, innerBatch: 5 };

describe('evaluate', () => {
  it('starts every test task from the same φ and Adam state, and restores both at the end', async () => {
    const base = new TfjsLearner({ model: createSineModel({ seed: 2 }), innerState: 'carry' });
    const source = new SineTaskSource({ shots: 10 });
    // A few meta-iterations first, so that Adam's carried state is not the initial one.
    await metaTrain({ learner: base, source, config: { metaIters: 3, innerIters: 3, innerBatch: 5, learningRate: 0.01, optimizer: 'adam', seed: 4 } });
    const phi = new Float32Array(base.getParams().data);
    const state = copyState(base.getOptimizerState())!;
    expect(state.step).toBe(9);
    const learner = new RecordingLearner(base);
    const r = await evaluate({ learner, source, inner: adam, samples: 5, seed: 11 });
    expect(r.samples).toBe(5);
    expect(learner.starts).toHaveLength(5);
    for (const start of learner.starts) {
      expect(start.params).toEqual(phi);
      expect(start.state?.step).toBe(state.step);
      expect(start.state?.m).toEqual(state.m);
      expect(start.state?.v).toEqual(state.v);
    }
    expect(base.getParams().data).toEqual(phi);
    const after = base.getOptimizerState()!;
    expect(after.step).toBe(state.step);
    expect(after.v).toEqual(state.v);
  });

  it('scores task i the same whatever was evaluated before it (tasks re-run in reverse order)', async () => {
    const learner = new TfjsLearner({ model: createSineModel({ seed: 3 }), innerState: 'carry' });
    const source = new SineTaskSource({ shots: 10 });
    const r = await evaluate({ learner, source, inner: adam, samples: 6, seed: 21 });
    const phi = learner.getParams();
    const state = learner.getOptimizerState();
    for (let i = 5; i >= 0; i--) {
      const streams = evalTaskStreams(21, i);
      const task = source.sample(streams.task);
      learner.setOptimizerState(state);
      const adapted = await learner.adapt(task, adam, streams.batches);
      learner.setParams(adapted.params);
      const score = mse(learner.predict(task.query), task.query.targets);
      learner.setParams(phi);
      expect(score).toBe(r.perTask[i]);
    }
    // After the manual loop Adam's state is the one its last task left; evaluate restores its
    // starting state itself, so starting it from that one must change the scores (the check above
    // is not blind to state), and starting it from the original gives them back.
    const moved = await evaluate({ learner, source, inner: adam, samples: 6, seed: 21 });
    expect(moved.perTask).not.toEqual(r.perTask);
    learner.setOptimizerState(state);
    const again = await evaluate({ learner, source, inner: adam, samples: 6, seed: 21 });
    expect(again.perTask).toEqual(r.perTask);
  });

  it('gives the mean and the 95% interval 1.96·s/√n of a hand-computed example', async () => {
    // Task k (k = 1..4) is the single point (x = 1, y = k). From w = 0, one SGD step of α = 0.1 on
    // (w − k)² gives w = 0.2k, so the query MSE is (0.8k)² = 0.64k²: 0.64, 2.56, 5.76, 10.24.
    // Mean 4.8; sample variance 0.64²·43 = 17.6128 (deviations 6.5, 3.5, 1.5, 8.5 of k² around 7.5
    // sum to 129 in squares, /3 = 43); ci95 = 1.96·√17.6128/√4 = 4.112818...
    let k = 0;
    const source: TaskSource = {
      kind: 'regression',
      inputShape: [1],
      outputSize: 1,
      sample: () => {
        k += 1;
        const set = { count: 1, inputs: Float32Array.of(1), inputShape: [1], targets: Float32Array.of(k), targetShape: [1] };
        return { kind: 'regression', support: set, query: set };
      },
      describe: () => ({ task: 'counting' }),
    };
    const learner = new TfjsLearner({ model: scalarModel(0) });
    const r = await evaluate({ learner, source, inner: { optimizer: 'sgd', learningRate: 0.1, innerIters: 1, innerBatch: 1 }, samples: 4, seed: 0 });
    expect(r.metric).toBe('mse');
    r.perTask.forEach((v, i) => expect(v).toBeCloseTo(0.64 * (i + 1) ** 2, 5));
    expect(r.mean).toBeCloseTo(4.8, 5);
    expect(r.ci95).toBeCloseTo((1.96 * Math.sqrt(17.6128)) / 2, 4);
    expect(r.ci95).toBeCloseTo(4.112818, 4);
  });

  it('reports a zero-width interval for one task', async () => {
    const learner = new TfjsLearner({ model: scalarModel(0) });
    const r = await evaluate({ learner, source: new SineTaskSource(), inner: { optimizer: 'sgd', learningRate: 0.01, innerIters: 1, innerBatch: 5 }, samples: 1, seed: 0 });
    expect(r.ci95).toBe(0);
    expect(r.perTask).toHaveLength(1);
  });
});

/** Two-way tasks on two features: class 1 where the first is positive. */
class TwoWay implements TaskSource {
  readonly kind = 'classification' as const;
  readonly inputShape = [2];
  readonly outputSize = 2;
  sample(rng: Rng): Task {
    const set = (perClass: number): Examples => {
      const inputs: number[] = [];
      const targets: number[] = [];
      for (let i = 0; i < 2 * perClass; i++) {
        const c = i % 2;
        inputs.push((c === 1 ? 1 : -1) * rng.uniform(0.5, 1.5), rng.uniform(-0.5, 0.5));
        targets.push(c);
      }
      return { count: 2 * perClass, inputs: Float32Array.from(inputs), inputShape: [2], targets: Float32Array.from(targets), targetShape: [] };
    };
    return { kind: 'classification', numClasses: 2, support: set(2), query: set(3) };
  }
  describe(): Record<string, unknown> {
    return { task: 'two-way' };
  }
}

describe('a one-unit sigmoid head on two-way tasks', () => {
  const inner: InnerOptions = { optimizer: 'sgd', learningRate: 1e-4, innerIters: 1, innerBatch: 4 };
  /** One sigmoid unit whose output is above 0.5 where the first feature is positive (`sign` 1) or negative (-1). */
  const head = (sign: number) => {
    const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, activation: 'sigmoid', inputShape: [2] })] });
    model.setWeights([tf.tensor2d([[5 * sign], [0]]), tf.tensor1d([0])]);
    return model;
  };

  for (const kind of (['tfjs', 'native'] as const).filter((k) => k === 'tfjs' || nativeSkipReason === undefined)) {
    for (const transductive of [false, true]) {
      it(`predicts class 1 where the output is above 0.5 (${kind}${transductive ? ', transductive' : ''})`, async () => {
        for (const [sign, expected] of [[1, 1], [-1, 0]] as const) {
          const learner = createLearner({ model: head(sign), learner: kind });
          const r = await evaluate({ learner, source: new TwoWay(), inner, samples: 4, seed: 1, transductive, executor: new InlineExecutor() });
          learner.dispose();
          expect(r.metric).toBe('accuracy');
          expect(r.perTask).toEqual([expected, expected, expected, expected]);
        }
      });
    }
  }
});
