// The addon's input boundary: plans and arguments the sanitizer run of scripts/fuzz-native.mjs
// found reading or writing outside the engine's buffers, or casting NaN and huge numbers to
// integers, are refused with a JavaScript error; sound plans and calls still compute.
import { describe, expect, it } from 'vitest';
import { loadNative, type NativeAddon, type NativePlan } from '../src/engine/native.js';
import { nativeSkipReason } from './native-helpers.js';

const status = loadNative();
const addon = (status.ok ? status.addon : undefined) as NativeAddon;

// A 4×4×1 image, a 3×3 'same' convolution with 2 filters, then a dense layer to 3 classes.
function plan(): NativePlan {
  return {
    ops: [
      { kind: 'conv', inSize: 16, outSize: 32, inH: 4, inW: 4, cin: 1, outH: 4, outW: 4, cout: 2, kh: 3, kw: 3, sh: 1, sw: 1, padT: 1, padL: 1, w: 0, b: 18 },
      { kind: 'relu', inSize: 32, outSize: 32 },
      { kind: 'dense', inSize: 32, outSize: 3, w: 20, b: 116 },
    ],
    inputSize: 16,
    outputSize: 3,
    paramSize: 119,
  };
}

const inputs = (n: number) => Float32Array.from({ length: n * 16 }, (_, i) => Math.sin(i));

describe.skipIf(nativeSkipReason !== undefined)('the native addon refuses what would take it outside its buffers', () => {
  it('a sound plan computes', () => {
    const engine = new addon.Engine(plan());
    engine.setParams(Float32Array.from({ length: 119 }, (_, i) => Math.cos(i) / 4));
    const g = engine.gradients(inputs(2), Float32Array.of(0, 2), 2, 'softmax-xent');
    expect(Number.isFinite(g.loss)).toBe(true);
    expect(g.grad.length).toBe(119);
    engine.release();
  });

  it.each([
    ['weights past the parameters', (p: NativePlan) => Object.assign(p.ops[2]!, { b: 117 }), /weights lie outside the parameters/],
    ['a convolution without weights', (p: NativePlan) => delete (p.ops[0] as { w?: number }).w, /needs weights/],
    ['a window wholly in the padding', (p: NativePlan) => Object.assign(p.ops[0]!, { padT: 3 }), /a window lies wholly in the padding/],
    ['a window larger than its padded input (its end overflowed an int)', (p: NativePlan) => Object.assign(p.ops[0]!, { kw: 2147483647 }), /a window is larger than its padded input/],
    ['sizes that are not height × width × channels', (p: NativePlan) => Object.assign(p.ops[0]!, { inH: 5 }), /not height × width × channels/],
    ['ops that do not chain', (p: NativePlan) => Object.assign(p.ops[1]!, { inSize: 31, outSize: 31 }), /input sizes do not match the ops it reads/],
    ['an output size the last op does not give', (p: NativePlan) => Object.assign(p, { outputSize: 4 }), /output size is not plan.outputSize/],
    ['a NaN weight offset', (p: NativePlan) => Object.assign(p.ops[2]!, { w: NaN }), /field 'w' must be a whole number/],
    ['a fractional size', (p: NativePlan) => Object.assign(p, { inputSize: 16.5 }), /field 'inputSize' must be a whole number/],
    ['a huge parameter count', (p: NativePlan) => Object.assign(p, { paramSize: 2 ** 40 }), /field 'paramSize' must be a whole number from 0 to 268435456/],
  ])('a plan with %s', (_name, damage, message) => {
    const p = plan();
    damage(p);
    expect(() => new addon.Engine(p)).toThrow(message);
  });

  it('gradients refuse class labels outside the outputs (they were read past the logits)', () => {
    const engine = new addon.Engine(plan());
    expect(() => engine.gradients(inputs(2), Float32Array.of(0, 1e9), 2, 'softmax-xent')).toThrow(/class label 1e\+09 is not in 0..2/);
    expect(() => engine.gradients(inputs(2), Float32Array.of(NaN, 0), 2, 'softmax-xent')).toThrow(/class label nan is not in 0..2/);
    engine.release();
  });

  it('seeds and counters that are not whole numbers are refused, not cast', () => {
    const engine = new addon.Engine(plan());
    expect(() => engine.gradients(inputs(1), Float32Array.of(0), 1, 'softmax-xent', 1e300)).toThrow(/field 'dropoutSeed' must be a whole number/);
    const args = { inputs: inputs(2), targets: Float32Array.of(0, 1), count: 2, batches: Int32Array.of(0, 1), batchSize: 2, optimizer: 'sgd' as const, learningRate: 0.1, beta1: 0, beta2: 0.999, epsilon: 1e-8, reset: true, loss: 'softmax-xent' as const };
    expect(() => engine.adapt({ ...args, dropoutSeed: -1 })).toThrow(/field 'dropoutSeed'/);
    expect(() => engine.adapt({ ...args, count: NaN })).toThrow(/field 'count' must be a whole number/);
    engine.release();
  });

  it('an engine without parameters takes a meta-update and optimizer state of no values', () => {
    const engine = new addon.Engine({ ops: [{ kind: 'relu', inSize: 4, outSize: 4 }], inputSize: 4, outputSize: 4, paramSize: 0 });
    expect(engine.reptileUpdate([new Float32Array(0)], 0.5)).toBeUndefined();
    engine.setParams(new Float32Array(0));
    engine.setOptimizerState('adam', 1, new Float32Array(0), new Float32Array(0));
    expect(engine.getOptimizerState()).toMatchObject({ kind: 'adam', step: 1 });
    engine.release();
  });
});
