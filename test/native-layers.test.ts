import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/core/rng.js';
import { selectBackend } from '../src/engine/backend.js';
import { loadNative, type NativeIsa } from '../src/engine/native.js';
import { NativeLearner } from '../src/learners/native-learner.js';
import { WasmLearner } from '../src/learners/wasm-learner.js';
import { relaxedSimdSupported } from '../src/engine/wasm-module.js';
import type { Task } from '../src/tasks/task.js';
import { init, nativeSkipReason, randomTask, relErr, tfjsGradients, wasmSkipReason } from './native-helpers.js';

// docs/architecture.md, invariant 3: every native layer's forward pass (output), backward pass (parameter and
// input gradients) and loss equal tfjs autograd's on the same weights and data, for random shapes
// and seeds, with every kernel variant this CPU can run and with the engine compiled to WebAssembly.
const status = loadNative();
const isas = [...(status.ok ? status.addon.supportedIsas() : []), ...(wasmSkipReason === undefined ? ['wasm'] : [])] as (NativeIsa | 'wasm')[];
const TOL = 1e-4;

beforeAll(async () => {
  await selectBackend('cpu');
});

interface Case {
  name: string;
  inputShape: number[];
  layers: (seed: number) => tf.layers.Layer[];
  classes?: number;
  outputs?: number;
  count?: number;
  /** Indices of layers to freeze. */
  frozen?: number[];
}

function checkCase(c: Case, seed: number, isa: NativeIsa | 'wasm'): void {
  const layers = c.layers(seed);
  const model = tf.sequential({ layers });
  // Layers frozen after the model is built, as users do (layer.trainable = false).
  for (const i of c.frozen ?? []) model.layers[i]!.trainable = false;
  const outSize = (model.outputs[0]!.shape[1] as number) ?? 1;
  const rng = Rng.derive(seed, 77);
  const count = c.count ?? 2 + rng.int(5);
  const task: Task = randomTask({ rng, count, shape: c.inputShape, ...(c.classes ? { classes: c.classes } : { outputs: outSize }) });
  const native = isa === 'wasm' ? new WasmLearner({ model }) : new NativeLearner({ model, isa });
  const got = native.gradients(task, task.support);
  const want = tfjsGradients(model, task, task.support);
  const where = `${c.name} seed ${seed} isa ${isa}`;
  expect(relErr(got.output, want.output), `output, ${where}`).toBeLessThanOrEqual(TOL);
  expect(Math.abs(got.loss - want.loss) / Math.max(Math.abs(want.loss), 1e-6), `loss, ${where}`).toBeLessThanOrEqual(TOL);
  expect(relErr(got.grad.data, want.grad), `param gradient, ${where}`).toBeLessThanOrEqual(TOL);
  expect(relErr(got.inputGrad, want.inputGrad), `input gradient, ${where}`).toBeLessThanOrEqual(TOL);
  native.dispose();
  model.dispose();
}

/** Random conv geometry: kernel 1..5 (not always square), stride 1..3, same or valid, non-square input. */
function convCase(seed: number): Case {
  const r = Rng.derive(seed, 1);
  const kh = 1 + r.int(4);
  const kw = r.next() < 0.5 ? kh : 1 + r.int(4);
  const sh = 1 + r.int(3);
  const sw = r.next() < 0.5 ? sh : 1 + r.int(3);
  const padding = r.next() < 0.5 ? 'same' : 'valid';
  const h = kh + r.int(7);
  const w = kw + r.int(7);
  const cin = 1 + r.int(3);
  const filters = 1 + r.int(5);
  const useBias = r.next() < 0.7;
  const activation = (['linear', 'relu', 'tanh'] as const)[r.int(3)]!;
  return {
    name: `conv ${kh}x${kw} stride ${sh}x${sw} ${padding} on ${h}x${w}x${cin} → ${filters} bias ${useBias} ${activation}`,
    inputShape: [h, w, cin],
    layers: (s) => [
      tf.layers.conv2d({ inputShape: [h, w, cin], filters, kernelSize: [kh, kw], strides: [sh, sw], padding, useBias, activation, kernelInitializer: init(s), biasInitializer: init(s + 1) }),
      tf.layers.flatten(),
    ],
  };
}

