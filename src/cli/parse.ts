import { InvalidArgumentError } from 'commander';
import type { MetaConfig } from '../train/config.js';

/**
 * Commander parser for a whole number ≥ `min` and, when `max` is given, ≤ `max`: a bound that
 * keeps a typo (`1e12`) from starting a run that never ends or a log that never stops growing.
 */
export function intAtLeast(min: number, max?: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min || (max !== undefined && n > max)) {
      throw new InvalidArgumentError(max === undefined ? `expected a whole number ≥ ${min}` : `expected a whole number from ${min} to ${max.toLocaleString('en-US')}`);
    }
    return n;
  };
}

/**
 * Upper bounds of the count flags, each far above any published setting (the paper's longest run:
 * 200,000 meta-iterations of 5 tasks, 100 inner steps, 10,000 test tasks).
 */
export const LIMITS = {
  staleness: 1_000_000,
  metaIters: 1_000_000,
  metaBatch: 10_000,
  innerIters: 100_000,
  innerBatch: 100_000,
  shots: 10_000,
  classes: 10_000,
  samples: 10_000_000,
  evalIters: 100_000,
  layerSize: 65_536,
  layers: 64,
  seed: 4_294_967_295,
  demoTasks: 1_000,
  epochs: 100_000,
  concurrency: 1_024,
  every: 10_000_000,
  port: 65_535,
  omniglotCharacters: 1_623,
} as const;

/** Commander parser for a number in [lo, hi] (or (lo, hi] with `openLow`). */
export function numberIn(lo: number, hi: number, openLow = false): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    const ok = value.trim() !== '' && Number.isFinite(n) && (openLow ? n > lo : n >= lo) && n <= hi;
    if (!ok) throw new InvalidArgumentError(`expected a number in ${openLow ? '(' : '['}${lo}, ${hi}]`);
    return n;
  };
}

/** Commander parser for a positive finite number. */
export function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

/** Commander parser for one of `choices`. */
export function oneOf<T extends string>(...choices: T[]): (value: string) => T {
  return (value: string) => {
    if (!(choices as string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${choices.join(', ')}`);
    return value as T;
  };
}

/** The meta-training settings among parsed flags, under `MetaConfig`'s names; flags not given are left out. */
export function pickDefined(flags: object): Partial<MetaConfig> {
  const keys = ['metaIters', 'metaStep', 'metaStepFinal', 'metaBatch', 'innerIters', 'innerBatch', 'learningRate', 'optimizer', 'foml', 'innerState'] as const;
  const f = flags as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of keys) if (f[k] !== undefined) out[k] = f[k];
  return out as Partial<MetaConfig>;
}
