import { InvalidOptionsError } from '../_utils/errors.js';

/**
 * A seeded, splittable pseudo-random generator (xoshiro128**, seeded through SplitMix32).
 *
 * `Rng.derive(seed, ...keys)` gives a generator that is a pure function of the seed and the
 * integer keys, so the task for (seed, meta-iteration, task index) never depends on which
 * executor, thread or machine samples it, nor on what was sampled before (docs/architecture.md, invariant 1).
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  // The state words are kept as signed 32-bit integers (the same bits): V8 holds those in place,
  // where unsigned ones past 2^31 would each be a boxed double, allocated at every draw.
  private constructor(state: readonly number[]) {
    this.s0 = state[0]! | 0;
    this.s1 = state[1]! | 0;
    this.s2 = state[2]! | 0;
    this.s3 = state[3]! | 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 0x9e3779b9 | 0;
  }

  /** A generator for `seed` alone. */
  static fromSeed(seed: number): Rng {
    return Rng.derive(seed);
  }

  /** A generator that is a pure function of `seed` and the integer `keys` (e.g. iteration, task index). */
  static derive(seed: number, ...keys: number[]): Rng {
    let h = mix32(0x243f6a88 ^ toUint32(seed, 'seed'));
    for (const k of keys) h = mix32(h ^ mix32(toUint32(k, 'key') + 0x9e3779b9));
    let x = h;
    const state: number[] = [];
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      state.push(mix32(x));
    }
    return new Rng(state);
  }

  /** Restores a generator from `getState()`. */
  static fromState(state: readonly number[]): Rng {
    if (!Array.isArray(state) || state.length !== 4 || !state.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
      throw new InvalidOptionsError('an Rng `state` is 4 whole numbers in [0, 2^32), as getState() returns them', { option: 'state' });
    }
    return new Rng(state);
  }

  /** The generator's four state words, to store and restore with `fromState`. */
  getState(): number[] {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  /** A child generator keyed by `keys`, drawn from this one's stream (advances this generator once). */
  split(...keys: number[]): Rng {
    return Rng.derive(this.nextUint32(), ...keys);
  }

  /** The next 32-bit unsigned integer of the xoshiro128** stream. */
  nextUint32(): number {
    const s1 = this.s1;
    const x = Math.imul(s1, 5);
    const result = Math.imul((x << 7) | (x >>> 25), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5;
    const lo = this.nextUint32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) throw new InvalidOptionsError(`Rng.int needs \`n\` to be a whole number in [1, 2^32], got ${n}`, { option: 'n' });
    const limit = Math.floor(2 ** 32 / n) * n;
    for (;;) {
      const r = this.nextUint32();
      if (r < limit) return r % n;
    }
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Shuffles `items` in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
    return items;
  }

  /** `k` distinct integers from [0, n), in random order. */
  sample(n: number, k: number): number[] {
    if (!Number.isInteger(n) || n < 0) throw new InvalidOptionsError(`Rng.sample needs \`n\` to be a whole number ≥ 0, got ${n}`, { option: 'n' });
    if (!Number.isInteger(k) || k < 0 || k > n) throw new InvalidOptionsError(`cannot sample ${k} distinct items from ${n}: \`k\` must be a whole number from 0 to ${n}`, { option: 'k' });
    const all = Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < k; i++) {
      const j = i + this.int(n - i);
      const tmp = all[i]!;
      all[i] = all[j]!;
      all[j] = tmp;
    }
    return all.slice(0, k);
  }
}

function mix32(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

function toUint32(x: number, what: string): number {
  if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new InvalidOptionsError(`\`${what}\` must be a whole number in [0, 2^32), got ${x}`, { option: what });
  return x >>> 0;
}
