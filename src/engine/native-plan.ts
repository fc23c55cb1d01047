// The native engine's plan and engine interface: the types the addon and its WebAssembly build
// share, kept apart from the addon's loader so that code reaching a page imports no Node built-in.

/** An instruction set of the native engine's kernels; `auto` picks the widest this CPU runs. */
export type NativeIsa = 'auto' | 'avx512' | 'avx2' | 'generic';

/** One step of a compiled plan (NHWC, per-example sizes); built by `learners/compile-model`. */
export type NativeOp = (
  /** `dilationH`, `dilationW` (conv only, default 1): the window's taps are that many rows and columns apart. */
  | ({ kind: 'conv' | 'maxpool' | 'avgpool' | 'pad'; inSize: number; outSize: number; w?: number; b?: number; frozen?: boolean; dilationH?: number; dilationW?: number } & NativeWindow)
  /** A depthwise convolution: `depthMultiplier` filters per input channel (cout = cin · depthMultiplier). */
  | ({ kind: 'depthwise'; inSize: number; outSize: number; w: number; b?: number; depthMultiplier: number; frozen?: boolean } & NativeWindow)
  | { kind: 'dense'; inSize: number; outSize: number; w: number; b?: number; frozen?: boolean }
  | {
      kind: 'batchnorm';
      inSize: number;
      outSize: number;
      channels: number;
      epsilon: number;
      momentum: number;
      gamma?: number;
      beta?: number;
      frozen?: boolean;
      movingMean: Float32Array;
      movingVariance: Float32Array;
    }
  | { kind: 'relu' | 'tanh'; inSize: number; outSize: number }
  /** Layer normalisation over the last axis (`channels` values), with optional γ and β. */
  | { kind: 'layernorm'; inSize: number; outSize: number; channels: number; epsilon: number; gamma?: number; beta?: number; frozen?: boolean }
  /** An elementwise activation; `alpha`: ELU's and LeakyReLU's slope, a clipped ReLU's ceiling. */
  | { kind: 'act'; act: NativeActivation; alpha?: number; inSize: number; outSize: number }
  /** Softmax over the last axis (`channels` values), fused with a cross-entropy loss when it is the last op. */
  | { kind: 'softmax'; inSize: number; outSize: number; channels: number }
  /** Inverted dropout at `rate` while adapting (masks from the task's seed, see `NativeAdaptArgs.dropoutSeed`); the identity when predicting. */
  | { kind: 'dropout'; inSize: number; outSize: number; rate: number }
  /** The elementwise sum or product of two or more inputs of one size (`inputs` names them). */
  | { kind: 'add' | 'multiply'; inSize: number; outSize: number }
  /** Two or more inputs joined along the last axis; `channels`: the output's last axis. */
  | { kind: 'concat'; inSize: number; outSize: number; channels: number }
) & {
  /**
   * The ops whose outputs this op reads, in order (−1: the plan's input). Absent: the op just
   * before it (the input for the first). Ops are in topological order: each reads only earlier
   * ops, and the plan's output is the last op's.
   */
  inputs?: number[];
};

/** The elementwise activations of an `act` op (tfjs-layers' definitions; `clipRelu` is relu6 and ReLU's maxValue, `geluTanh` is gelu_new). */
export type NativeActivation = 'sigmoid' | 'elu' | 'selu' | 'clipRelu' | 'softplus' | 'softsign' | 'swish' | 'leakyRelu' | 'hardSigmoid' | 'gelu' | 'geluTanh' | 'mish';

/** Geometry of a convolution or pooling window; padT/padL follow TensorFlow's 'same' rule. */
export interface NativeWindow {
  inH: number;
  inW: number;
  cin: number;
  outH: number;
  outW: number;
  cout: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  padT: number;
  padL: number;
}

/** The plan handed to the addon: ops, sizes and the flat parameter count. */
export interface NativePlan {
  ops: NativeOp[];
  inputSize: number;
  outputSize: number;
  paramSize: number;
  /**
   * The weights of frozen layers (`trainable = false`), which ops marked `frozen` index instead of
   * φ: held fixed, given to the engine once, never part of the parameters that travel.
   */
  frozen?: Float32Array;
  isa?: NativeIsa;
  /** 1 (default) or 2: large matrix products shared with a helper thread. */
  threads?: 1 | 2;
}

/**
 * The loss the addon computes: mean softmax cross-entropy over integer labels, mean binary
 * cross-entropy of sigmoid outputs against one 0/1 target per output, or mean squared error. The
 * two cross-entropies are computed from the logits: the input of a last softmax or sigmoid op
 * (fused with it), or else the output itself.
 */
