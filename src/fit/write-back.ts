import * as tf from '@tensorflow/tfjs';
import { sizeOf } from '../core/params.js';
import { flattenTensors, writeModelWeights } from '../learners/weights.js';
import type { NativeEngine } from '../engine/native.js';
import type { Prepared } from './prepare.js';

// Moving the engine's state into the tfjs model and its optimizer, and back: weights, batch-norm
// statistics, Adam's moments and step, Reptile's slow weights.

export interface LayerVar {
  name: string;
  shape: number[];
  read(): tf.Tensor;
  write(t: tf.Tensor): void;
}

interface AdamInternals {
  accumulatedFirstMoment: { originalName: string; variable: tf.Variable }[];
  accumulatedSecondMoment: { originalName: string; variable: tf.Variable }[];
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  beta1: number;
  beta2: number;
  iterations_: number;
}

/** Adam's first and second moments, flat in `model.trainableWeights` order (zeros before its first step). */
export async function adamMoments(opt: tf.Optimizer, count: number): Promise<[Float32Array | undefined, Float32Array | undefined]> {
  const a = opt as unknown as AdamInternals;
  const m = a.accumulatedFirstMoment ?? [];
  const v = a.accumulatedSecondMoment ?? [];
  if (m.length !== count || v.length !== count) return [undefined, undefined];
  return [flattenTensors(m.map((x) => x.variable)), flattenTensors(v.map((x) => x.variable))];
}

/** Writes the engine's weights, batch-norm statistics and optimizer state back into the model and its optimizer. */
export async function writeBack(model: tf.LayersModel, engine: NativeEngine, p: Prepared, s: { innerStep: number; reptileIter: number; slow: Float32Array | undefined; stepsRun: number }): Promise<void> {
  const weights = model.trainableWeights as unknown as LayerVar[];
  writeModelWeights(model, engine.getParams(), engine.getMovingStats());
  const pieces = (flat: Float32Array): tf.Tensor[] => {
    let off = 0;
    return weights.map((w) => {
      const n = sizeOf(w.shape);
      const t = tf.tensor(flat.subarray(off, off + n), w.shape, 'float32');
      off += n;
      return t;
    });
  };
  if (s.stepsRun === 0) return;
  const inner = p.inner.optimizer as unknown as AdamInternals;
  inner.iterations_ = s.innerStep;
  if (p.inner.kind === 'adam') {
    const state = engine.getOptimizerState()!;
    const write = (list: { originalName: string; variable: tf.Variable }[] | undefined, flat: Float32Array, suffix: string) => {
      const ts = pieces(flat);
      if (list && list.length === weights.length) {
        list.forEach((e, i) => e.variable.assign(ts[i]!));
        tf.dispose(ts);
        return list;
      }
      tf.dispose((list ?? []).map((e) => e.variable));
      const made = ts.map((t, i) => ({ originalName: `${weights[i]!.name}/${suffix}`, variable: tf.variable(t, false) }));
      tf.dispose(ts);
      return made;
    };
    inner.accumulatedFirstMoment = write(inner.accumulatedFirstMoment, state.m!, 'm');
    inner.accumulatedSecondMoment = write(inner.accumulatedSecondMoment, state.v!, 'v');
    tf.tidy(() => {
      inner.accBeta1.assign(tf.scalar(Math.pow(inner.beta1, s.innerStep + 1)));
      inner.accBeta2.assign(tf.scalar(Math.pow(inner.beta2, s.innerStep + 1)));
    });
  }
  if (p.reptile && s.slow) {
    const r = p.reptile as unknown as { slow: (tf.Variable | undefined)[]; iterations_: number };
    r.iterations_ = s.reptileIter;
    const ts = pieces(s.slow);
    r.slow = ts.map((t, i) => {
      const old = r.slow[i];
      if (old && tf.util.arraysEqual(old.shape, t.shape)) {
        old.assign(t);
        return old;
      }
      old?.dispose();
      return tf.variable(t, false);
    });
    tf.dispose(ts);
  }
}
