import type * as tf from '@tensorflow/tfjs';
import { sizeOf } from '../core/params.js';
import type { NativeIsa, NativeOp, NativePlan } from '../engine/native.js';
import { compileLayer, compileMerge, unsupported, type CompileContext, type LayerVar, type TensorRef } from './compile-layers.js';
import { walkModel } from './model-graph.js';

export { NATIVE_LAYERS } from './compile-layers.js';

/**
 * Compiles a tfjs model (Sequential, or functional with one input and one output; nested models are
 * compiled in place) into the native plan: its layers in an order where each comes after those it
 * reads (see walkModel), per-example shapes tracked in NHWC, each op listing the ops it reads when
 * they are not just the op before it;
 * weights are referenced by their offset in the flat vector of `model.trainableWeights` (φ), and
 * those of frozen layers (`trainable = false`) by their offset in the plan's `frozen` vector, which
 * the engine is given once and never changes.
 */
export function compileModel(model: tf.LayersModel, isa: NativeIsa = 'auto'): NativePlan {
  const { steps, output } = walkModel(model);
  const offsets = new Map<LayerVar, number>();
  let paramSize = 0;
  for (const w of model.trainableWeights) {
    offsets.set(w, paramSize);
    paramSize += sizeOf(w.shape as number[]);
  }
  const inShape = model.inputs[0]!.shape.slice(1);
  if (inShape.some((d) => d === null)) throw unsupported(`model input shape [${inShape.join(', ')}] must be fully known`);
  const shape = inShape as number[];
  if (shape.length !== 1 && shape.length !== 3) throw unsupported(`model input of rank ${shape.length + 1} (the native engine takes [batch, features] or [batch, height, width, channels])`);
  const inputSize = sizeOf(shape);
  const ops: NativeOp[] = [];

  // Frozen layers' weights (layer.trainable = false) are not in φ: they go, once, into the plan's
  // frozen vector, which their ops index instead.
  const frozenParts: Float32Array[] = [];
  const frozenOffsets = new Map<LayerVar, number>();
  let frozenSize = 0;
  const find = (layer: tf.layers.Layer, suffix: string): LayerVar | undefined =>
    layer.weights.find((x) => (x.originalName ?? x.name).endsWith(`/${suffix}`) || (x.originalName ?? x.name) === suffix);
  /** Offsets of a layer's weights (undefined where absent), in φ or, for a frozen layer, in the frozen vector. */
  const weightsOf = (layer: tf.layers.Layer, suffixes: string[]): { at: (number | undefined)[]; frozen?: true } => {
    const vars = suffixes.map((s) => find(layer, s));
    const present = vars.filter((v): v is LayerVar => v !== undefined);
    const frozen = present.filter((v) => !offsets.has(v));
    if (frozen.length > 0 && frozen.length < present.length) throw unsupported(`layer '${layer.name}' has both trainable and frozen weights (freeze the whole layer)`);
    if (frozen.length === 0) return { at: vars.map((v) => (v ? offsets.get(v) : undefined)) };
    const at = vars.map((v) => {
      if (!v) return undefined;
      let off = frozenOffsets.get(v);
      if (off === undefined) {
        off = frozenSize;
        frozenOffsets.set(v, off);
        frozenParts.push((v.read().dataSync() as Float32Array).slice());
        frozenSize += sizeOf(v.shape as number[]);
      }
      return off;
    });
    return { at, frozen: true };
  };
  const ctx: CompileContext = { ops, find, weightsOf };
  // Each tensor of the graph: the op computing it (−1: the input) and its shape.
  const tensors = new Map<number, TensorRef>([[0, { op: -1, shape }]]);
  for (const step of steps) {
    const xs = step.inputs.map((t) => tensors.get(t)!);
    const cls = step.layer.getClassName();
    if (cls === 'Add' || cls === 'Multiply' || cls === 'Concatenate' || xs.length !== 1) {
      tensors.set(step.output, compileMerge(ctx, step.layer, xs));
    } else {
      tensors.set(step.output, compileLayer(ctx, step.layer, xs[0]!));
    }
  }
  // The engine's output is its last op's: the output layer comes last (walkModel), and a layer
  // without ops of its own (Flatten, Reshape) passes on the last op of the layer before it.
  const out = tensors.get(output)!;
  if (ops.length === 0 || out.op === -1) throw unsupported('the model has no layers');
  if (out.op !== ops.length - 1) throw unsupported(`the model's output is not its last layer's`);
  if (out.shape.length !== 1) throw unsupported(`the model's output has shape [${out.shape.join(', ')}]; end it with Flatten and Dense`);
  const frozen = new Float32Array(frozenSize);
  let at = 0;
  for (const part of frozenParts) {
    frozen.set(part, at);
    at += part.length;
  }
  return { ops, inputSize, outputSize: out.shape[0]!, paramSize, ...(frozenSize > 0 ? { frozen } : {}), isa };
}
