import type * as tf from '@tensorflow/tfjs';
import { UnsupportedModelError } from '../_utils/errors.js';
import { sizeOf } from '../core/params.js';
import type { NativeActivation, NativeOp } from '../engine/native.js';

/**
 * The activations the native engine runs, by their tfjs names, as elementwise ops (`relu` and
 * `tanh` have ops of their own; `softmax` runs over the last axis and, ending a classifier, is
 * fused with the cross-entropy).
 */
const ACTIVATIONS: Record<string, { act: NativeActivation; alpha?: number } | 'relu' | 'tanh' | 'softmax'> = {
  relu: 'relu',
  tanh: 'tanh',
  softmax: 'softmax',
  sigmoid: { act: 'sigmoid' },
  elu: { act: 'elu', alpha: 1 },
  selu: { act: 'selu' },
  relu6: { act: 'clipRelu', alpha: 6 },
  softplus: { act: 'softplus' },
  softsign: { act: 'softsign' },
  swish: { act: 'swish' },
  hardSigmoid: { act: 'hardSigmoid' },
  gelu: { act: 'gelu' },
  gelu_new: { act: 'geluTanh' },
  mish: { act: 'mish' },
};

/** Layers the native engine compiles. */
export const NATIVE_LAYERS = [
  'Dense',
  'Conv2D',
  'BatchNormalization',
  'LayerNormalization',
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalMaxPooling2D',
  'GlobalAveragePooling2D',
  'ZeroPadding2D',
  'DepthwiseConv2D',
  'SeparableConv2D',
  'Flatten',
  'Reshape',
  'ReLU',
  'LeakyReLU',
  'ELU',
  'Softmax',
  'Dropout',
  'Add',
  'Concatenate (last axis)',
  'Multiply',
  'nested Sequential models',
  `Activation (linear, ${Object.keys(ACTIVATIONS).join(', ')})`,
] as const;

/** A model the native engine cannot compile: the message names the layer, then the way out. */
export function unsupported(message: string): UnsupportedModelError {
  return new UnsupportedModelError(`${message}; the native engine supports ${NATIVE_LAYERS.join(', ')}: use the tfjs learner (set \`learner\` to 'tfjs' or 'auto')`);
}

/** A weight of a tfjs model. */
export type LayerVar = tf.LayersModel['trainableWeights'][number];

function pair(v: unknown, what: string, layer: string): [number, number] {
  const a = Array.isArray(v) ? v : [v, v];
  if (a.length !== 2 || !a.every((x) => Number.isInteger(x) && (x as number) > 0)) throw unsupported(`layer '${layer}' has an unsupported ${what} ${JSON.stringify(v)}`);
  return [a[0] as number, a[1] as number];
}

/** Output size and TensorFlow padding (lo side) of one spatial axis. */
function axis(inSize: number, k: number, s: number, padding: string): { out: number; lo: number } {
  if (padding === 'same') {
    const out = Math.ceil(inSize / s);
    const total = Math.max((out - 1) * s + k - inSize, 0);
    return { out, lo: Math.floor(total / 2) };
  }
  return { out: Math.floor((inSize - k) / s) + 1, lo: 0 };
}

/** A tensor of the graph being compiled: the op that computes it (−1: the model's input) and its per-example shape. */
export interface TensorRef {
  op: number;
  shape: number[];
}

/** What compiling a layer needs from the model being compiled. */
export interface CompileContext {
  ops: NativeOp[];
  /** A layer's weight whose name ends with `/suffix`. */
  find(layer: tf.layers.Layer, suffix: string): LayerVar | undefined;
  /** Offsets of a layer's weights (undefined where absent), in φ or, for a frozen layer, in the frozen vector. */
  weightsOf(layer: tf.layers.Layer, suffixes: string[]): { at: (number | undefined)[]; frozen?: true };
}

const frozenFlag = (f: true | undefined): { frozen?: true } => (f ? { frozen: f } : {});

/**
 * Appends the ops of one single-input layer reading `x` to `ctx.ops` and returns its output. An op
 * reading anything but the op just before it lists what it reads in `inputs`.
 */
