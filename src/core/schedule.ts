import { InvalidOptionsError } from '../_utils/errors.js';

/**
 * The linear annealing of the meta step size used by the paper (§5, and supervised-reptile):
 * ε(i) = frac·final + (1 − frac)·initial with frac = i / total.
 */
export function linearSchedule(initial: number, final: number, total: number): (iteration: number) => number {
  if (!(total > 0)) throw new InvalidOptionsError(`the schedule's length \`total\` must be positive, got ${total}`, { option: 'total' });
  return (iteration: number) => {
    const frac = iteration / total;
    return frac * final + (1 - frac) * initial;
  };
}
