import type { OptimizerState } from '../learners/learner.js';

/**
 * The `shared` policy's next state: the element-wise mean of the tasks' final optimizer states,
 * summed in task-index order in float64, so the result does not depend on which task finished
 * first or where it ran. Every task took the same number of steps from the same state, so the
 * step count is theirs. Its plain Errors are invariants: every state it gets came from one learner's
 * tasks of one meta-batch (remote ones checked by checkResult on arrival).
 */
export function meanOptimizerState(states: readonly (OptimizerState | undefined)[]): OptimizerState | undefined {
  const present = states.filter((s): s is OptimizerState => s !== undefined);
  if (present.length === 0) return undefined;
  if (present.length !== states.length) throw new Error('meanOptimizerState: some tasks returned no optimizer state');
  const first = present[0]!;
  for (const s of present) {
    if (s.kind !== first.kind || s.step !== first.step) throw new Error(`meanOptimizerState: states differ in kind or step (${s.kind} ${s.step} vs ${first.kind} ${first.step})`);
  }
  const mean = (pick: (s: OptimizerState) => Float32Array | undefined): Float32Array | undefined => {
    const arrays = present.map(pick);
    if (arrays.some((a) => a === undefined)) return undefined;
    const n = arrays[0]!.length;
    const acc = new Float64Array(n);
    for (const a of arrays as Float32Array[]) {
      if (a.length !== n) throw new Error('meanOptimizerState: states of different sizes');
      addInto(acc, a);
    }
    return divided(acc, arrays.length);
  };
  const m = mean((s) => s.m);
  const v = mean((s) => s.v);
  return { kind: first.kind, step: first.step, ...(m ? { m } : {}), ...(v ? { v } : {}) };
}

function divided(acc: Float64Array, k: number): Float32Array {
  const out = new Float32Array(acc.length);
  for (let i = 0; i < acc.length; i++) out[i] = acc[i]! / k;
  return out;
}

// A monomorphic loop of its own, so that it is compiled once and fast.
function addInto(acc: Float64Array, a: Float32Array): void {
  for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! + a[i]!;
}
