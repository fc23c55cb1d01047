import { UsageError } from '../_utils/errors.js';
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

/** Fills in defaults and checks ranges; a bad value is one clear `UsageError`. */
export function resolveMetaConfig(partial: Partial<MetaConfig>): MetaConfig {
  const c: MetaConfig = { ...DEFAULT_META_CONFIG, ...definedOnly(partial) };
  const positiveInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`${name} must be a positive integer, got ${v}: pass a whole number ≥ 1`);
  };
  positiveInt('metaIters', c.metaIters);
  positiveInt('metaBatch', c.metaBatch);
  positiveInt('innerIters', c.innerIters);
  positiveInt('innerBatch', c.innerBatch);
  for (const [name, v] of [['metaStep', c.metaStep], ['metaStepFinal', c.metaStepFinal]] as const) {
    if (!(v >= 0 && v <= 1)) throw new UsageError(`${name} (ε) must be in [0, 1], got ${v}: the meta step interpolates between φ and the adapted weights`);
  }
  if (!(c.learningRate > 0) || !Number.isFinite(c.learningRate)) throw new UsageError(`learningRate must be a positive number, got ${c.learningRate}`);
  if (c.optimizer !== 'sgd' && c.optimizer !== 'adam') throw new UsageError(`optimizer must be sgd or adam, got '${String(c.optimizer)}'`);
  if (!(c.beta1 >= 0 && c.beta1 < 1)) throw new UsageError(`beta1 must be in [0, 1), got ${c.beta1}`);
  if (!(c.beta2 >= 0 && c.beta2 < 1)) throw new UsageError(`beta2 must be in [0, 1), got ${c.beta2}`);
  if (c.innerState !== 'carry' && c.innerState !== 'shared' && c.innerState !== 'reset') throw new UsageError(`innerState must be carry, shared or reset, got '${String(c.innerState)}'`);
  if (!Number.isInteger(c.seed) || c.seed < 0 || c.seed > 0xffffffff) throw new UsageError(`seed must be an integer in [0, 4294967295], got ${c.seed}`);
  return c;
}

/** The inner-loop options implied by a config. */
export function innerOptionsOf(c: MetaConfig): InnerOptions {
  return { optimizer: c.optimizer, learningRate: c.learningRate, innerIters: c.innerIters, innerBatch: c.innerBatch, beta1: c.beta1, beta2: c.beta2 };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
