import type { Rng } from '../core/rng.js';
import type { Examples, Task, TaskSource } from './task.js';
import { checkInteger, checkOptionsObject, describeValue } from '../_utils/checks.js';
import { InvalidOptionsError } from '../_utils/errors.js';

/** Options of the sine-wave regression problem; defaults are the paper's (§5.1). */
export interface SineOptions {
  /** Training (support) points per task, drawn uniformly from `xRange`. Default 10. */
  shots?: number;
  /** Points of the evenly spaced evaluation grid over `xRange`. Default 50. */
  gridPoints?: number;
  amplitudeRange?: readonly [number, number];
  phaseRange?: readonly [number, number];
  xRange?: readonly [number, number];
}

/** One sine task's parameters, y = amplitude · sin(x + phase). */
export interface SineWave {
  readonly amplitude: number;
  readonly phase: number;
}

/** A sine task together with the wave it was drawn from (for plots and checks). */
export interface SineTask extends Task {
  readonly wave: SineWave;
}

/**
 * The paper's toy regression problem (§5.1): y = a·sin(x + b) with a ~ U[0.1, 5], b ~ U[0, 2π];
 * K support points with x ~ U[−5, 5]; the query set is an evenly spaced grid over [−5, 5].
 */
export class SineTaskSource implements TaskSource {
  readonly kind = 'regression' as const;
  readonly inputShape = [1] as const;
  readonly outputSize = 1;
  readonly shots: number;
  readonly gridPoints: number;
  readonly amplitudeRange: readonly [number, number];
  readonly phaseRange: readonly [number, number];
  readonly xRange: readonly [number, number];

  constructor(options: SineOptions = {}) {
    checkOptionsObject(options, 'SineTaskSource', '{ shots: 10 }');
    this.shots = options.shots ?? 10;
    this.gridPoints = options.gridPoints ?? 50;
    this.amplitudeRange = options.amplitudeRange ?? [0.1, 5.0];
    this.phaseRange = options.phaseRange ?? [0, 2 * Math.PI];
    this.xRange = options.xRange ?? [-5, 5];
    checkInteger('shots', this.shots, 1);
    checkInteger('gridPoints', this.gridPoints, 2);
    for (const [option, range] of [['amplitudeRange', this.amplitudeRange], ['phaseRange', this.phaseRange], ['xRange', this.xRange]] as const) {
      if (!Array.isArray(range) || range.length !== 2 || !range.every((v) => Number.isFinite(v)) || !(range[0] <= range[1])) {
        throw new InvalidOptionsError(`\`${option}\` must be two finite numbers [low, high] with low ≤ high, got ${Array.isArray(range) ? `[${range.join(', ')}]` : describeValue(range)}`, { option });
      }
    }
  }

  sample(rng: Rng): SineTask {
    const wave: SineWave = { amplitude: rng.uniform(...this.amplitudeRange), phase: rng.uniform(...this.phaseRange) };
    const xs = Array.from({ length: this.shots }, () => rng.uniform(...this.xRange));
    return this.taskFor(wave, xs);
  }

  /** The task for a given wave and support abscissas (query on the grid). */
  taskFor(wave: SineWave, supportX: readonly number[]): SineTask {
    const [lo, hi] = this.xRange;
    const grid = Array.from({ length: this.gridPoints }, (_, i) => lo + ((hi - lo) * i) / (this.gridPoints - 1));
    return { kind: 'regression', wave, support: sineExamples(wave, supportX), query: sineExamples(wave, grid) };
  }

  describe(): Record<string, unknown> {
    return {
      task: 'sine',
      shots: this.shots,
      gridPoints: this.gridPoints,
      amplitudeRange: this.amplitudeRange,
      phaseRange: this.phaseRange,
      xRange: this.xRange,
    };
  }
}

function sineExamples(wave: SineWave, xs: readonly number[]): Examples {
  const inputs = Float32Array.from(xs);
  const targets = Float32Array.from(xs, (x) => wave.amplitude * Math.sin(x + wave.phase));
  return { count: xs.length, inputs, inputShape: [1], targets, targetShape: [1] };
}