/**
 * Random conv geometry with 16, 32 or 64 input channels and windows of more than 96 weights per
 * filter: the products read the input in place through a table of pointers instead of im2col's
 * matrix (a window crossing the border reads zeros; row panels cross from one window position to
 * the next; K-blocks of 256 hold whole positions).
 */
function wideConvCase(seed: number): Case {
  const r = Rng.derive(seed, 5);
  const cin = [16, 32, 64][r.int(3)]!;
  let kh = 2 + r.int(3);
  let kw = r.next() < 0.5 ? kh : 2 + r.int(3);
  if (kh * kw * cin <= 96) kh = kw = 3;
  const sh = 1 + r.int(2);
  const sw = r.next() < 0.5 ? sh : 1 + r.int(2);
  const padding = r.next() < 0.5 ? 'same' : 'valid';
  const h = kh + r.int(6);
  const w = kw + r.int(6);
  const filters = 1 + r.int(70);
  const useBias = r.next() < 0.7;
  return {
    name: `conv ${kh}x${kw} stride ${sh}x${sw} ${padding} on ${h}x${w}x${cin} → ${filters} bias ${useBias}`,
    inputShape: [h, w, cin],
    layers: (s) => [
      tf.layers.conv2d({ inputShape: [h, w, cin], filters, kernelSize: [kh, kw], strides: [sh, sw], padding, useBias, kernelInitializer: init(s), biasInitializer: init(s + 1) }),
      tf.layers.flatten(),
    ],
  };
}

/**
 * Convolutions whose input gradient is gathered by stride phases (16, 32 or 64 filters, the input
 * read in place): strides 1 to 3 against windows of 2 to 4, so that phases have one to four window
 * rows and columns, or none (a window smaller than its stride leaves pixels no output reaches).
 */
function phasedConvCase(seed: number): Case {
  const r = Rng.derive(seed, 9);
  const cin = [16, 32, 64][r.int(3)]!;
  const filters = [16, 32, 64][r.int(3)]!;
  let kh = 2 + r.int(3);
  let kw = r.next() < 0.5 ? kh : 2 + r.int(3);
  if (kh * kw * cin <= 96) kh = kw = 3;
  const sh = 1 + r.int(3);
  const sw = r.next() < 0.5 ? sh : 1 + r.int(3);
  const padding = r.next() < 0.5 ? 'same' : 'valid';
  const h = kh + r.int(7);
  const w = kw + r.int(7);
  return {
    name: `conv ${kh}x${kw} stride ${sh}x${sw} ${padding} on ${h}x${w}x${cin} → ${filters}`,
    inputShape: [h, w, cin],
    layers: (s) => [
      tf.layers.conv2d({ inputShape: [h, w, cin], filters, kernelSize: [kh, kw], strides: [sh, sw], padding, kernelInitializer: init(s), biasInitializer: init(s + 1) }),
      tf.layers.flatten(),
    ],
  };
}

const phasedConvCases: Case[] = [
  {
    // 2 × 2 windows 3 apart: a third of the rows and columns of pixels get no gradient at all.
    name: 'conv 2x2 stride 3 valid on 8x7x32 → 16',
    inputShape: [8, 7, 32],
    layers: (s) => [tf.layers.conv2d({ inputShape: [8, 7, 32], filters: 16, kernelSize: 2, strides: 3, kernelInitializer: init(s) }), tf.layers.flatten()],
  },
  {
    // With batch norm the phases' weights are packed by an earlier flush; without, in the product.
    name: 'conv 3x3 stride 2 same → 32 + bn + relu, conv 3x3 stride 2 same → 16 + bn + relu, dense',
    inputShape: [9, 9, 16],
    classes: 3,
    layers: (s) => [
      tf.layers.conv2d({ inputShape: [9, 9, 16], filters: 32, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: init(s) }),
      tf.layers.batchNormalization({ gammaInitializer: init(s + 1), betaInitializer: init(s + 2) }),
      tf.layers.reLU(),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: init(s + 3) }),
      tf.layers.batchNormalization({ gammaInitializer: init(s + 4), betaInitializer: init(s + 5) }),
      tf.layers.reLU(),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3, kernelInitializer: init(s + 6) }),
    ],
  },
];

