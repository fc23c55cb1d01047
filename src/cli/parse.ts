import { InvalidArgumentError } from 'commander';
import type { MetaConfig } from '../train/config.js';

/** Commander parser for a whole number ≥ `min`. */
export function intAtLeast(min: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number ≥ ${min}`);
    return n;
  };
}

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
