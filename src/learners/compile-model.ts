import type * as tf from '@tensorflow/tfjs';
import { ReptileError } from '../_utils/errors.js';
import { sizeOf } from '../core/params.js';
import type { NativeActivation, NativeIsa, NativeOp, NativePlan } from '../engine/native.js';

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
  `Activation (linear, ${Object.keys(ACTIVATIONS).join(', ')})`,
] as const;

/** A model the native engine cannot compile; the message names the layer and the way out. */
export class UnsupportedModelError extends ReptileError {
  constructor(message: string) {
    super(`${message}; the native engine supports ${NATIVE_LAYERS.join(', ')}: use the tfjs learner (learner 'tfjs' or 'auto')`);
    this.name = 'UnsupportedModelError';
  }
}

type LayerVar = tf.LayersModel['trainableWeights'][number];

function pair(v: unknown, what: string, layer: string): [number, number] {
  const a = Array.isArray(v) ? v : [v, v];
  if (a.length !== 2 || !a.every((x) => Number.isInteger(x) && (x as number) > 0)) throw new UnsupportedModelError(`layer '${layer}' has an unsupported ${what} ${JSON.stringify(v)}`);
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

/**
 * Compiles a tfjs Sequential model into the native plan: per-example shapes are tracked in NHWC,
 * weights are referenced by their offset in the flat vector of `model.trainableWeights` (φ), and
 * those of frozen layers (`trainable = false`) by their offset in the plan's `frozen` vector, which
 * the engine is given once and never changes.
 */
export function compileModel(model: tf.LayersModel, isa: NativeIsa = 'auto'): NativePlan {
  if (model.getClassName() !== 'Sequential') throw new UnsupportedModelError(`model '${model.name}' is a ${model.getClassName()}, not a Sequential model`);
  const offsets = new Map<LayerVar, number>();
  let paramSize = 0;
  for (const w of model.trainableWeights) {
    offsets.set(w, paramSize);
    paramSize += sizeOf(w.shape as number[]);
  }
  const inShape = model.inputs[0]!.shape.slice(1);
  if (inShape.some((d) => d === null)) throw new UnsupportedModelError(`model input shape [${inShape.join(', ')}] must be fully known`);
  let shape = inShape as number[];
  if (shape.length !== 1 && shape.length !== 3) throw new UnsupportedModelError(`model input of rank ${shape.length + 1} (the native engine takes [batch, features] or [batch, height, width, channels])`);
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
    if (frozen.length > 0 && frozen.length < present.length) throw new UnsupportedModelError(`layer '${layer.name}' has both trainable and frozen weights (freeze the whole layer)`);
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
  const frozenFlag = (f: true | undefined): { frozen?: true } => (f ? { frozen: f } : {});
  const activation = (layer: tf.layers.Layer, name: unknown): void => {
    const size = sizeOf(shape);
    if (name === undefined || name === null || name === 'linear') return;
    const a = typeof name === 'string' ? ACTIVATIONS[name] : undefined;
    if (a === undefined) throw new UnsupportedModelError(`layer '${layer.name}' uses activation '${String(name)}'`);
    if (a === 'relu' || a === 'tanh') ops.push({ kind: a, inSize: size, outSize: size });
    else if (a === 'softmax') ops.push({ kind: 'softmax', inSize: size, outSize: size, channels: shape[shape.length - 1]! });
    else ops.push({ kind: 'act', inSize: size, outSize: size, ...a });
  };

  for (const layer of model.layers) {
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
        if (shape.length !== 1) throw new UnsupportedModelError(`layer '${layer.name}' (Dense) gets an input of shape [${shape.join(', ')}]; put a Flatten layer before it`);
        const units = cfg.units as number;
        const { at: [w, b], frozen } = weightsOf(layer, ['kernel', 'bias']);
        ops.push({ kind: 'dense', inSize: size, outSize: units, w: w!, ...(b === undefined ? {} : { b }), ...frozenFlag(frozen) });
        shape = [units];
        activation(layer, cfg.activation);
        break;
      }
      case 'Conv2D':
      case 'MaxPooling2D':
      case 'AveragePooling2D':
      case 'DepthwiseConv2D':
      case 'SeparableConv2D': {
        if (shape.length !== 3) throw new UnsupportedModelError(`layer '${layer.name}' (${cls}) needs an image input [height, width, channels], got [${shape.join(', ')}]`);
        if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') throw new UnsupportedModelError(`layer '${layer.name}' uses dataFormat '${String(cfg.dataFormat)}' (only channelsLast)`);
        const padding = String(cfg.padding ?? 'valid');
        if (padding !== 'same' && padding !== 'valid') throw new UnsupportedModelError(`layer '${layer.name}' uses padding '${padding}'`);
        const [inH, inW, cin] = shape as [number, number, number];
        const isDepthwise = cls === 'DepthwiseConv2D' || cls === 'SeparableConv2D';
        const isConv = cls === 'Conv2D' || isDepthwise;
        if (isConv) {
          const dil = pair(cfg.dilationRate ?? 1, 'dilation rate', layer.name);
          if (dil[0] !== 1 || dil[1] !== 1) throw new UnsupportedModelError(`layer '${layer.name}' uses dilation ${dil.join('x')}`);
        }
        const [kh, kw] = pair(isConv ? cfg.kernelSize : cfg.poolSize, isConv ? 'kernel size' : 'pool size', layer.name);
        const [sh, sw] = pair(cfg.strides ?? (isConv ? 1 : [kh, kw]), 'stride', layer.name);
        const h = axis(inH, kh, sh, padding);
        const wd = axis(inW, kw, sw, padding);
        if (h.out < 1 || wd.out < 1) throw new UnsupportedModelError(`layer '${layer.name}' leaves no output for an input of ${inH}x${inW}`);
        // tfjs averages a window that crosses the border over the pixels inside, but its gradient
        // divides by the whole window: no engine can match both, so those stay with tfjs.
        if (cls === 'AveragePooling2D' && ((h.out - 1) * sh + kh > inH || (wd.out - 1) * sw + kw > inW)) {
          throw new UnsupportedModelError(`layer '${layer.name}' (AveragePooling2D) has windows crossing the border of its ${inH}x${inW} input with padding 'same' (tfjs's gradient counts the padding there); use padding 'valid' or a size its strides divide`);
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
          ops.push({ kind: 'depthwise', inSize: size, outSize: separable ? mid : outSize, ...geom, cout: cin * mul, depthMultiplier: mul, w: dw!, ...(b !== undefined && !separable ? { b } : {}), ...frozenFlag(frozen) });
          if (separable) {
            const pointGeom = { inH: h.out, inW: wd.out, cin: cin * mul, outH: h.out, outW: wd.out, cout, kh: 1, kw: 1, sh: 1, sw: 1, padT: 0, padL: 0 };
            ops.push({ kind: 'conv', inSize: mid, outSize, ...pointGeom, w: second!, ...(b === undefined ? {} : { b }), ...frozenFlag(frozen) });
          }
        } else if (isConv) {
          const { at: [w, b], frozen } = weightsOf(layer, ['kernel', 'bias']);
          ops.push({ kind: 'conv', inSize: size, outSize, ...geom, w: w!, ...(b === undefined ? {} : { b }), ...frozenFlag(frozen) });
        } else {
          ops.push({ kind: cls === 'MaxPooling2D' ? 'maxpool' : 'avgpool', inSize: size, outSize, ...geom });
        }
        shape = [h.out, wd.out, cout];
        if (isConv) activation(layer, cfg.activation);
        break;
      }
      case 'GlobalMaxPooling2D':
      case 'GlobalAveragePooling2D': {
        if (shape.length !== 3) throw new UnsupportedModelError(`layer '${layer.name}' (${cls}) needs an image input [height, width, channels], got [${shape.join(', ')}]`);
        if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') throw new UnsupportedModelError(`layer '${layer.name}' uses dataFormat '${String(cfg.dataFormat)}' (only channelsLast)`);
        // A window over the whole image.
        const [inH, inW, c] = shape as [number, number, number];
        const geom = { inH, inW, cin: c, outH: 1, outW: 1, cout: c, kh: inH, kw: inW, sh: inH, sw: inW, padT: 0, padL: 0 };
        ops.push({ kind: cls === 'GlobalMaxPooling2D' ? 'maxpool' : 'avgpool', inSize: size, outSize: c, ...geom });
        shape = [c];
        break;
      }
      case 'ZeroPadding2D': {
        if (shape.length !== 3) throw new UnsupportedModelError(`layer '${layer.name}' (ZeroPadding2D) needs an image input [height, width, channels], got [${shape.join(', ')}]`);
        if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') throw new UnsupportedModelError(`layer '${layer.name}' uses dataFormat '${String(cfg.dataFormat)}' (only channelsLast)`);
        const p = cfg.padding as [[number, number], [number, number]];
        const [[top, bottom], [left, right]] = p;
        const [inH, inW, c] = shape as [number, number, number];
        const outH = inH + top + bottom;
        const outW = inW + left + right;
        ops.push({ kind: 'pad', inSize: size, outSize: outH * outW * c, inH, inW, cin: c, outH, outW, cout: c, kh: 1, kw: 1, sh: 1, sw: 1, padT: top, padL: left });
        shape = [outH, outW, c];
        break;
      }
      case 'Reshape': {
        // NHWC is row-major, as tfjs's tensors: a reshape moves no value.
        const target = (cfg.targetShape as (number | null)[]).slice();
        const known = target.reduce<number>((a, d) => (d === null || d < 0 ? a : a * d), 1);
        const unknown = target.findIndex((d) => d === null || d < 0);
        if (unknown >= 0) target[unknown] = size / known;
        if ((target.length !== 1 && target.length !== 3) || sizeOf(target as number[]) !== size) throw new UnsupportedModelError(`layer '${layer.name}' (Reshape) gives shape [${target.join(', ')}] (the native engine takes [features] or [height, width, channels])`);
        shape = target as number[];
        break;
      }
      case 'BatchNormalization': {
        const ax = cfg.axis as number | number[];
        const axes = Array.isArray(ax) ? ax : [ax];
        if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== shape.length)) throw new UnsupportedModelError(`layer '${layer.name}' normalises axis ${JSON.stringify(ax)} (only the last axis)`);
        const channels = shape[shape.length - 1]!;
        const moving = (suffix: string): Float32Array => {
          const w = layer.weights.find((x) => (x.originalName ?? x.name).endsWith(suffix));
          return w ? (w.read().dataSync() as Float32Array).slice() : new Float32Array(channels).fill(suffix === 'moving_variance' ? 1 : 0);
        };
        const {
          at: [gamma, beta],
          frozen,
        } = weightsOf(layer, ['gamma', 'beta']);
        ops.push({
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
        if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== shape.length)) throw new UnsupportedModelError(`layer '${layer.name}' (LayerNormalization) normalises axis ${JSON.stringify(ax)} (only the last axis)`);
        const {
          at: [gamma, beta],
          frozen,
        } = weightsOf(layer, ['gamma', 'beta']);
        const channels = shape[shape.length - 1]!;
        ops.push({ kind: 'layernorm', inSize: size, outSize: size, channels, epsilon: (cfg.epsilon as number | undefined) ?? 1e-3, ...(gamma === undefined ? {} : { gamma }), ...(beta === undefined ? {} : { beta }), ...frozenFlag(frozen) });
        break;
      }
      case 'ReLU': {
        const maxValue = cfg.maxValue;
        if (maxValue === undefined || maxValue === null) ops.push({ kind: 'relu', inSize: size, outSize: size });
        else ops.push({ kind: 'act', act: 'clipRelu', alpha: maxValue as number, inSize: size, outSize: size });
        break;
      }
      case 'LeakyReLU':
        ops.push({ kind: 'act', act: 'leakyRelu', alpha: (cfg.alpha as number | undefined) ?? 0.3, inSize: size, outSize: size });
        break;
      case 'ELU':
        ops.push({ kind: 'act', act: 'elu', alpha: (cfg.alpha as number | undefined) ?? 1, inSize: size, outSize: size });
        break;
      case 'Softmax': {
        const ax = cfg.axis as number | number[] | undefined;
        const axes = Array.isArray(ax) ? ax : [ax ?? -1];
        if (axes.length !== 1 || (axes[0] !== -1 && axes[0] !== shape.length)) throw new UnsupportedModelError(`layer '${layer.name}' (Softmax) normalises axis ${JSON.stringify(ax)} (only the last axis)`);
        activation(layer, 'softmax');
        break;
      }
      case 'Activation':
        activation(layer, cfg.activation);
        break;
      case 'Dropout': {
        // The layer's own seed is not used: masks come from the task's rng (NativeLearner), so that
        // runs are reproducible whichever thread or machine adapts a task.
        if (cfg.noiseShape !== undefined && cfg.noiseShape !== null) throw new UnsupportedModelError(`layer '${layer.name}' (Dropout) has a noiseShape`);
        const rate = cfg.rate as number;
        if (rate > 0) ops.push({ kind: 'dropout', inSize: size, outSize: size, rate });
        break;
      }
      default:
        throw new UnsupportedModelError(`layer '${layer.name}' (${cls}) is not supported`);
    }
  }
  if (shape.length !== 1) throw new UnsupportedModelError(`the model's output has shape [${shape.join(', ')}]; end it with Flatten and Dense`);
  if (ops.length === 0) throw new UnsupportedModelError('the model has no layers');
  const frozen = new Float32Array(frozenSize);
  let at = 0;
  for (const part of frozenParts) {
    frozen.set(part, at);
    at += part.length;
  }
  return { ops, inputSize, outputSize: shape[0]!, paramSize, ...(frozenSize > 0 ? { frozen } : {}), isa };
}
