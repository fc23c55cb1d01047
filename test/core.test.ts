import { describe, expect, it } from 'vitest';
import {
  Params,
  Rng,
  checkParams,
  createLayout,
  fomamlUpdate,
  lerp,
  linearSchedule,
  mean,
  miniBatches,
  reptileSerialUpdate,
  reptileUpdate,
  sub,
} from '../src/core/index.js';

const layout2 = createLayout([{ name: 'w', shape: [2] }]);
const p2 = (a: number, b: number) => new Params(layout2, Float32Array.from([a, b]));

describe('Reptile meta-update', () => {
  it('matches a two-parameter step computed by hand', () => {
    // φ = (1, 2); adapted W1 = (3, 0), W2 = (5, 4); mean W = (4, 2);
    // ε = 0.5: φ + 0.5·((4, 2) − (1, 2)) = (2.5, 2).
    const next = reptileUpdate(p2(1, 2), [p2(3, 0), p2(5, 4)], 0.5);
    expect(Array.from(next.data)).toEqual([2.5, 2]);
  });

  it('leaves φ unchanged with ε = 0', () => {
    const phi = p2(0.1, -7.3);
    const next = reptileUpdate(phi, [p2(3, 0), p2(5, 4)], 0);
    expect(Array.from(next.data)).toEqual(Array.from(phi.data));
  });

  it('lands exactly on the mean of the adapted weights with ε = 1', () => {
    const adapted = [p2(0.3, 1.7), p2(-2.9, 4.1), p2(1.1, 0.2)];
    const next = reptileUpdate(p2(100, -100), adapted, 1);
    expect(Array.from(next.data)).toEqual(Array.from(mean(adapted).data));
    expect(next.data[0]).toBeCloseTo((0.3 - 2.9 + 1.1) / 3, 6);
  });

  it('serial update equals a batched update over one task', () => {
    const phi = p2(1, 1);
    expect(Array.from(reptileSerialUpdate(phi, p2(3, 5), 0.25).data)).toEqual([1.5, 2]);
  });

  it('FOMAML moves φ by ε times the mean last-step difference', () => {
    // last-step differences d1 = (−0.2, 0.4), d2 = (0.6, 0); mean (0.2, 0.2); ε = 0.5 → φ + (0.1, 0.1).
    const next = fomamlUpdate(p2(1, 2), [p2(-0.2, 0.4), p2(0.6, 0)], 0.5);
    expect(next.data[0]).toBeCloseTo(1.1, 6);
    expect(next.data[1]).toBeCloseTo(2.1, 6);
  });

  it('rejects an empty meta-batch and mismatched layouts', () => {
    expect(() => reptileUpdate(p2(0, 0), [], 0.5)).toThrow(/at least one/);
    const other = new Params(createLayout([{ name: 'w', shape: [3] }]));
    expect(() => lerp(p2(0, 0), other, 0.5)).toThrow(/layouts differ/);
  });
});

describe('Params', () => {
  it('has a layout hash that depends on shapes, not on tfjs-given names', () => {
    const a = createLayout([{ name: 'dense_Dense1/kernel', shape: [1, 64] }, { name: 'b', shape: [64] }]);
    const b = createLayout([{ name: 'dense_Dense7/kernel', shape: [1, 64] }, { name: 'c', shape: [64] }]);
    const c = createLayout([{ name: 'k', shape: [64, 1] }, { name: 'b', shape: [64] }]);
    expect(a.hash).toBe(b.hash);
    expect(a.hash).not.toBe(c.hash);
    expect(a.size).toBe(128);
  });

  it('checkParams names non-finite values and wrong layouts', () => {
    const p = p2(1, Number.NaN);
    expect(checkParams(p, layout2)).toMatch(/value 1 is NaN/);
    expect(checkParams(p2(1, 2), createLayout([{ name: 'other-name', shape: [2] }]))).toBeUndefined();
    expect(checkParams(p2(1, 2), createLayout([{ name: 'w', shape: [3] }]))).toMatch(/does not match/);
  });

  it('sub and piece work on flat vectors', () => {
    const l = createLayout([{ name: 'a', shape: [2] }, { name: 'b', shape: [1] }]);
    const x = new Params(l, Float32Array.from([1, 2, 3]));
    expect(Array.from(x.piece(1))).toEqual([3]);
    expect(Array.from(sub(x, x).data)).toEqual([0, 0, 0]);
  });
});

describe('linear schedule', () => {
  it('anneals ε from initial to final as supervised-reptile does', () => {
    const eps = linearSchedule(1, 0, 100);
    expect(eps(0)).toBe(1);
    expect(eps(50)).toBeCloseTo(0.5, 12);
    expect(eps(99)).toBeCloseTo(0.01, 12);
    expect(linearSchedule(0.1, 0.1, 10)(7)).toBeCloseTo(0.1, 12);
  });
});

describe('Rng', () => {
  it('is a pure function of (seed, keys)', () => {
    const a = Rng.derive(7, 3, 1);
    const b = Rng.derive(7, 3, 1);
    const xs = Array.from({ length: 20 }, () => a.nextUint32());
    expect(Array.from({ length: 20 }, () => b.nextUint32())).toEqual(xs);
    const c = Rng.derive(7, 3, 2);
    expect(Array.from({ length: 20 }, () => c.nextUint32())).not.toEqual(xs);
    expect(Rng.derive(8, 3, 1).nextUint32()).not.toBe(xs[0]);
  });

  it('restores from its state', () => {
    const r = Rng.fromSeed(42);
    r.next();
    const copy = Rng.fromState(r.getState());
    expect(copy.next()).toBe(r.next());
  });

  it('draws uniform numbers in range with the right mean, integers without bias, distinct samples', () => {
    const r = Rng.fromSeed(1);
    let sum = 0;
    const counts = new Array(5).fill(0);
    for (let i = 0; i < 20000; i++) {
      const u = r.next();
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
      sum += u;
      counts[r.int(5)]++;
    }
    expect(sum / 20000).toBeCloseTo(0.5, 1);
    for (const c of counts) expect(Math.abs(c - 4000)).toBeLessThan(300);
    const s = r.sample(10, 10);
    expect([...s].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(() => r.sample(3, 4)).toThrow();
  });

  it('rejects keys that are not 32-bit unsigned integers', () => {
    expect(() => Rng.derive(-1)).toThrow(/seed/);
    expect(() => Rng.derive(0, 1.5)).toThrow(/key/);
  });
});

describe('miniBatches', () => {
  it('cycles through shuffled passes without replacement within a pass', () => {
    const batches = miniBatches(10, 4, 5, Rng.fromSeed(3));
    expect(batches).toHaveLength(5);
    const flat = batches.flat();
    expect(flat).toHaveLength(20);
    // The first 10 drawn indices are one full pass, the next 10 the second.
    expect([...flat.slice(0, 10)].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect([...flat.slice(10, 20)].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('is deterministic for the same generator', () => {
    expect(miniBatches(7, 3, 6, Rng.derive(1, 2))).toEqual(miniBatches(7, 3, 6, Rng.derive(1, 2)));
  });
});
