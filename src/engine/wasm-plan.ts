import type { NativeActivation, NativeLoss, NativeOp, NativePlan } from './native-plan.js';

// The WebAssembly engine's plan: the addon's plan (learners/compile-model) flattened to doubles,
// as native/src/wasm_api.cc's rp_create reads it, and checked the way the addon checks it.

/**
 * Fields per op: kind, sizes, parameter offsets, the window, each kind's own values, a
 * convolution's dilation and how many inputs the op names; then those inputs, and a batch
 * normalisation's moving statistics.
 */
const OP_FIELDS = 29;
const KINDS = ['conv', 'dense', 'batchnorm', 'relu', 'tanh', 'maxpool', 'act', 'softmax', 'dropout', 'avgpool', 'pad', 'depthwise', 'layernorm', 'add', 'multiply', 'concat'] as const;
const ACTS: readonly NativeActivation[] = ['sigmoid', 'elu', 'selu', 'clipRelu', 'softplus', 'softsign', 'swish', 'leakyRelu', 'hardSigmoid', 'gelu', 'geluTanh', 'mish'];
const WINDOW = ['inH', 'inW', 'cin', 'outH', 'outW', 'cout', 'kh', 'kw', 'sh', 'sw', 'padT', 'padL'] as const;

/** The engine's codes of the losses (LossKind) and optimizers (OptKind). */
export const LOSS_CODES: Record<NativeLoss, number> = { 'softmax-xent': 0, mse: 1, 'sigmoid-bce': 2 };
export const OPT_CODES = { none: 0, sgd: 1, adam: 2 } as const;

/** Throws the addon's message for a plan it would refuse. */
function fail(message: string): never {
  throw new Error(message);
}

function int(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) fail(`plan field '${what}' must be a number`);
  return value;
}