export function compileLayer(ctx: CompileContext, layer: tf.layers.Layer, x: TensorRef): TensorRef {
  const { find, weightsOf } = ctx;
  let shape = x.shape;
  let at = x.op;
  const push = (op: NativeOp): void => {
    ctx.ops.push(at === ctx.ops.length - 1 ? op : { ...op, inputs: [at] });
    at = ctx.ops.length - 1;
  };
  const activation = (layer: tf.layers.Layer, name: unknown): void => {
    const size = sizeOf(shape);
    if (name === undefined || name === null || name === 'linear') return;
    const a = typeof name === 'string' ? ACTIVATIONS[name] : undefined;
    if (a === undefined) throw unsupported(`layer '${layer.name}' uses activation '${String(name)}'`);
    if (a === 'relu' || a === 'tanh') push({ kind: a, inSize: size, outSize: size });
    else if (a === 'softmax') push({ kind: 'softmax', inSize: size, outSize: size, channels: shape[shape.length - 1]! });
    else push({ kind: 'act', inSize: size, outSize: size, ...a });
  };
  const cls = layer.getClassName();
  const cfg = layer.getConfig() as Record<string, unknown>;
  const size = sizeOf(shape);
  switch (cls) {
    case 'InputLayer':
      break;
    case 'Flatten':
      shape = [size];
      break;
    case 'Dense': {
      if (shape.length !== 1) throw unsupported(`layer '${layer.name}' (Dense) gets an input of shape [${shape.join(', ')}]; put a Flatten layer before it`);
      const units = cfg.units as number;
      const { at: [w, b], frozen } = weightsOf(layer, ['kernel', 'bias']);
      push({ kind: 'dense', inSize: size, outSize: units, w: w!, ...(b === undefined ? {} : { b }), ...frozenFlag(frozen) });
      shape = [units];
      activation(layer, cfg.activation);
      break;
    }
    case 'Conv2D':
    case 'MaxPooling2D':
    case 'AveragePooling2D':
    case 'DepthwiseConv2D':
    case 'SeparableConv2D': {
      if (shape.length !== 3) throw unsupported(`layer '${layer.name}' (${cls}) needs an image input [height, width, channels], got [${shape.join(', ')}]`);
      if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') throw unsupported(`layer '${layer.name}' uses dataFormat '${String(cfg.dataFormat)}' (only channelsLast)`);
      const padding = String(cfg.padding ?? 'valid');
      if (padding !== 'same' && padding !== 'valid') throw unsupported(`layer '${layer.name}' uses padding '${padding}'`);
      const [inH, inW, cin] = shape as [number, number, number];
      const isDepthwise = cls === 'DepthwiseConv2D' || cls === 'SeparableConv2D';
      const isConv = cls === 'Conv2D' || isDepthwise;
      // A dilated window (Conv2D only) spans (k − 1)·d + 1 pixels of each axis.
      const [dh, dw] = isConv ? pair(cfg.dilationRate ?? 1, 'dilation rate', layer.name) : [1, 1];
      if (isDepthwise && (dh !== 1 || dw !== 1)) throw unsupported(`layer '${layer.name}' (${cls}) uses dilation ${dh}x${dw} (only Conv2D takes a dilation rate)`);
      const dilation = dh !== 1 || dw !== 1 ? { dilationH: dh, dilationW: dw } : {};
      const [kh, kw] = pair(isConv ? cfg.kernelSize : cfg.poolSize, isConv ? 'kernel size' : 'pool size', layer.name);
      const [sh, sw] = pair(cfg.strides ?? (isConv ? 1 : [kh, kw]), 'stride', layer.name);
      const h = axis(inH, (kh - 1) * dh + 1, sh, padding);
      const wd = axis(inW, (kw - 1) * dw + 1, sw, padding);
      if (h.out < 1 || wd.out < 1) throw unsupported(`layer '${layer.name}' leaves no output for an input of ${inH}x${inW}`);
      // tfjs averages a window that crosses the border over the pixels inside, but its gradient
      // divides by the whole window: no engine can match both, so those stay with tfjs.
      if (cls === 'AveragePooling2D' && ((h.out - 1) * sh + kh > inH || (wd.out - 1) * sw + kw > inW)) {
        throw unsupported(`layer '${layer.name}' (AveragePooling2D) has windows crossing the border of its ${inH}x${inW} input with padding 'same' (tfjs's gradient counts the padding there); use padding 'valid' or a size its strides divide`);
      }
      // The depth multiplier from the kernel's shape (kh, kw, cin, mul): SeparableConv2D's config leaves it out.
      const mul = isDepthwise ? (find(layer, 'depthwise_kernel')!.shape[3] as number) : 1;
      const cout = isDepthwise ? (cls === 'SeparableConv2D' ? (cfg.filters as number) : cin * mul) : isConv ? (cfg.filters as number) : cin;
      const geom = { inH, inW, cin, outH: h.out, outW: wd.out, cout, kh, kw, sh, sw, padT: h.lo, padL: wd.lo };
      const outSize = h.out * wd.out * cout;
      if (isDepthwise) {
        // SeparableConv2D: the depthwise convolution (no bias), then a 1 × 1 convolution with the bias.
        const separable = cls === 'SeparableConv2D';
        const { at, frozen } = weightsOf(layer, separable ? ['depthwise_kernel', 'pointwise_kernel', 'bias'] : ['depthwise_kernel', 'bias']);
        const [dw, second, third] = at;
        const b = separable ? third : second;
        const mid = h.out * wd.out * cin * mul;
        push({ kind: 'depthwise', inSize: size, outSize: separable ? mid : outSize, ...geom, cout: cin * mul, depthMultiplier: mul, w: dw!, ...(b !== undefined && !separable ? { b } : {}), ...frozenFlag(frozen) });
        if (separable) {
          const pointGeom = { inH: h.out, inW: wd.out, cin: cin * mul, outH: h.out, outW: wd.out, cout, kh: 1, kw: 1, sh: 1, sw: 1, padT: 0, padL: 0 };
          push({ kind: 'conv', inSize: mid, outSize, ...pointGeom, w: second!, ...(b === undefined ? {} : { b }), ...frozenFlag(frozen) });
        }
      } else if (isConv) {
        const { at: [w, b], frozen } = weightsOf(layer, ['kernel', 'bias']);
        push({ kind: 'conv', inSize: size, outSize, ...geom, ...dilation, w: w!, ...(b === undefined ? {} : { b }), ...frozenFlag(frozen) });
      } else {
        push({ kind: cls === 'MaxPooling2D' ? 'maxpool' : 'avgpool', inSize: size, outSize, ...geom });
      }
      shape = [h.out, wd.out, cout];
      if (isConv) activation(layer, cfg.activation);
      break;
    }
    case 'GlobalMaxPooling2D':
    case 'GlobalAveragePooling2D': {
      if (shape.length !== 3) throw unsupported(`layer '${layer.name}' (${cls}) needs an image input [height, width, channels], got [${shape.join(', ')}]`);
      if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') throw unsupported(`layer '${layer.name}' uses dataFormat '${String(cfg.dataFormat)}' (only channelsLast)`);
      // A window over the whole image.
      const [inH, inW, c] = shape as [number, number, number];
      const geom = { inH, inW, cin: c, outH: 1, outW: 1, cout: c, kh: inH, kw: inW, sh: inH, sw: inW, padT: 0, padL: 0 };
      push({ kind: cls === 'GlobalMaxPooling2D' ? 'maxpool' : 'avgpool', inSize: size, outSize: c, ...geom });
      shape = [c];
      break;
    }
    case 'ZeroPadding2D': {
      if (shape.length !== 3) throw unsupported(`layer '${layer.name}' (ZeroPadding2D) needs an image input [height, width, channels], got [${shape.join(', ')}]`);
      if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') throw unsupported(`layer '${layer.name}' uses dataFormat '${String(cfg.dataFormat)}' (only channelsLast)`);
      const p = cfg.padding as [[number, number], [number, number]];
      const [[top, bottom], [left, right]] = p;
      const [inH, inW, c] = shape as [number, number, number];
      const outH = inH + top + bottom;
      const outW = inW + left + right;
      push({ kind: 'pad', inSize: size, outSize: outH * outW * c, inH, inW, cin: c, outH, outW, cout: c, kh: 1, kw: 1, sh: 1, sw: 1, padT: top, padL: left });
      shape = [outH, outW, c];
      break;
    }
    case 'Reshape': {
      // NHWC is row-major, as tfjs's tensors: a reshape moves no value.
      const target = (cfg.targetShape as (number | null)[]).slice();
      const known = target.reduce<number>((a, d) => (d === null || d < 0 ? a : a * d), 1);
      const unknown = target.findIndex((d) => d === null || d < 0);
      if (unknown >= 0) target[unknown] = size / known;
      if ((target.length !== 1 && target.length !== 3) || sizeOf(target as number[]) !== size) throw unsupported(`layer '${layer.name}' (Reshape) gives shape [${target.join(', ')}] (the native engine takes [features] or [height, width, channels])`);
      shape = target as number[];
      break;
    }
    case 'BatchNormalization': {
      const ax = cfg.axis as number | number[];
      const axes = Array.isArray(ax) ? ax : [ax];
      if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== shape.length)) throw unsupported(`layer '${layer.name}' normalises axis ${JSON.stringify(ax)} (only the last axis)`);
      const channels = shape[shape.length - 1]!;
      const moving = (suffix: string): Float32Array => {
        const w = layer.weights.find((x) => (x.originalName ?? x.name).endsWith(suffix));
        return w ? (w.read().dataSync() as Float32Array).slice() : new Float32Array(channels).fill(suffix === 'moving_variance' ? 1 : 0);
      };
      const {
        at: [gamma, beta],
        frozen,
      } = weightsOf(layer, ['gamma', 'beta']);
      push({
        kind: 'batchnorm',
        inSize: size,
        outSize: size,
        channels,
        epsilon: (cfg.epsilon as number | undefined) ?? 1e-3,
        momentum: (cfg.momentum as number | undefined) ?? 0.99,
        ...(gamma === undefined ? {} : { gamma }),
        ...(beta === undefined ? {} : { beta }),
        ...frozenFlag(frozen),
        movingMean: moving('moving_mean'),
        movingVariance: moving('moving_variance'),
      });
      break;
    }
    case 'LayerNormalization': {
      const ax = cfg.axis as number | number[];
      const axes = Array.isArray(ax) ? ax : [ax];
      if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== shape.length)) throw unsupported(`layer '${layer.name}' (LayerNormalization) normalises axis ${JSON.stringify(ax)} (only the last axis)`);
      const {
        at: [gamma, beta],
        frozen,
      } = weightsOf(layer, ['gamma', 'beta']);
      const channels = shape[shape.length - 1]!;
      push({ kind: 'layernorm', inSize: size, outSize: size, channels, epsilon: (cfg.epsilon as number | undefined) ?? 1e-3, ...(gamma === undefined ? {} : { gamma }), ...(beta === undefined ? {} : { beta }), ...frozenFlag(frozen) });
      break;
    }
    case 'ReLU': {
      const maxValue = cfg.maxValue;
      if (maxValue === undefined || maxValue === null) push({ kind: 'relu', inSize: size, outSize: size });
      else push({ kind: 'act', act: 'clipRelu', alpha: maxValue as number, inSize: size, outSize: size });
      break;
    }
    case 'LeakyReLU':
      push({ kind: 'act', act: 'leakyRelu', alpha: (cfg.alpha as number | undefined) ?? 0.3, inSize: size, outSize: size });
      break;
    case 'ELU':
      push({ kind: 'act', act: 'elu', alpha: (cfg.alpha as number | undefined) ?? 1, inSize: size, outSize: size });
      break;
    case 'Softmax': {
      const ax = cfg.axis as number | number[] | undefined;
      const axes = Array.isArray(ax) ? ax : [ax ?? -1];
      if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== shape.length)) throw unsupported(`layer '${layer.name}' (Softmax) normalises axis ${JSON.stringify(ax)} (only the last axis)`);
      activation(layer, 'softmax');
      break;
    }
    case 'Activation':
      activation(layer, cfg.activation);
      break;
    case 'Dropout': {
      // The layer's own seed is not used: masks come from the task's rng (NativeLearner), so that
      // runs are reproducible whichever thread or machine adapts a task.
      if (cfg.noiseShape !== undefined && cfg.noiseShape !== null) throw unsupported(`layer '${layer.name}' (Dropout) has a noiseShape`);
      const rate = cfg.rate as number;
      if (rate > 0) push({ kind: 'dropout', inSize: size, outSize: size, rate });
      break;
    }
    default:
      throw unsupported(`layer '${layer.name}' (${cls}) is not supported`);
  }
  return { op: at, shape };
}

