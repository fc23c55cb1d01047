import { InvalidOptionsError } from '../../_utils/errors.js';
import { definedOnly } from '../../_utils/objects.js';
import type { ConvInit } from '../../learners/models.js';
import type { InnerOptions } from '../../learners/learner.js';
import type { LabeledDataset } from '../../tasks/labeled.js';
import type { MetaConfig } from '../../train/config.js';
import { FEW_SHOT_DEFAULTS, getPreset, type FewShotDefaults, type FewShotLoss } from '../presets.js';
import type { FewShotModelKind } from './model.js';

/** The few-shot protocol's settings (supervised-reptile's flag names). */
export interface FewShotSettings {
  /** N: classes per task. */
  classes: number;
  /** K: support examples per class at evaluation. */
  shots: number;
  /** Support examples per class in training tasks (0 or undefined: same as `shots`). */
  trainShots?: number;
  /** Inner minibatch size when adapting to a test task. */
  evalBatch: number;
  /** Inner steps when adapting to a test task. */
  evalIters: number;
  /** Classify all queries of a test task in one batch. */
  transductive: boolean;
  /** Kernel initialisation of the network (default `fan-in`). */
  init?: ConvInit;
  /**
   * How the inner loop combines a minibatch's per-example losses (default `sum`, as
   * supervised-reptile; checkpoints that do not record it were trained identically under both).
   */
  loss?: FewShotLoss;
}

/** What {@link resolveFewShotRun} returns: everything a few-shot run needs, every value decided. */
export interface FewShotRun {
  /** The preset's dataset, when a preset was named. */
  dataset?: 'omniglot' | 'miniimagenet';
  /** The preset's network, when it names one. */
  model?: FewShotModelKind;
  settings: Required<FewShotSettings>;
  config: Partial<MetaConfig> & { seed: number };
  evalSamples: number;
  evalInterval: number;
}

/**
 * Composes a few-shot run's settings in one order: supervised-reptile's defaults
 * (`FEW_SHOT_DEFAULTS` and `DEFAULT_META_CONFIG`), then the named preset, then the caller's
 * overrides (e.g. the flags given on the command line). `trainShots` 0 becomes `shots`.
 */
export function resolveFewShotRun(options: { preset?: string; meta?: Partial<MetaConfig>; fewShot?: Partial<FewShotDefaults>; seed: number }): FewShotRun {
  const preset = options.preset === undefined ? undefined : getPreset(options.preset);
  if (preset !== undefined && preset.task !== 'few-shot') {
    throw new InvalidOptionsError(`preset '${preset.name}' is not a few-shot setting: train it as a sine run, or name a few-shot \`preset\``, { option: 'preset' });
  }
  const f: FewShotDefaults = { ...FEW_SHOT_DEFAULTS, ...(preset?.fewShot ?? {}), ...definedOnly(options.fewShot ?? {}) };
  const meta: Partial<MetaConfig> = { ...(preset?.meta ?? {}), ...definedOnly(options.meta ?? {}) };
  return {
    ...(preset !== undefined ? { dataset: preset.dataset } : {}),
    ...(preset?.model !== undefined ? { model: preset.model } : {}),
    settings: { classes: f.classes, shots: f.shots, trainShots: f.trainShots > 0 ? f.trainShots : f.shots, evalBatch: f.evalBatch, evalIters: f.evalIters, transductive: f.transductive, init: f.init, loss: f.loss },
    config: { ...meta, seed: options.seed },
    evalSamples: f.evalSamples,
    evalInterval: f.evalInterval,
  };
}

/** Checks that every task the settings ask for can be drawn from `dataset`; one clear line if not. */
export function checkTaskFits(dataset: LabeledDataset, what: string, classes: number, perClass: number, perClassOption: string): void {
  if (dataset.numClasses < classes) {
    throw new InvalidOptionsError(`the ${what} has ${dataset.numClasses} classes, fewer than \`classes\` ${classes}: lower \`classes\` or add classes to the dataset`, { option: 'classes' });
  }
  for (let c = 0; c < dataset.numClasses; c++) {
    const n = dataset.countOf(c);
    if (n < perClass) {
      throw new InvalidOptionsError(`class '${dataset.className(c)}' of the ${what} has ${n} examples, fewer than the ${perClass} a task needs (${perClassOption}): lower it or remove that class`, { option: perClassOption.replace(/`/g, '').split(' ')[0]! });
    }
  }
}

/**
 * Adapting to a test task: `evalIters` Adam (or SGD) steps of `evalBatch` at the training learning
 * rate, the losses combined as `settings.loss` says (the sum: divided by the training `innerBatch`,
 * as every training minibatch is).
 */
export function evalInnerOptions(settings: FewShotSettings, config: Pick<MetaConfig, 'optimizer' | 'learningRate' | 'beta1' | 'beta2' | 'innerBatch'>): InnerOptions {
  const sum = (settings.loss ?? FEW_SHOT_DEFAULTS.loss) === 'sum';
  return { optimizer: config.optimizer, learningRate: config.learningRate, innerIters: settings.evalIters, innerBatch: settings.evalBatch, beta1: config.beta1, beta2: config.beta2, ...(sum ? { lossDivisor: config.innerBatch } : {}) };
}

/**
 * Where a split of a few-shot dataset came from, as plain data for `FewShotOptions.origin`: the
 * dataset's name and directory, the split and its seed, and the data's fingerprint.
 */
export function dataOrigin(describe: Record<string, unknown>, split: 'train' | 'test' | 'val', seed: number): Record<string, unknown> {
  return {
    dataset: describe['dataset'],
    dataDir: describe['dataDir'],
    split,
    splitSeed: typeof describe['splitSeed'] === 'number' ? describe['splitSeed'] : seed,
    ...(describe['classSplit'] !== undefined ? { classSplit: describe['classSplit'] } : {}),
    fingerprint: describe['fingerprint'],
  };
}
