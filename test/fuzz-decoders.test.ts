// Short fuzz runs of every decoder that reads bytes from outside (the long runs: `npm run fuzz`):
// random bytes and mutated valid files must end in a valid value or the library's typed error.
import { describe, it } from 'vitest';
import { fuzz, TARGETS } from './fuzz/targets.js';

// A few thousand cases each, from a fixed seed so that a failure reproduces; a few seconds each.
const RUNS: Record<string, number> = { checkpoint: 2000, idx: 3000, png: 2000, jpeg: 1000, zip: 800, job: 3000, result: 3000, spec: 3000 };

describe('fuzzed decoders', () => {
  for (const target of TARGETS) {
    it(`${target.name}: any input gives a valid value or a typed error`, () => {
      fuzz(target, { runs: RUNS[target.name] ?? 2000, seed: 20261206 });
    });
  }
});
