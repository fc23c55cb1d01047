import { InvalidOptionsError } from '../_utils/errors.js';
import { DEFAULT_CONV_INIT, type ConvInit } from '../learners/models.js';
import type { MetaConfig } from '../train/config.js';
import type { FewShotModelKind } from './few-shot/model.js';

/** The names of the paper's settings that `reptile train --preset` and the library accept. */
export const PRESET_NAMES = ['omniglot-5w1s', 'omniglot-5w5s', 'omniglot-20w1s', 'omniglot-20w5s', 'miniimagenet-5w1s', 'miniimagenet-5w5s', 'miniimagenet-resnet12-5w5s', 'sine'] as const;

/** One of {@link PRESET_NAMES}. */
export type PresetName = (typeof PRESET_NAMES)[number];

/**
 * The few-shot protocol's settings that are not meta-training settings (supervised-reptile's flag
 * names): the task shape, how a test task is adapted to, and the periodic accuracy report.
 */
export interface FewShotDefaults {
  /** N: classes per task. */
  classes: number;
  /** K: support examples per class at evaluation. */
  shots: number;
  /** Support examples per class in training tasks; 0 means the same as `shots`. */
  trainShots: number;
  /** Inner minibatch size when adapting to a test task. */
  evalBatch: number;
  /** Inner steps when adapting to a test task. */
  evalIters: number;
  /** Test tasks of the final evaluation. */
  evalSamples: number;
  /** Report one sampled train and test task's accuracy every this many meta-iterations. */
  evalInterval: number;
  /** Classify all queries of a test task in one batch. */
  transductive: boolean;
  /** Kernel initialisation of the paper's network. */
  init: ConvInit;
  /** How a minibatch's per-example losses combine (see `FewShotLoss`). */
  loss: FewShotLoss;
}

/**
 * How the inner loop combines a minibatch's per-example losses: `sum`, as supervised-reptile does
 * (TF1 minimises the vector of per-example cross-entropies, i.e. their sum), or `mean`. Adam
 * divides a constant factor out of its steps (all but ε's share), so training is the same under
 * both; evaluation is not, because Adam's moments carry over from training (minibatches of
 * `innerBatch`) into each test task (minibatches of `evalBatch`): with the sum, a test task's
 * steps are `evalBatch / innerBatch` the size the mean gives (half, in the paper's Omniglot
 * settings). `sum` is realised as the sum divided by the training `innerBatch`, a constant, so that
 * training stays bit for bit what the mean gives.
 */
export type FewShotLoss = 'sum' | 'mean';

/** The sine task family's settings that are not meta-training settings. */
export interface SineDefaults {
  /** Support points per task. */
  shots: number;
  /** Held-out tasks evaluated after training. */
  evalSamples: number;
  /** Adaptation steps on each held-out task (the authors' demo: 32). */
  evalIters: number;
  /** Hidden layer sizes of the MLP. */
  hidden: readonly number[];
}

/**
 * supervised-reptile's command-line defaults for the few-shot flags (`args.py`), used when neither
 * a preset nor a flag sets a value. Kernel initialisation is the one departure: fan-in
 * (PyTorch's default) trains faster early on than TensorFlow's glorot (docs/few-shot.md).
 */
export const FEW_SHOT_DEFAULTS: Readonly<FewShotDefaults> = {
  classes: 5,
  shots: 5,
  trainShots: 0,
  evalBatch: 5,
  evalIters: 50,
  evalSamples: 10_000,
  evalInterval: 10,
  transductive: false,
  init: DEFAULT_CONV_INIT,
  loss: 'sum',
};

/** The sine family's defaults when no flag sets them (the authors' sine demo). */
export const SINE_DEFAULTS: Readonly<SineDefaults> = { shots: 10, evalSamples: 100, evalIters: 32, hidden: [64, 64] };

/** A named setting of the paper: the meta-training configuration and the task family's settings. */
export type Preset =
  | { readonly name: PresetName; readonly task: 'few-shot'; readonly dataset: 'omniglot' | 'miniimagenet'; readonly description: string; readonly meta: Readonly<Partial<MetaConfig>>; readonly fewShot: Readonly<FewShotDefaults>; /** The network, when not the paper's for the dataset. */ readonly model?: FewShotModelKind }
  | { readonly name: 'sine'; readonly task: 'sine'; readonly description: string; readonly meta: Readonly<Partial<MetaConfig>>; readonly sine: Readonly<SineDefaults> };

