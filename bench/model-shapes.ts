/**
 * The model shapes of ../shared/bench/models_reference.py (its docstring defines them), built as a
 * tfjs user writes them (channels last), and their FLOPs per training step.
 */
import type * as tfjs from '@tensorflow/tfjs';

export const MODEL_SHAPES = ['omniglot', 'miniimagenet', 'resnet12', 'mobilenet', 'keras-convnet', 'mlp'] as const;
export type ShapeName = (typeof MODEL_SHAPES)[number];

/** ResNet-12's widths and input side, as the reference's defaults. */
export const RESNET12 = { widths: [64, 160, 320, 640], size: 28 };

type Tf = typeof tfjs;

function convBn(tf: Tf, x: tfjs.SymbolicTensor, filters: number, kernelSize: number): tfjs.SymbolicTensor {
  const y = tf.layers.conv2d({ filters, kernelSize, padding: 'same' }).apply(x) as tfjs.SymbolicTensor;
  return tf.layers.batchNormalization({ epsilon: 1e-3 }).apply(y) as tfjs.SymbolicTensor;
}

/** One model shape with `classes` logits. */
export function buildShape(tf: Tf, name: ShapeName, classes: number): tfjs.LayersModel {
  switch (name) {
    case 'mlp':
      return tf.sequential({ layers: [tf.layers.dense({ units: 10, activation: 'relu', inputShape: [784] }), tf.layers.dense({ units: classes })] });
    case 'omniglot':
    case 'miniimagenet': {
      // The paper's networks: 4 × [conv 3×3 same, batch norm, relu (, max pool 2 same)], dense.
      const mini = name === 'miniimagenet';
      const layers: tfjs.layers.Layer[] = [];
      for (let i = 0; i < 4; i++) {
        layers.push(tf.layers.conv2d({ filters: mini ? 32 : 64, kernelSize: 3, strides: mini ? 1 : 2, padding: 'same', ...(i === 0 ? { inputShape: mini ? [84, 84, 3] : [28, 28, 1] } : {}) }));
        layers.push(tf.layers.batchNormalization({ epsilon: 1e-3 }));
        layers.push(tf.layers.reLU());
        if (mini) layers.push(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same' }));
      }
      layers.push(tf.layers.flatten(), tf.layers.dense({ units: classes }));
      return tf.sequential({ layers });
    }
    case 'keras-convnet':
      return tf.sequential({
        layers: [
          tf.layers.conv2d({ filters: 32, kernelSize: 3, activation: 'relu', inputShape: [28, 28, 1] }),
          tf.layers.conv2d({ filters: 64, kernelSize: 3, activation: 'relu' }),
          tf.layers.maxPooling2d({ poolSize: 2 }),
          tf.layers.dropout({ rate: 0.25 }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 128, activation: 'relu' }),
          tf.layers.dropout({ rate: 0.5 }),
          tf.layers.dense({ units: classes }),
        ],
      });
    case 'mobilenet': {
      const bnAct = (): tfjs.layers.Layer[] => [tf.layers.batchNormalization({ epsilon: 1e-3 }), tf.layers.reLU({ maxValue: 6 })];
      const layers: tfjs.layers.Layer[] = [tf.layers.conv2d({ filters: 32, kernelSize: 3, strides: 2, padding: 'same', inputShape: [28, 28, 1] }), ...bnAct()];
      const widths = [64, 128, 128, 256];
      const strides = [1, 2, 1, 2];
      for (let i = 0; i < 4; i++) {
        layers.push(tf.layers.depthwiseConv2d({ kernelSize: 3, strides: strides[i]!, padding: 'same' }), ...bnAct());
        layers.push(tf.layers.conv2d({ filters: widths[i]!, kernelSize: 1 }), ...bnAct());
      }
      layers.push(tf.layers.globalAveragePooling2d({}), tf.layers.dense({ units: classes }));
      return tf.sequential({ layers });
    }
    case 'resnet12': {
      // MetaOptNet's block: 3 × [conv 3×3 same, batch norm, leaky relu 0.1] (no activation after
      // the third), plus a 1×1 conv + batch norm shortcut, added, leaky relu 0.1, max pool 2.
      const input = tf.input({ shape: [RESNET12.size, RESNET12.size, 1] });
      let x: tfjs.SymbolicTensor = input;
      for (const w of RESNET12.widths) {
        let h = x;
        for (let i = 0; i < 3; i++) {
          h = convBn(tf, h, w, 3);
          if (i < 2) h = tf.layers.leakyReLU({ alpha: 0.1 }).apply(h) as tfjs.SymbolicTensor;
        }
        const s = convBn(tf, x, w, 1);
        x = tf.layers.add().apply([h, s]) as tfjs.SymbolicTensor;
        x = tf.layers.leakyReLU({ alpha: 0.1 }).apply(x) as tfjs.SymbolicTensor;
        x = tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }).apply(x) as tfjs.SymbolicTensor;
      }
      x = tf.layers.globalAveragePooling2d({}).apply(x) as tfjs.SymbolicTensor;
      return tf.model({ inputs: input, outputs: tf.layers.dense({ units: classes }).apply(x) as tfjs.SymbolicTensor });
    }
  }
}

/**
 * FLOPs of one training step over `batch` examples, 2 per multiply-add, counting the convolutions
 * (dense, depthwise, separable) and dense layers: forward, weight gradient and input gradient (none
 * for a layer fed by the model's input). Batch norm, pooling and activations are left out.
 */
export function flopsPerStep(model: tfjs.LayersModel, batch: number): number {
  let step = 0;
  const inputs = new Set(model.inputs);
  for (const layer of model.layers) {
    const cls = layer.getClassName();
    const out = layer.outputShape as number[];
    const kernel = (suffix: string) => layer.weights.find((w) => (w.originalName ?? w.name).endsWith(suffix))?.shape as number[] | undefined;
    let forward: number;
    if (cls === 'Dense') {
      const k = kernel('kernel')!;
      forward = 2 * k[0]! * k[1]!;
    } else if (cls === 'Conv2D') {
      const k = kernel('kernel')!;
      forward = 2 * out[1]! * out[2]! * k[0]! * k[1]! * k[2]! * k[3]!;
    } else if (cls === 'DepthwiseConv2D' || cls === 'SeparableConv2D') {
      const k = kernel('depthwise_kernel')!;
      forward = 2 * out[1]! * out[2]! * k[0]! * k[1]! * k[2]! * k[3]!;
      const p = kernel('pointwise_kernel');
      if (p) forward += 2 * out[1]! * out[2]! * p[2]! * p[3]!;
    } else {
      continue;
    }
    const first = inputs.has(layer.input as tfjs.SymbolicTensor);
    step += forward * (first ? 2 : 3);
  }
  return step * batch;
}