function poolCase(seed: number): Case {
  const r = Rng.derive(seed, 2);
  const ph = 1 + r.int(3);
  const pw = 1 + r.int(3);
  const sh = 1 + r.int(3);
  const sw = 1 + r.int(3);
  const padding = r.next() < 0.5 ? 'same' : 'valid';
  const h = ph + r.int(6);
  const w = pw + r.int(6);
  const c = 1 + r.int(4);
  return {
    name: `maxpool ${ph}x${pw} stride ${sh}x${sw} ${padding} on ${h}x${w}x${c}`,
    inputShape: [h, w, c],
    layers: () => [tf.layers.maxPooling2d({ inputShape: [h, w, c], poolSize: [ph, pw], strides: [sh, sw], padding }), tf.layers.flatten()],
  };
}

/**
 * Average pooling over random windows that stay inside the image ('valid', or 'same' where it adds
 * no padding): where a window crosses the border, tfjs's forward pass averages the pixels inside
 * but its gradient divides by the whole window, so the engine refuses those (see below).
 */
function avgPoolCase(seed: number): Case {
  const r = Rng.derive(seed, 7);
  const ph = 1 + r.int(3);
  const pw = 1 + r.int(3);
  const sh = 1 + r.int(3);
  const sw = 1 + r.int(3);
  const h = ph + r.int(6);
  const w = pw + r.int(6);
  const c = 1 + r.int(4);
  const padding = r.next() < 0.5 && (h - ph) % sh === 0 && (w - pw) % sw === 0 && sh >= ph && sw >= pw ? 'same' : 'valid';
  return {
    name: `avgpool ${ph}x${pw} stride ${sh}x${sw} ${padding} on ${h}x${w}x${c}`,
    inputShape: [h, w, c],
    layers: () => [tf.layers.averagePooling2d({ inputShape: [h, w, c], poolSize: [ph, pw], strides: [sh, sw], padding }), tf.layers.flatten()],
  };
}

/** Conv, then zero padding, global pooling or a reshape, then a dense head; random sizes. */
function shapeCase(seed: number): Case {
  const r = Rng.derive(seed, 8);
  const h = 2 + r.int(5);
  const w = 2 + r.int(5);
  const c = 1 + r.int(5);
  const pads: [[number, number], [number, number]] = [
    [r.int(3), r.int(3)],
    [r.int(3), r.int(3)],
  ];
  const conv = (s: number): tf.layers.Layer => tf.layers.conv2d({ inputShape: [h, w, 2], filters: c, kernelSize: 2, padding: 'same', kernelInitializer: init(s), biasInitializer: init(s + 1) });
  const head = (s: number): tf.layers.Layer => tf.layers.dense({ units: 3, kernelInitializer: init(s + 2) });
  const variants: Case[] = [
    { name: `GlobalAveragePooling2D on ${h}x${w}x${c}`, inputShape: [h, w, 2], layers: (s) => [conv(s), tf.layers.globalAveragePooling2d({}), head(s)] },
    { name: `GlobalMaxPooling2D on ${h}x${w}x${c}`, inputShape: [h, w, 2], layers: (s) => [conv(s), tf.layers.globalMaxPooling2d({}), head(s)] },
    { name: `ZeroPadding2D ${JSON.stringify(pads)} on ${h}x${w}x${c}, conv`, inputShape: [h, w, 2], layers: (s) => [conv(s), tf.layers.zeroPadding2d({ padding: pads }), tf.layers.conv2d({ filters: 2, kernelSize: 3, kernelInitializer: init(s + 3) }), tf.layers.flatten(), head(s)] },
    { name: `Reshape ${h}x${w}x${c} → [${h * w * c}] and back to [${w}, ${h}, ${c}]`, inputShape: [h, w, 2], layers: (s) => [conv(s), tf.layers.reshape({ targetShape: [-1] }), tf.layers.reshape({ targetShape: [w, h, c] }), tf.layers.conv2d({ filters: 2, kernelSize: 2, kernelInitializer: init(s + 3) }), tf.layers.flatten(), head(s)] },
  ];
  return variants[seed % variants.length]!;
}