export type NativeLoss = 'softmax-xent' | 'sigmoid-bce' | 'mse';

/** Arguments of one native inner loop: the whole support set and every minibatch's indices. */
export interface NativeAdaptArgs {
  inputs: Float32Array;
  targets: Float32Array;
  count: number;
  batches: Int32Array;
  batchSize: number;
  optimizer: 'sgd' | 'adam';
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  reset: boolean;
  /**
   * The seed of the inner loop's dropout masks (an integer in [0, 2³²)): each mask is a pure
   * function of it, the step, the layer and the row of the minibatch, whatever thread draws it.
   */
  dropoutSeed?: number;
  loss: NativeLoss;
  /** The minibatch's per-example losses are summed and divided by this (default: its size). */
  lossDivisor?: number;
  /** Batches to predict with the adapted weights after the inner loop (φ stays in place). */
  predict?: { inputs: Float32Array; count: number }[];
  /** Whether those predictions normalise with each batch's own statistics; default true. */
  batchStats?: boolean;
  /**
   * Arrays to write the results into instead of new ones (paramSize floats each, no two sharing
   * memory): an earlier result's, which the caller no longer reads. The result holds these arrays.
   */
  into?: { params: Float32Array; lastStep: Float32Array };
}

/** What one native inner loop returns: adapted weights, W − W⁽ᵏ⁻¹⁾, and the mean loss. */
export interface NativeAdaptResult {
  params: Float32Array;
  lastStep: Float32Array;
  loss: number;
  /** The outputs of `predict`'s batches, when it was given. */
  outputs?: Float32Array[];
}

/**
 * Arguments of `NativeEngine.fit`: Keras-style steps on φ in place. The examples are read where
 * they are (the arrays stay referenced until the call settles); `order` lists every batch's
 * examples one batch after the other and `sizes` each batch's size. With `period` > 0, every
 * `period`-th step (counting `counter` steps already taken) moves `slow` in place toward the fast
 * weights, slow ← (1 − alpha)·slow + alpha·fast, and the fast weights restart from it (Lookahead).
 */
export interface NativeFitArgs {
  inputs: Float32Array;
  targets: Float32Array;
  count: number;
  order: Int32Array;
  sizes: Int32Array;
  loss: NativeLoss;
  optimizer: 'sgd' | 'adam';
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  period: number;
  alpha: number;
  counter: number;
  slow?: Float32Array;
  /** Dropout masks are a function of this seed and the step each run of batches starts at (`firstStep` counts earlier steps). */
  dropoutSeed?: number;
  firstStep?: number;
  /** Out: each batch's mean loss. */
  losses: Float64Array;
  /** Out: each example's output in the training forward pass, in `order`. */
  outputs: Float32Array;
}

/** A compiled native model: parameters, optimizer state and reusable buffers live in C++. */
export interface NativeEngine {
  isa(): string;
  threads(): number;
  setParams(params: Float32Array): void;
  getParams(): Float32Array;
  /**
   * The Reptile meta-update on φ in place, with the bits of core's `reptileUpdate`; returns the
   * first value that is not finite (φ is then unchanged), or undefined.
   */
  reptileUpdate(adapted: Float32Array[], epsilon: number): { index: number; value: number } | undefined;
  setOptimizerState(kind: 'none' | 'sgd' | 'adam', step?: number, m?: Float32Array, v?: Float32Array): void;
  getOptimizerState(): { kind: 'sgd' | 'adam'; step: number; m?: Float32Array; v?: Float32Array } | undefined;
  getMovingStats(): { mean: Float32Array; variance: Float32Array }[];
  adapt(args: NativeAdaptArgs): Promise<NativeAdaptResult>;
  /** Several tasks one after the other in one worker job: the same results as separate calls. */
  adapt(args: NativeAdaptArgs[]): Promise<NativeAdaptResult[]>;
  /** Runs `args`' batches on φ in place; resolves to the fast steps taken since the last synchronisation. */
  fit(args: NativeFitArgs): Promise<number>;
  predict(inputs: Float32Array, count: number, batchStats: boolean): Float32Array;
  /** Frees the native buffers (and the helper thread) now; the engine cannot be used afterwards. */
  release(): void;
  gradients(
    inputs: Float32Array,
    targets: Float32Array,
    count: number,
    loss: NativeLoss,
    /** Applies dropout with the masks of this seed at step 0 (default: no dropout). */
    dropoutSeed?: number,
  ): { loss: number; grad: Float32Array; inputGrad: Float32Array; output: Float32Array };
}