/** One op's record (and its inputs and a batch normalisation's moving statistics after it). */
function encodeOp(op: NativeOp, i: number, sizes: readonly number[], inputSize: number, frozenSize: number): number[] {
  const kind = KINDS.indexOf(op.kind);
  if (kind < 0) fail(`unknown op kind '${String((op as { kind: unknown }).kind)}'`);
  const r = new Array<number>(OP_FIELDS).fill(0);
  const o = op as Partial<Record<string, unknown>>;
  r[0] = kind;
  r[1] = int(op.inSize, 'inSize');
  r[2] = int(op.outSize, 'outSize');
  r[3] = typeof o.w === 'number' ? o.w : -1;
  r[4] = typeof o.b === 'number' ? o.b : -1;
  r[5] = o.frozen ? 1 : 0;
  r[18] = 1;
  r[22] = 1e-3;
  r[23] = 0.99;
  r[24] = typeof o.gamma === 'number' ? o.gamma : -1;
  r[25] = typeof o.beta === 'number' ? o.beta : -1;
  r[26] = typeof o.dilationH === 'number' ? o.dilationH : 1;
  r[27] = typeof o.dilationW === 'number' ? o.dilationW : 1;
  if (!(Number.isInteger(r[26]) && Number.isInteger(r[27]) && r[26]! >= 1 && r[27]! >= 1) || ((r[26] !== 1 || r[27] !== 1) && op.kind !== 'conv')) {
    fail('a dilation rate must be a positive integer, and only a convolution has one');
  }
  const extra: number[] = [];
  switch (op.kind) {
    case 'conv':
    case 'maxpool':
    case 'avgpool':
    case 'pad':
    case 'depthwise':
      WINDOW.forEach((k, i) => (r[6 + i] = int(op[k], k)));
      if (op.kind === 'depthwise') {
        r[18] = op.depthMultiplier;
        if (!(op.depthMultiplier >= 1) || op.cout !== op.cin * op.depthMultiplier) fail("a depthwise convolution's output channels must be its input channels times the depth multiplier");
      }
      break;
    case 'batchnorm':
      r[19] = int(op.channels, 'channels');
      r[22] = op.epsilon;
      r[23] = op.momentum;
      if (op.movingMean?.length !== op.channels || op.movingVariance?.length !== op.channels) fail('moving statistics do not match the channel count');
      extra.push(...op.movingMean, ...op.movingVariance);
      break;
    case 'act':
      r[20] = ACTS.indexOf(op.act);
      if (r[20] < 0) fail(`unknown activation '${String(op.act)}'`);
      r[21] = op.alpha ?? 0;
      break;
    case 'layernorm':
      r[19] = int(op.channels, 'channels');
      r[22] = op.epsilon;
      if (op.channels <= 0 || op.inSize % op.channels !== 0 || op.inSize !== op.outSize) fail("a layer normalisation's channels must divide its input size");
      break;
    case 'dropout':
      r[21] = op.rate;
      if (!(op.rate >= 0 && op.rate < 1) || op.inSize !== op.outSize) fail("a dropout's rate must be in [0, 1)");
      break;
    case 'softmax':
      r[19] = int(op.channels, 'channels');
      if (op.channels <= 0 || op.inSize % op.channels !== 0) fail("a softmax's channels must divide its input size");
      break;
    case 'add':
    case 'multiply':
    case 'concat':
      r[19] = op.kind === 'concat' ? int(op.channels, 'channels') : op.outSize;
      if (r[19]! <= 0 || op.outSize % r[19]! !== 0) fail("a concatenation's channels must divide its output size");
      r[1] = op.outSize;
      break;
    default:
      break;
  }
  // The ops read (−1: the plan's input); absent: the op before. Checked as the addon checks them.
  const inputs = o.inputs;
  if (inputs !== undefined && !Array.isArray(inputs)) fail("an op's inputs must be an array of op indices");
  for (const j of (inputs ?? []) as unknown[]) if (typeof j !== 'number' || !Number.isInteger(j) || j < -1 || j >= i) fail(`op ${i} reads an op that does not come before it`);
  const named = (inputs ?? []) as number[];
  const reads = named.length > 0 ? named : [i - 1];
  const merge = op.kind === 'add' || op.kind === 'multiply' || op.kind === 'concat';
  if (merge ? reads.length < 2 : reads.length !== 1) fail(`op ${i}${merge ? ' merges fewer than two inputs' : ' must read one input'}`);
  let total = 0;
  for (const j of reads) {
    const size = j < 0 ? inputSize : sizes[j]!;
    if (op.kind === 'concat' ? size % (op.outSize / r[19]!) !== 0 : size !== (merge ? op.outSize : op.inSize)) fail(`op ${i}'s input sizes do not match the ops it reads`);
    total += size;
  }
  if (op.kind === 'concat' && total !== op.outSize) fail(`op ${i} concatenates inputs that do not add up to its output size`);
  r[28] = named.length;
  extra.unshift(...named);
  if (r[5]) for (const at of [r[3]!, r[4]!, r[24]!, r[25]!]) if (at >= frozenSize) fail("a frozen op's weights lie outside plan.frozen");
  return r.concat(extra);
}

/** The plan as rp_create reads it: [ops, inputSize, outputSize, paramSize], then each op's record. */
export function encodePlan(plan: NativePlan): Float64Array {
  if (!Array.isArray(plan.ops)) fail('plan.ops must be an array');
  if (plan.ops.length === 0) fail('a plan needs at least one op');
  const frozenSize = plan.frozen?.length ?? 0;
  const values = [plan.ops.length, int(plan.inputSize, 'inputSize'), int(plan.outputSize, 'outputSize'), int(plan.paramSize, 'paramSize')];
  const sizes: number[] = [];
  plan.ops.forEach((op, i) => {
    values.push(...encodeOp(op, i, sizes, plan.inputSize, frozenSize));
    sizes.push(op.outSize);
  });
  if (sizes[sizes.length - 1] !== plan.outputSize) fail("the last op's output size is not plan.outputSize");
  return Float64Array.from(values);
}

/** The indices of the plan's batch normalisations, in order, with their channel counts. */
export function batchNormOps(plan: NativePlan): { index: number; channels: number }[] {
  return plan.ops.flatMap((op, index) => (op.kind === 'batchnorm' ? [{ index, channels: op.channels }] : []));
}