/** DepthwiseConv2D and SeparableConv2D over random kernels, strides, paddings, depth multipliers. */
function depthwiseCase(seed: number): Case {
  const r = Rng.derive(seed, 10);
  const kh = 1 + r.int(4);
  const kw = r.next() < 0.5 ? kh : 1 + r.int(4);
  const s = 1 + r.int(3);
  const padding = r.next() < 0.5 ? 'same' : 'valid';
  const h = kh + r.int(6);
  const w = kw + r.int(6);
  const cin = 1 + r.int(5);
  const depthMultiplier = 1 + r.int(3);
  const useBias = r.next() < 0.7;
  const separable = seed % 2 === 0;
  const filters = 1 + r.int(6);
  const activation = (['linear', 'relu', 'relu6'] as const)[r.int(3)]!;
  const common = { inputShape: [h, w, cin], kernelSize: [kh, kw] as [number, number], strides: s, padding: padding as 'same' | 'valid', depthMultiplier, useBias, activation };
  return {
    name: `${separable ? `separable → ${filters}` : 'depthwise'} ${kh}x${kw} stride ${s} ${padding} on ${h}x${w}x${cin} × ${depthMultiplier} bias ${useBias} ${activation}`,
    inputShape: [h, w, cin],
    layers: (sd) => [
      separable
        ? tf.layers.separableConv2d({ ...common, filters, depthwiseInitializer: init(sd), pointwiseInitializer: init(sd + 1), biasInitializer: init(sd + 2) })
        : tf.layers.depthwiseConv2d({ ...common, depthwiseInitializer: init(sd), biasInitializer: init(sd + 2) }),
      tf.layers.flatten(),
    ],
  };
}

/** LayerNormalization over the last axis of flat and image inputs, frozen or not. */
function layerNormCase(seed: number): Case {
  const r = Rng.derive(seed, 11);
  const image = r.next() < 0.5;
  const shape = image ? [1 + r.int(4), 1 + r.int(4), 2 + r.int(6)] : [2 + r.int(10)];
  const epsilon = [1e-3, 1e-5, 0.1][r.int(3)]!;
  // tfjs cannot differentiate a layer normalisation without center or scale (it tiles the missing
  // gamma/beta), so the oracle covers center = scale = true, as for batch norm.
  const center = true;
  const scale = true;
  const frozen = r.next() < 0.25;
  return {
    name: `layerNormalization on [${shape.join(', ')}] center ${center} scale ${scale} epsilon ${epsilon}${frozen ? ' frozen' : ''} → dense 3`,
    inputShape: shape,
    count: 1 + r.int(6),
    ...(frozen ? { frozen: [1] } : {}),
    layers: (s) => [
      image
        ? tf.layers.conv2d({ inputShape: shape, filters: shape[2]!, kernelSize: 1, kernelInitializer: wide(s, 1) })
        : tf.layers.dense({ inputShape: shape, units: shape[0]!, kernelInitializer: wide(s, 1) }),
      tf.layers.layerNormalization({ epsilon, center, scale, gammaInitializer: init(s + 1), betaInitializer: init(s + 2) }),
      ...(image ? [tf.layers.flatten()] : []),
      tf.layers.dense({ units: 3, kernelInitializer: init(s + 3) }),
    ],
  };
}

function denseCase(seed: number): Case {
  const r = Rng.derive(seed, 3);
  const inF = 1 + r.int(12);
  const units = 1 + r.int(9);
  const useBias = r.next() < 0.7;
  const activation = (['linear', 'relu', 'tanh'] as const)[r.int(3)]!;
  return {
    name: `dense ${inF} → ${units} bias ${useBias} ${activation}`,
    inputShape: [inF],
    layers: (s) => [tf.layers.dense({ inputShape: [inF], units, useBias, activation, kernelInitializer: init(s), biasInitializer: init(s + 1) })],
  };
}

