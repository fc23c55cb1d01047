import { InvalidOptionsError } from './errors.js';

/**
 * Small checks of what a caller hands the library's public functions, each failing with one
 * {@link InvalidOptionsError} line that names the option (in backticks, so that the CLI can name
 * its flag instead) and what it expected. JavaScript callers get them too: a missing option, NaN, a
 * string where a number belongs.
 */

/** A value as a message shows it: strings quoted, numbers as they are, objects by kind. */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' || v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'function') return 'a function';
  return typeof v === 'object' ? 'an object' : typeof v;
}

/** Throws unless `options` is a plain options object; `example` shows one, e.g. `{ model }`. */
export function checkOptionsObject(options: unknown, fn: string, example: string): asserts options is object {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidOptionsError(`${fn} takes an options object such as ${example}, got ${describeValue(options)}`);
  }
}

/** Throws unless `v` is a whole number ≥ `min` (and ≤ `max` when given). */
export function checkInteger(option: string, v: unknown, min: number, max?: number): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || (max !== undefined && v > max)) {
    const range = max === undefined ? `≥ ${min}` : `from ${min} to ${max}`;
    throw new InvalidOptionsError(`\`${option}\` must be a whole number ${range}, got ${describeValue(v)}`, { option });
  }
}

/** Throws unless `v` is a finite number > 0. */
export function checkPositive(option: string, v: unknown): asserts v is number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new InvalidOptionsError(`\`${option}\` must be a positive finite number, got ${describeValue(v)}`, { option });
  }
}

/** Throws unless `v` is one of `choices`. */
export function checkChoice<T extends string>(option: string, v: unknown, choices: readonly T[]): asserts v is T {
  if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
    throw new InvalidOptionsError(`\`${option}\` must be ${choices.map((c) => `'${c}'`).join(', ').replace(/, ([^,]*)$/, ' or $1')}, got ${describeValue(v)}`, { option });
  }
}

/** Throws unless `v` is an object with every method in `methods`; `what` says what it should be. */
export function checkHasMethods(option: string, v: unknown, methods: readonly string[], what: string): void {
  const missing = v !== null && typeof v === 'object' ? methods.find((m) => typeof (v as Record<string, unknown>)[m] !== 'function') : methods[0];
  if (missing !== undefined) {
    const got = v !== null && typeof v === 'object' ? `an object without ${missing}()` : describeValue(v);
    throw new InvalidOptionsError(`\`${option}\` must be ${what}, got ${got}`, { option });
  }
}
