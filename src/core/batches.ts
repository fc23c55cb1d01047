import type { Rng } from './rng.js';
import { checkInteger } from '../_utils/checks.js';
import { InvalidOptionsError } from '../_utils/errors.js';

/**
 * Minibatch indices as supervised-reptile draws them: cycle through shuffled copies of the
 * `count` examples, cutting consecutive batches of `batchSize` (a batch may span two shuffles),
 * until `numBatches` batches have been produced. Without replacement within each pass.
 */
export function miniBatches(count: number, batchSize: number, numBatches: number, rng: Rng): number[][] {
  if (count === 0) throw new InvalidOptionsError('cannot draw minibatches from an empty set: the task has no training examples', { option: 'count' });
  checkInteger('count', count, 1);
  checkInteger('batchSize', batchSize, 1);
  checkInteger('numBatches', numBatches, 0);
  const order = Array.from({ length: count }, (_, i) => i);
  const batches: number[][] = [];
  let current: number[] = [];
  while (batches.length < numBatches) {
    rng.shuffle(order);
    for (const i of order) {
      current.push(i);
      if (current.length < batchSize) continue;
      batches.push(current);
      current = [];
      if (batches.length === numBatches) break;
    }
  }
  return batches;
}