function bnCase(seed: number): Case {
  const r = Rng.derive(seed, 4);
  const image = r.next() < 0.5;
  const shape = image ? [1 + r.int(4), 1 + r.int(4), 1 + r.int(5)] : [1 + r.int(8)];
  // tfjs cannot train a batch norm without center or scale (it reads the missing gamma/beta),
  // so the oracle only covers center = scale = true.
  const center = true;
  const scale = true;
  const epsilon = [1e-3, 1e-5, 0.1][r.int(3)]!;
  return {
    name: `batchnorm on [${shape.join(', ')}] center ${center} scale ${scale} epsilon ${epsilon}`,
    inputShape: shape,
    count: 2 + r.int(6),
    layers: (s) => [
      tf.layers.batchNormalization({ inputShape: shape, center, scale, epsilon, gammaInitializer: init(s), betaInitializer: init(s + 1) }),
      ...(image ? [tf.layers.flatten()] : []),
    ],
  };
}

const activationCases: Case[] = [
  { name: 'ReLU layer', inputShape: [3, 4, 2], layers: () => [tf.layers.reLU({ inputShape: [3, 4, 2] }), tf.layers.flatten()] },
  { name: 'Activation tanh', inputShape: [7], layers: () => [tf.layers.activation({ inputShape: [7], activation: 'tanh' })] },
  { name: 'Activation relu', inputShape: [5], layers: () => [tf.layers.activation({ inputShape: [5], activation: 'relu' })] },
  { name: 'Flatten then tanh', inputShape: [2, 3, 2], layers: () => [tf.layers.flatten({ inputShape: [2, 3, 2] }), tf.layers.activation({ activation: 'tanh' })] },
];

/** A wider initializer, so that pre-activations reach every piece of each activation (relu6's ceiling, softplus's thresholds). */
function wide(seed: number, range = 4): ReturnType<typeof tf.initializers.randomUniform> {
  return tf.initializers.randomUniform({ minval: -range, maxval: range, seed });
}

/** Every activation the compiler maps, by its tfjs name (softmax as a hidden layer here). */
const ACTIVATION_NAMES = ['relu', 'tanh', 'sigmoid', 'elu', 'selu', 'relu6', 'softplus', 'softsign', 'swish', 'hardSigmoid', 'gelu', 'gelu_new', 'mish', 'softmax', 'linear'] as const;

/**
 * Each activation fused in Dense (then a dense head, so that the loss reads it through a layer)
 * and in Conv2D, and as an Activation layer on an image: forward, input and weight gradients.
 */
function activationOfCase(name: (typeof ACTIVATION_NAMES)[number], where: 'dense' | 'conv' | 'layer'): Case {
  const act = name as Parameters<typeof tf.layers.dense>[0]['activation'];
  if (where === 'dense') {
    return {
      name: `dense 8 → 6 ${name} → dense 3`,
      inputShape: [8],
      count: 7,
      layers: (s) => [tf.layers.dense({ inputShape: [8], units: 6, activation: act, kernelInitializer: wide(s), biasInitializer: wide(s + 1, 1) }), tf.layers.dense({ units: 3, kernelInitializer: init(s + 2) })],
    };
  }
  if (where === 'conv') {
    return {
      name: `conv 3x3 → 4 ${name}, flatten`,
      inputShape: [5, 4, 2],
      count: 3,
      layers: (s) => [tf.layers.conv2d({ inputShape: [5, 4, 2], filters: 4, kernelSize: 3, padding: 'same', activation: act, kernelInitializer: wide(s, 2), biasInitializer: wide(s + 1, 1) }), tf.layers.flatten()],
    };
  }
  return {
    name: `Activation ${name} on 3x4x5 (scaled input)`,
    inputShape: [3, 4, 5],
    count: 4,
    layers: (s) => [
      tf.layers.conv2d({ inputShape: [3, 4, 5], filters: 5, kernelSize: 1, kernelInitializer: wide(s, 3) }),
      tf.layers.activation({ activation: act! }),
      tf.layers.flatten(),
    ],
  };
}

