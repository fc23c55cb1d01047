import * as tf from '@tensorflow/tfjs';
import { describeValue } from '../_utils/checks.js';
import { InvalidOptionsError, UnsupportedModelError } from '../_utils/errors.js';
import { createLayout, sizeOf, type Layout } from '../core/params.js';
import { walkModel } from './model-graph.js';

/** The layout of a model's trainable weights, in `model.trainableWeights` order (docs/architecture.md, invariant 2). */
export function modelLayout(model: tf.LayersModel): Layout {
  return createLayout(model.trainableWeights.map((w, i) => ({ name: w.originalName ?? w.name ?? `w${i}`, shape: w.shape as number[] })));
}

/** Concatenates tensors' values, in order, into one flat `Float32Array`: the one way weights are flattened. */
export function flattenTensors(tensors: readonly tf.Tensor[]): Float32Array {
  const out = new Float32Array(tensors.reduce((s, t) => s + sizeOf(t.shape), 0));
  let offset = 0;
  for (const t of tensors) {
    const values = t.dataSync() as Float32Array;
    out.set(values, offset);
    offset += values.length;
  }
  return out;
}

/** A model's trainable weights as one flat vector, laid out by `modelLayout`. */
export function modelWeights(model: tf.LayersModel): Float32Array {
  return flattenTensors(model.trainableWeights.map((w) => w.read()));
}

/**
 * Writes a flat vector into `model.trainableWeights` (in `modelLayout` order) and, when given,
 * batch normalisation's moving statistics into its BatchNormalization layers, in the compiled plan's
 * order (walkModel's, nested models included):
 * how the engine's state goes back into the tfjs model.
 */
export function writeModelWeights(model: tf.LayersModel, params: Float32Array, movingStats?: readonly { mean: Float32Array; variance: Float32Array }[]): void {
  tf.tidy(() => {
    let offset = 0;
    for (const w of model.trainableWeights) {
      const n = sizeOf(w.shape as number[]);
      w.write(tf.tensor(params.slice(offset, offset + n), w.shape as number[], 'float32'));
      offset += n;
    }
    if (movingStats === undefined) return;
    let k = 0;
    for (const { layer } of walkModel(model).steps) {
      if (layer.getClassName() !== 'BatchNormalization') continue;
      const s = movingStats[k++]!;
      for (const w of layer.weights) {
        const name = w.originalName ?? w.name;
        if (name.endsWith('moving_mean')) w.write(tf.tensor(s.mean, w.shape as number[], 'float32'));
        if (name.endsWith('moving_variance')) w.write(tf.tensor(s.variance, w.shape as number[], 'float32'));
      }
    }
  });
}

/**
 * Throws an {@link InvalidOptionsError} naming `model` unless it is a tfjs `LayersModel` (what a
 * JavaScript caller passes is not checked by the types): `{}` or a `tf.Tensor` gets one line, not a
 * `TypeError` from deep inside.
 */
export function checkModel(model: unknown): asserts model is tf.LayersModel {
  const m = model as Partial<tf.LayersModel> | null | undefined;
  const ok = m !== null && typeof m === 'object' && typeof m.getClassName === 'function' && Array.isArray(m.layers) && Array.isArray(m.trainableWeights);
  if (!ok) {
    const got = m !== null && typeof m === 'object' ? 'an object that is not one' : describeValue(model);
    throw new InvalidOptionsError(`\`model\` must be a tfjs LayersModel (tf.sequential() or tf.model()), got ${got}`, { option: 'model' });
  }
}

/**
 * Refuses a model whose layers carry weight regularizers or constraints: the inner loops minimise
 * the task loss alone and step the weights directly (as the paper's Reptile does), so a penalty or
 * a projection would be silently skipped. Both learners call it, so the answer is the same on each.
 */
export function checkNoRegularizers(model: tf.LayersModel): void {
  checkModel(model);
  // The layers of nested models too.
  const layers = (m: tf.LayersModel): tf.layers.Layer[] => m.layers.flatMap((l) => (l instanceof tf.LayersModel ? layers(l) : [l]));
  for (const layer of layers(model)) {
    const config = layer.getConfig() as Record<string, unknown>;
    for (const [key, value] of Object.entries(config)) {
      if (value === null || value === undefined || !/(Regularizer|Constraint)$/.test(key)) continue;
      const kind = key.endsWith('Regularizer') ? 'regularizer' : 'constraint';
      throw new UnsupportedModelError(
        `layer '${layer.name}' has a ${kind} (${key}): Reptile's inner loops minimise the task loss alone and would ignore it; build the model without ${kind}s`,
      );
    }
  }
}
