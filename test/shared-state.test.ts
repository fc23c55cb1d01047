import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '../src/engine/backend.js';
import { InlineExecutor } from '../src/exec/inline.js';
import { taskStreams } from '../src/exec/executor.js';
import { meanOptimizerState } from '../src/exec/shared-state.js';
import type { InnerOptions, InnerStatePolicy, Learner } from '../src/learners/learner.js';
import { NativeLearner } from '../src/learners/native-learner.js';
import { TfjsLearner } from '../src/learners/tfjs.js';
import { SineTaskSource } from '../src/tasks/sine.js';
import { metaTrain } from '../src/train/meta-train.js';
import { init, nativeSkipReason, relErr } from './native-helpers.js';

beforeAll(async () => {
  await selectBackend('cpu');
});

function sineNet(seed: number): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [1], units: 8, activation: 'tanh', kernelInitializer: init(seed) }),
      tf.layers.dense({ units: 1, kernelInitializer: init(seed + 1) }),
    ],
  });
}

const inner: InnerOptions = { optimizer: 'adam', learningRate: 0.01, innerIters: 3, innerBatch: 5, beta1: 0, beta2: 0.999 };

describe('the shared inner-state policy', () => {
  it('the mean of final states: element-wise, step kept, mismatches refused', () => {
    const s = meanOptimizerState([
      { kind: 'adam', step: 6, m: Float32Array.of(1, 2), v: Float32Array.of(0.5, 1) },
      { kind: 'adam', step: 6, m: Float32Array.of(3, 6), v: Float32Array.of(1.5, 3) },
    ]);
    expect(s).toEqual({ kind: 'adam', step: 6, m: Float32Array.of(2, 4), v: Float32Array.of(1, 2) });
    expect(meanOptimizerState([undefined, undefined])).toBeUndefined();
    expect(() => meanOptimizerState([{ kind: 'adam', step: 3 }, { kind: 'adam', step: 4 }])).toThrow(/differ in kind or step/);
  });

  it('every task of a meta-batch starts from the same state; the next state is the mean of theirs', async () => {
    const shared = new TfjsLearner({ model: sineNet(3), innerState: 'shared' });
    const executor = new InlineExecutor();
    const source = new SineTaskSource();
    // Two meta-iterations first, so that the starting state is not zero.
    for (let iteration = 0; iteration < 2; iteration++) await executor.runMetaBatch({ learner: shared, source, seed: 5, iteration, metaBatch: 3, inner });
    const phi = shared.getParams();
    const start = shared.getOptimizerState()!;
    expect(start.step).toBe(2 * inner.innerIters);
    const results = await executor.runMetaBatch({ learner: shared, source, seed: 5, iteration: 2, metaBatch: 3, inner });

    // Each task alone, from φ and the same state, in reverse order: the same results.
    const alone = new TfjsLearner({ model: sineNet(3), innerState: 'carry' });
    const finals = [];
    const byTask = [];
    for (let t = 2; t >= 0; t--) {
      alone.setParams(phi);
      alone.setOptimizerState(start);
      const streams = taskStreams(5, 2, t);
      byTask[t] = await alone.adapt(source.sample(streams.task), inner, streams.batches);
      finals[t] = alone.getOptimizerState();
    }
    expect(results.map((r) => [...r.params.data])).toEqual(byTask.map((r) => [...r!.params.data]));
    const next = shared.getOptimizerState()!;
    expect(next).toEqual(meanOptimizerState(finals));
    expect(next.step).toBe(3 * inner.innerIters);
    // Not what carry would give: the last task's state.
    expect([...next.v!]).not.toEqual([...finals[2]!.v!]);
    shared.dispose();
    alone.dispose();
  });

  it.skipIf(nativeSkipReason !== undefined)('tfjs and native learners agree under shared over 10 meta-iterations', async () => {
    const run = async (make: (policy: InnerStatePolicy) => Learner) => {
      const learner = make('shared');
      await metaTrain({ learner, source: new SineTaskSource(), config: { seed: 2, metaIters: 10, metaBatch: 4, innerIters: 3, innerBatch: 5, learningRate: 0.01, optimizer: 'adam', innerState: 'shared' } });
      const out = { params: learner.getParams().data, v: learner.getOptimizerState()!.v! };
      learner.dispose();
      return out;
    };
    const a = await run((innerState) => new TfjsLearner({ model: sineNet(9), innerState }));
    const b = await run((innerState) => new NativeLearner({ model: sineNet(9), innerState, threads: 1 }));
    expect(relErr(b.params, a.params)).toBeLessThan(1e-4);
    expect(relErr(b.v, a.v)).toBeLessThan(1e-3);
  });
});