/** The activation layers with a parameter, over random values of it. */
function activationLayerCase(seed: number): Case {
  const r = Rng.derive(seed, 6);
  const alpha = Math.round(r.uniform(0.01, 0.9) * 100) / 100;
  const layer = [
    { name: `LeakyReLU alpha ${alpha}`, make: () => tf.layers.leakyReLU({ alpha }) },
    { name: 'LeakyReLU (default alpha)', make: () => tf.layers.leakyReLU() },
    { name: 'ELU', make: () => tf.layers.elu() },
    { name: `ReLU maxValue ${alpha * 5}`, make: () => tf.layers.reLU({ maxValue: alpha * 5 }) },
    { name: 'Softmax layer', make: () => tf.layers.softmax() },
  ][seed % 5]!;
  return {
    name: `dense 6 → 5, ${layer.name}, dense 2`,
    inputShape: [6],
    count: 5,
    layers: (s) => [tf.layers.dense({ inputShape: [6], units: 5, kernelInitializer: wide(s, 2) }), layer.make(), tf.layers.dense({ units: 2, kernelInitializer: init(s + 1) })],
  };
}

/**
 * Output heads: the loss follows the last activation (learners/loss.ts). A softmax output takes
 * tfjs's categorical cross-entropy (the engine: from the logits, fused with the softmax); sigmoid
 * outputs take the binary cross-entropy (one unit for two classes, or one per class against the
 * one-hot label; the engine: from the logits); a sigmoid regression output the squared error.
 */
const headCases: Case[] = [
  { name: 'dense 6 → 4 softmax, categorical cross-entropy', inputShape: [6], classes: 4, count: 9, layers: (s) => [tf.layers.dense({ inputShape: [6], units: 4, activation: 'softmax', kernelInitializer: wide(s, 1) })] },
  {
    name: 'dense relu → dense 5 softmax, Softmax layer on the last',
    inputShape: [7],
    classes: 5,
    count: 8,
    layers: (s) => [tf.layers.dense({ inputShape: [7], units: 10, activation: 'relu', kernelInitializer: init(s) }), tf.layers.dense({ units: 5, kernelInitializer: wide(s + 1, 1) }), tf.layers.softmax()],
  },
  {
    name: "the seed's MLP: dense 10 relu → dense 3 sigmoid, binary cross-entropy per class",
    inputShape: [12],
    classes: 3,
    count: 7,
    layers: (s) => [tf.layers.dense({ inputShape: [12], units: 10, activation: 'relu', kernelInitializer: init(s) }), tf.layers.dense({ units: 3, activation: 'sigmoid', kernelInitializer: wide(s + 1, 1) })],
  },
  { name: 'dense 5 → 1 sigmoid, two classes, binary cross-entropy', inputShape: [5], classes: 2, count: 6, layers: (s) => [tf.layers.dense({ inputShape: [5], units: 1, activation: 'sigmoid', kernelInitializer: wide(s, 1) })] },
  {
    name: 'conv + bn + relu + flatten + dense softmax',
    inputShape: [6, 5, 1],
    classes: 3,
    count: 5,
    layers: (s) => [
      tf.layers.conv2d({ inputShape: [6, 5, 1], filters: 4, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: init(s) }),
      tf.layers.batchNormalization({ gammaInitializer: init(s + 1), betaInitializer: init(s + 2) }),
      tf.layers.reLU(),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(s + 3) }),
    ],
  },
  { name: 'dense 4 → 3 sigmoid, regression (squared error through the sigmoid)', inputShape: [4], count: 6, layers: (s) => [tf.layers.dense({ inputShape: [4], units: 3, activation: 'sigmoid', kernelInitializer: wide(s, 1) })] },
  { name: 'dense 4 → 3 softmax, regression (squared error through the softmax)', inputShape: [4], count: 6, layers: (s) => [tf.layers.dense({ inputShape: [4], units: 3, activation: 'softmax', kernelInitializer: wide(s, 1) })] },
];

/**
 * Frozen layers: their weights are fixed (not in φ, no gradient), and the gradient still flows
 * through them to the trainable layers below and to the input.
 */