// The paper's Omniglot and Mini-ImageNet settings (REFERENCE.md, from supervised-reptile's README).
// With --train-shots the 1-shot and 5-shot settings of a way-count train identically; they
// differ in how the test tasks are drawn. The Omniglot presets keep the authors' glorot
// initialisation so that a preset run is the paper's run.
const omniglot5 = { metaStep: 1, metaStepFinal: 0, metaBatch: 5, metaIters: 100_000, innerIters: 5, innerBatch: 10, learningRate: 0.001, optimizer: 'adam' } as const;
const omniglot20 = { metaStep: 1, metaStepFinal: 0, metaBatch: 5, metaIters: 200_000, innerIters: 10, innerBatch: 20, learningRate: 0.0005, optimizer: 'adam' } as const;
const mini = { metaStep: 1, metaStepFinal: 0, metaBatch: 5, metaIters: 100_000, innerIters: 8, innerBatch: 10, learningRate: 0.001, optimizer: 'adam' } as const;
const fewShot = (o: Partial<FewShotDefaults>): FewShotDefaults => ({ ...FEW_SHOT_DEFAULTS, ...o });

/** The paper's settings under their names: the one table both the library and `reptile train --preset` read. */
export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  'omniglot-5w1s': { name: 'omniglot-5w1s', task: 'few-shot', dataset: 'omniglot', description: 'Omniglot 1-shot 5-way (paper Table 1)', meta: omniglot5, fewShot: fewShot({ classes: 5, shots: 1, trainShots: 10, evalBatch: 5, evalIters: 50, init: 'glorot' }) },
  'omniglot-5w5s': { name: 'omniglot-5w5s', task: 'few-shot', dataset: 'omniglot', description: 'Omniglot 5-shot 5-way (paper Table 1)', meta: omniglot5, fewShot: fewShot({ classes: 5, shots: 5, trainShots: 10, evalBatch: 5, evalIters: 50, init: 'glorot' }) },
  'omniglot-20w1s': { name: 'omniglot-20w1s', task: 'few-shot', dataset: 'omniglot', description: 'Omniglot 1-shot 20-way (paper Table 1)', meta: omniglot20, fewShot: fewShot({ classes: 20, shots: 1, trainShots: 10, evalBatch: 10, evalIters: 50, init: 'glorot' }) },
  'omniglot-20w5s': { name: 'omniglot-20w5s', task: 'few-shot', dataset: 'omniglot', description: 'Omniglot 5-shot 20-way (paper Table 1)', meta: omniglot20, fewShot: fewShot({ classes: 20, shots: 5, trainShots: 10, evalBatch: 10, evalIters: 50, init: 'glorot' }) },
  'miniimagenet-5w1s': { name: 'miniimagenet-5w1s', task: 'few-shot', dataset: 'miniimagenet', description: 'Mini-ImageNet 1-shot 5-way (paper Table 1)', meta: mini, fewShot: fewShot({ classes: 5, shots: 1, trainShots: 15, evalBatch: 5, evalIters: 50, init: 'glorot' }) },
  'miniimagenet-5w5s': { name: 'miniimagenet-5w5s', task: 'few-shot', dataset: 'miniimagenet', description: 'Mini-ImageNet 5-shot 5-way (paper Table 1)', meta: mini, fewShot: fewShot({ classes: 5, shots: 5, trainShots: 15, evalBatch: 15, evalIters: 50, init: 'glorot' }) },
  'miniimagenet-resnet12-5w5s': { name: 'miniimagenet-resnet12-5w5s', task: 'few-shot', dataset: 'miniimagenet', model: 'resnet12', description: "Mini-ImageNet 5-shot 5-way on ResNet-12 (MetaOptNet's network, the paper's Reptile settings)", meta: mini, fewShot: fewShot({ classes: 5, shots: 5, trainShots: 15, evalBatch: 15, evalIters: 50 }) },
  sine: {
    name: 'sine',
    task: 'sine',
    description: "sine-wave regression, the authors' demo (SGD inner loop, ε 0.1 → 0 over 30,000 iterations)",
    meta: { metaIters: 30_000, metaStep: 0.1, metaStepFinal: 0, metaBatch: 1, innerIters: 5, innerBatch: 10, learningRate: 0.02, optimizer: 'sgd' },
    sine: SINE_DEFAULTS,
  },
};

/** The preset called `name`; an unknown name is one `InvalidOptionsError` listing the known ones. */
export function getPreset(name: string): Preset {
  if (!(PRESET_NAMES as readonly string[]).includes(name)) {
    throw new InvalidOptionsError(`unknown preset '${name}': \`preset\` must be one of ${PRESET_NAMES.join(', ')}`, { option: 'preset' });
  }
  return PRESETS[name as PresetName];
}
