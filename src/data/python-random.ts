import MersenneTwister from 'mersenne-twister';
import { InvalidOptionsError } from '../_utils/errors.js';

/**
 * `random.seed(seed); random.shuffle(items)` exactly as CPython 3 does it, on a copy: the
 * Mersenne Twister seeded by `init_by_array` with the seed's 32-bit words (least significant
 * first; `[0]` for 0), then Fisher–Yates from the end, each index drawn by `_randbelow` (the top
 * `k` bits of one 32-bit output, `k` the bit length of the bound, redrawn while out of range).
 * supervised-reptile splits the Omniglot characters with this, so the same seed gives the
 * paper's exact characters.
 */
export function pythonShuffle<T>(items: readonly T[], seed: number): T[] {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new InvalidOptionsError(`the split \`seed\` must be a whole number ≥ 0, got ${seed}`, { option: 'seed' });
  const key: number[] = [];
  for (let rest = seed; rest > 0; rest = Math.floor(rest / 2 ** 32)) key.push(rest % 2 ** 32);
  if (key.length === 0) key.push(0);
  const mt = new MersenneTwister();
  mt.init_by_array(key, key.length);
  const below = (n: number): number => {
    const k = 32 - Math.clz32(n);
    for (;;) {
      const r = mt.random_int() >>> (32 - k);
      if (r < n) return r;
    }
  };
  const out = items.slice();
  for (let i = out.length - 1; i >= 1; i--) {
    const j = below(i + 1);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}
