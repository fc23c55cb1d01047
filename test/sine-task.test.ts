import { describe, expect, it } from 'vitest';
import { Rng } from '../src/core/rng.js';
import { SineTaskSource } from '../src/tasks/sine.js';

describe('SineTaskSource', () => {
  it('samples tasks with the paper\'s ranges and consistent targets', () => {
    const source = new SineTaskSource();
    for (let i = 0; i < 200; i++) {
      const task = source.sample(Rng.derive(5, i));
      const { amplitude, phase } = task.wave;
      expect(amplitude).toBeGreaterThanOrEqual(0.1);
      expect(amplitude).toBeLessThanOrEqual(5);
      expect(phase).toBeGreaterThanOrEqual(0);
      expect(phase).toBeLessThanOrEqual(2 * Math.PI);
      expect(task.support.count).toBe(10);
      expect(task.query.count).toBe(50);
      for (let k = 0; k < task.support.count; k++) {
        const x = task.support.inputs[k]!;
        expect(x).toBeGreaterThanOrEqual(-5);
        expect(x).toBeLessThanOrEqual(5);
        expect(task.support.targets[k]).toBeCloseTo(amplitude * Math.sin(x + phase), 5);
      }
      expect(task.query.inputs[0]).toBe(-5);
      expect(task.query.inputs[49]).toBe(5);
    }
  });

  it('gives the same task for the same generator', () => {
    const s = new SineTaskSource({ shots: 5 });
    const a = s.sample(Rng.derive(1, 2, 3));
    const b = s.sample(Rng.derive(1, 2, 3));
    expect(Array.from(a.support.inputs)).toEqual(Array.from(b.support.inputs));
    expect(a.wave).toEqual(b.wave);
  });
});
