import { Params, addScaled, assertSameLayout, mean } from './params.js';
import { InvalidOptionsError } from '../_utils/errors.js';

/**
 * The batched Reptile meta-update (paper, Algorithm 2): φ ← φ + ε·(mean_i W_i − φ), where W_i are
 * the weights adapted from φ on each task of the meta-batch. ε = 0 leaves φ unchanged, ε = 1
 * lands exactly on the mean of the adapted weights.
 */
export function reptileUpdate(phi: Params, adapted: readonly Params[], epsilon: number): Params {
  if (adapted.length === 0) throw new InvalidOptionsError('the Reptile update needs at least one adapted parameter vector in `adapted`', { option: 'adapted' });
  if (epsilon === 1) return mean(adapted);
  // lerp(phi, mean(adapted), epsilon) in one pass and one allocation (a meta-iteration's largest
  // garbage): the mean is rounded to float32 exactly where mean() would store it, so the bits match.
  for (const p of adapted) assertSameLayout(phi, p);
  const n = adapted.length;
  const x = phi.data;
  const out = new Float32Array(x.length);
  for (let i = 0; i < out.length; i++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += adapted[k]!.data[i]!;
    const m = Math.fround(s / n);
    out[i] = x[i]! + epsilon * (m - x[i]!);
  }
  return new Params(phi.layout, out);
}

/**
 * The serial Reptile update (paper, Algorithm 1) for a single task: φ ← φ + ε·(W − φ).
 * Applied task after task, each adaptation starting from the φ the previous one produced.
 */
export function reptileSerialUpdate(phi: Params, adapted: Params, epsilon: number): Params {
  return reptileUpdate(phi, [adapted], epsilon);
}

/**
 * The first-order MAML update as supervised-reptile implements it (paper §2): only the last
 * inner step counts, φ ← φ + ε·mean_i (W_i − W_i⁽ᵏ⁻¹⁾), where W_i⁽ᵏ⁻¹⁾ are the weights before the
 * last inner step. With SGD that last difference is −α·∇L(W_i⁽ᵏ⁻¹⁾), the FOMAML gradient.
 */
export function fomamlUpdate(phi: Params, lastStepDeltas: readonly Params[], epsilon: number): Params {
  if (lastStepDeltas.length === 0) throw new InvalidOptionsError('the FOMAML update needs at least one task\'s last step in `lastStepDeltas`', { option: 'lastStepDeltas' });
  return addScaled(phi, mean(lastStepDeltas), epsilon);
}