/**
 * Appends a merge layer (Add, Multiply, or Concatenate along the last axis) reading `xs` and
 * returns its output.
 */
export function compileMerge(ctx: CompileContext, layer: tf.layers.Layer, xs: TensorRef[]): TensorRef {
  const cls = layer.getClassName();
  const cfg = layer.getConfig() as Record<string, unknown>;
  const shapes = xs.map((x) => `[${x.shape.join(', ')}]`).join(' and ');
  const inputs = xs.map((x) => x.op);
  const first = xs[0]!.shape;
  if (cls === 'Add' || cls === 'Multiply') {
    if (xs.some((x) => x.shape.length !== first.length || x.shape.some((d, i) => d !== first[i]))) throw unsupported(`layer '${layer.name}' (${cls}) merges shapes ${shapes} (the native engine merges equal shapes)`);
    const size = sizeOf(first);
    ctx.ops.push({ kind: cls === 'Add' ? 'add' : 'multiply', inSize: size, outSize: size, inputs });
    return { op: ctx.ops.length - 1, shape: first };
  }
  if (cls === 'Concatenate') {
    const rank = first.length;
    const ax = (cfg.axis as number | undefined) ?? -1;
    const sameRest = xs.every((x) => x.shape.length === rank && x.shape.every((d, i) => i === rank - 1 || d === first[i]));
    if ((ax !== -1 && ax !== rank) || !sameRest) throw unsupported(`layer '${layer.name}' (Concatenate) joins shapes ${shapes} along axis ${ax} (the native engine joins along the last axis)`);
    const channels = xs.reduce((s, x) => s + x.shape[rank - 1]!, 0);
    const shape = [...first.slice(0, -1), channels];
    const size = sizeOf(shape);
    ctx.ops.push({ kind: 'concat', inSize: size, outSize: size, channels, inputs });
    return { op: ctx.ops.length - 1, shape };
  }
  throw unsupported(`layer '${layer.name}' (${cls}) merges ${xs.length} inputs and is not supported`);
}
