import { checkOptionsObject, describeValue } from '../_utils/checks.js';
import { InvalidOptionsError } from '../_utils/errors.js';
import type { InnerOptions, InnerStatePolicy } from '../learners/learner.js';

/**
 * The settings of a meta-training run, under the paper's and supervised-reptile's names.
 * ε is annealed linearly from `metaStep` to `metaStepFinal` over `metaIters` iterations.
 */
export interface MetaConfig {
  metaStep: number;
  metaStepFinal: number;
  metaBatch: number;
  metaIters: number;
  innerIters: number;
  innerBatch: number;
  learningRate: number;
  optimizer: 'sgd' | 'adam';
  beta1: number;
  beta2: number;
  /** First-order MAML instead of Reptile (paper §2). */
  foml: boolean;
  innerState: InnerStatePolicy;
  seed: number;
}

/** supervised-reptile's command-line defaults (see REFERENCE.md). */
export const DEFAULT_META_CONFIG: MetaConfig = {
  metaStep: 0.1,
  metaStepFinal: 0.1,
  metaBatch: 1,
  metaIters: 400_000,
  innerIters: 20,
  innerBatch: 5,
  learningRate: 1e-3,
  optimizer: 'adam',
  beta1: 0,
  beta2: 0.999,
  foml: false,
  innerState: 'carry',
  seed: 0,
};

/**
 * Fills in defaults and checks every setting; a bad value (out of range, of the wrong type, or a
 * name that is not a setting) is one clear `InvalidOptionsError` naming it.
 */
export function resolveMetaConfig(partial: Partial<MetaConfig>): MetaConfig {
  checkOptionsObject(partial, 'the meta-training `config`', '{ metaIters: 1000, metaStep: 0.1 }');
  const unknown = Object.keys(partial).find((k) => !(k in DEFAULT_META_CONFIG));
  if (unknown !== undefined) {
    throw new InvalidOptionsError(`unknown meta-training setting '${unknown}': use ${Object.keys(DEFAULT_META_CONFIG).join(', ')}`, { option: unknown });
  }
  const c: MetaConfig = { ...DEFAULT_META_CONFIG, ...definedOnly(partial) };
  const bad = (option: string, text: string): never => {
    throw new InvalidOptionsError(`\`${option}\` ${text}`, { option });
  };
  const positiveInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) bad(name, `must be a whole number ≥ 1, got ${describeValue(v)}`);
  };
  positiveInt('metaIters', c.metaIters);
  positiveInt('metaBatch', c.metaBatch);
  positiveInt('innerIters', c.innerIters);
  positiveInt('innerBatch', c.innerBatch);
  for (const [name, v] of [['metaStep', c.metaStep], ['metaStepFinal', c.metaStepFinal]] as const) {
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) bad(name, `(ε) must be in [0, 1], got ${describeValue(v)}: the meta step interpolates between φ and the adapted weights`);
  }
  if (typeof c.learningRate !== 'number' || !(c.learningRate > 0) || !Number.isFinite(c.learningRate)) bad('learningRate', `must be a positive number, got ${describeValue(c.learningRate)}`);
  if (c.optimizer !== 'sgd' && c.optimizer !== 'adam') bad('optimizer', `must be 'sgd' or 'adam', got ${describeValue(c.optimizer)}`);
  if (typeof c.beta1 !== 'number' || !(c.beta1 >= 0 && c.beta1 < 1)) bad('beta1', `must be in [0, 1), got ${describeValue(c.beta1)}`);
  if (typeof c.beta2 !== 'number' || !(c.beta2 >= 0 && c.beta2 < 1)) bad('beta2', `must be in [0, 1), got ${describeValue(c.beta2)}`);
  if (typeof c.foml !== 'boolean') bad('foml', `must be true or false, got ${describeValue(c.foml)}`);
  if (c.innerState !== 'carry' && c.innerState !== 'shared' && c.innerState !== 'reset') bad('innerState', `must be 'carry', 'shared' or 'reset', got ${describeValue(c.innerState)}`);
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff) bad('seed', `must be a whole number in [0, 4294967295], got ${describeValue(c.seed)}`);
  return c;
}

/** The inner-loop options implied by a config. */
export function innerOptionsOf(c: MetaConfig): InnerOptions {
  return { optimizer: c.optimizer, learningRate: c.learningRate, innerIters: c.innerIters, innerBatch: c.innerBatch, beta1: c.beta1, beta2: c.beta2 };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
