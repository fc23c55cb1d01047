/**
 * The linear annealing of the meta step size used by the paper (§5, and supervised-reptile):
 * ε(i) = frac·final + (1 − frac)·initial with frac = i / total.
 */
export function linearSchedule(initial: number, final: number, total: number): (iteration: number) => number {
  if (!(total > 0)) throw new Error(`schedule length must be positive, got ${total}`);
  return (iteration: number) => {
    const frac = iteration / total;
    return frac * final + (1 - frac) * initial;
  };
}
