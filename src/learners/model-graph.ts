import * as tf from '@tensorflow/tfjs';
import { unsupported } from './compile-layers.js';

/** One layer of a model's graph, reading tensors `inputs` and writing tensor `output` (tensor 0: the model's input). */
export interface GraphStep {
  layer: tf.layers.Layer;
  inputs: number[];
  output: number;
}

/**
 * The layers of a Sequential or functional model with one input and one output, in an order where
 * every layer comes after those it reads (for a Sequential model, its own order), with the layers
 * of nested models (a Sequential or functional model used as a layer) in place of the model.
 * Throws an {@link UnsupportedModelError} for several inputs or outputs and for a layer applied
 * more than once (shared weights).
 */
export function walkModel(model: tf.LayersModel): { steps: GraphStep[]; output: number } {
  const steps: GraphStep[] = [];
  const seen = new Set<tf.layers.Layer>();
  let next = 1;
  const visit = (m: tf.LayersModel, bound: number): number => {
    if (m.inputs.length !== 1 || m.outputs.length !== 1) {
      throw unsupported(`model '${m.name}' has ${m.inputs.length} inputs and ${m.outputs.length} outputs (the native engine compiles one input and one output)`);
    }
    const keys = new Map<number, number>([[m.inputs[0]!.id, bound]]);
    const walk = (t: tf.SymbolicTensor): number => {
      const known = keys.get(t.id);
      if (known !== undefined) return known;
      const layer = t.sourceLayer;
      if (layer.getClassName() === 'InputLayer') throw unsupported(`model '${m.name}' reads input '${layer.name}' besides its own (the native engine compiles one input)`);
      const ins = t.inputs.map(walk);
      if (seen.has(layer)) throw unsupported(`layer '${layer.name}' (${layer.getClassName()}) is applied more than once (shared weights)`);
      seen.add(layer);
      let out: number;
      if (layer instanceof tf.LayersModel) {
        if (ins.length !== 1) throw unsupported(`nested model '${layer.name}' reads ${ins.length} inputs`);
        out = visit(layer, ins[0]!);
      } else {
        out = next++;
        steps.push({ layer, inputs: ins, output: out });
      }
      keys.set(t.id, out);
      return out;
    };
    return walk(m.outputs[0]!);
  };
  const output = visit(model, 0);
  return { steps, output };
}