const frozenCases: Case[] = [
  {
    name: 'frozen conv + bn + relu + pool extractor, trainable dense head',
    inputShape: [7, 6, 2],
    classes: 3,
    count: 6,
    frozen: [0, 1],
    layers: (s) => [
      tf.layers.conv2d({ inputShape: [7, 6, 2], filters: 5, kernelSize: 3, padding: 'same', kernelInitializer: init(s), biasInitializer: init(s + 1) }),
      tf.layers.batchNormalization({ gammaInitializer: init(s + 2), betaInitializer: init(s + 3) }),
      tf.layers.reLU(),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3, kernelInitializer: init(s + 4) }),
    ],
  },
  {
    name: 'trainable conv, frozen bn and conv, trainable dense',
    inputShape: [6, 6, 1],
    classes: 2,
    count: 5,
    frozen: [1, 3],
    layers: (s) => [
      tf.layers.conv2d({ inputShape: [6, 6, 1], filters: 4, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: init(s) }),
      tf.layers.batchNormalization({ gammaInitializer: init(s + 1), betaInitializer: init(s + 2) }),
      tf.layers.reLU(),
      tf.layers.conv2d({ filters: 3, kernelSize: 2, kernelInitializer: init(s + 3), biasInitializer: init(s + 4) }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 2, kernelInitializer: init(s + 5) }),
    ],
  },
  {
    name: 'dense, frozen dense in the middle, dense softmax',
    inputShape: [6],
    classes: 3,
    count: 7,
    frozen: [1],
    layers: (s) => [
      tf.layers.dense({ inputShape: [6], units: 8, activation: 'tanh', kernelInitializer: init(s) }),
      tf.layers.dense({ units: 7, activation: 'relu', kernelInitializer: init(s + 1), biasInitializer: init(s + 2) }),
      tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(s + 3) }),
    ],
  },
  {
    name: 'everything frozen (no parameters): the input gradient only',
    inputShape: [5],
    count: 4,
    frozen: [0, 1],
    layers: (s) => [tf.layers.dense({ inputShape: [5], units: 4, activation: 'elu', kernelInitializer: init(s) }), tf.layers.dense({ units: 2, kernelInitializer: init(s + 1) })],
  },
];

const softmaxCases: Case[] = [
  { name: 'softmax cross-entropy, dense 6 → 4', inputShape: [6], classes: 4, count: 9, layers: (s) => [tf.layers.dense({ inputShape: [6], units: 4, kernelInitializer: init(s) })] },
  {
    name: 'softmax cross-entropy, conv + bn + relu + pool + dense (1 channel, non-square)',
    inputShape: [9, 6, 1],
    classes: 3,
    count: 7,
    layers: (s) => [
      tf.layers.conv2d({ inputShape: [9, 6, 1], filters: 4, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: init(s) }),
      tf.layers.batchNormalization({ gammaInitializer: init(s + 2), betaInitializer: init(s + 3) }),
      tf.layers.reLU(),
      tf.layers.maxPooling2d({ poolSize: 2, padding: 'same' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3, kernelInitializer: init(s + 4) }),
    ],
  },
  {
    // 20 channels: whole vectors and single channels in the batch norm's per-channel sums (16 + 4
    // with AVX-512, 8 + 8 + 4 with AVX2), the ReLU's mask applied to both.
    name: 'softmax cross-entropy, conv 20 filters + bn + relu + dense',
    inputShape: [6, 6, 2],
    classes: 3,
    count: 5,
    layers: (s) => [
      tf.layers.conv2d({ inputShape: [6, 6, 2], filters: 20, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: init(s) }),
      tf.layers.batchNormalization({ gammaInitializer: init(s + 2), betaInitializer: init(s + 3) }),
      tf.layers.reLU(),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3, kernelInitializer: init(s + 4) }),
    ],
  },
  {
    name: 'batch of 1, one channel',
    inputShape: [5, 3, 1],
    classes: 2,
    count: 1,
    layers: (s) => [
      tf.layers.conv2d({ inputShape: [5, 3, 1], filters: 2, kernelSize: [2, 3], padding: 'valid', kernelInitializer: init(s) }),
      tf.layers.activation({ activation: 'tanh' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 2, kernelInitializer: init(s + 1) }),
    ],
  },
];

describe.skipIf(nativeSkipReason !== undefined && wasmSkipReason !== undefined)('native layers equal tfjs (forward and backward)', () => {
  for (const isa of isas) {
    describe(isa === 'wasm' ? `the engine in WebAssembly (${relaxedSimdSupported() ? 'relaxed SIMD' : 'SIMD128'})` : `kernels ${isa}`, () => {
      it('Conv2D over random kernels, strides, paddings and shapes', () => {
        for (let seed = 1; seed <= 12; seed++) checkCase(convCase(seed), seed, isa);
      });
      it('Conv2D with 16 to 64 input channels, read in place (no im2col matrix)', () => {
        for (let seed = 1; seed <= 8; seed++) checkCase(wideConvCase(seed), seed, isa);
        // More rows per shard than a K-block of the weight gradient (2 × 300 rows of 288 columns).
        const long: Case = {
          name: 'conv 3x3 same on 10x10x32 → 24, 6 examples',
          inputShape: [10, 10, 32],
          count: 6,
          layers: (s) => [tf.layers.conv2d({ inputShape: [10, 10, 32], filters: 24, kernelSize: 3, padding: 'same', kernelInitializer: init(s), biasInitializer: init(s + 1) }), tf.layers.flatten()],
        };
        checkCase(long, 3, isa);
      });
      it('Conv2D input gradient gathered by stride phases (16, 32, 64 filters)', () => {
        for (let seed = 1; seed <= 10; seed++) checkCase(phasedConvCase(seed), seed, isa);
        for (const c of phasedConvCases) for (const seed of [1, 2]) checkCase(c, seed, isa);
      });
      it('MaxPooling2D over random windows, strides and paddings', () => {
        for (let seed = 1; seed <= 10; seed++) checkCase(poolCase(seed), seed, isa);
      });
      it('AveragePooling2D over random windows, strides and paddings', () => {
        for (let seed = 1; seed <= 10; seed++) checkCase(avgPoolCase(seed), seed, isa);
      });
      it('GlobalAveragePooling2D, GlobalMaxPooling2D, ZeroPadding2D and Reshape', () => {
        for (let seed = 1; seed <= 12; seed++) checkCase(shapeCase(seed), seed, isa);
      });
      it('DepthwiseConv2D and SeparableConv2D over random geometries and depth multipliers', () => {
        for (let seed = 1; seed <= 12; seed++) checkCase(depthwiseCase(seed), seed, isa);
      });
      it('LayerNormalization over random shapes and settings', () => {
        for (let seed = 1; seed <= 12; seed++) checkCase(layerNormCase(seed), seed, isa);
      });
      it('Dense over random sizes, with and without bias and activation', () => {
        for (let seed = 1; seed <= 10; seed++) checkCase(denseCase(seed), seed, isa);
      });
      it('BatchNormalization with batch statistics over random shapes and settings', () => {
        for (let seed = 1; seed <= 10; seed++) checkCase(bnCase(seed), seed, isa);
      });
      it('ReLU, Tanh and Flatten', () => {
        for (const c of activationCases) checkCase(c, 3, isa);
      });
      it('every activation, fused in Dense and Conv2D and as an Activation layer', () => {
        for (const name of ACTIVATION_NAMES) for (const where of ['dense', 'conv', 'layer'] as const) checkCase(activationOfCase(name, where), 3, isa);
      });
      it('LeakyReLU, ELU, ReLU with maxValue and Softmax layers', () => {
        for (let seed = 1; seed <= 12; seed++) checkCase(activationLayerCase(seed), seed, isa);
      });
      it('output heads: softmax with categorical cross-entropy, sigmoid with binary cross-entropy, sigmoid and softmax under squared error', () => {
        for (const c of headCases) for (const seed of [1, 2]) checkCase(c, seed, isa);
      });
      it('frozen layers: fixed weights, no gradient for them, gradients through them', () => {
        for (const c of frozenCases) for (const seed of [1, 2]) checkCase(c, seed, isa);
      });
      it('softmax cross-entropy, stacks of layers, batch 1', () => {
        for (const c of softmaxCases) for (const seed of [1, 2]) checkCase(c, seed, isa);
      });
    });
  }

  it('a GEMM large enough to cross every block boundary (dense 2100 → 3, batch 200)', () => {
    // 2100 inputs cross the K and N block sizes (input gradient), 200 examples the M block.
    const c: Case = { name: 'big dense', inputShape: [2100], count: 200, layers: (s) => [tf.layers.dense({ inputShape: [2100], units: 3, kernelInitializer: init(s) })] };
    for (const isa of isas) checkCase(c, 5, isa);
  });
});
