import { CheckpointError } from '../_utils/errors.js';
import type { AsyncProgress, Executor } from '../exec/executor.js';

/**
 * Where an asynchronous run resumes: the progress its checkpoint saved, or (a checkpoint of the
 * synchronous mode, or none) every task of the first `iteration` meta-iterations applied. A
 * synchronous run refuses a checkpoint that still owes tasks, which it would skip.
 */
export function asyncResumePoint(executor: Executor, saved: unknown, iteration: number, metaBatch: number, label: string): AsyncProgress | undefined {
  const progress = saved === undefined ? undefined : readProgress(saved, label);
  const settled = progress === undefined || (progress.owed.length === 0 && progress.next === iteration * metaBatch);
  if (executor.sync !== 'async') {
    if (!settled) throw new CheckpointError(`${label} was written by an asynchronous run that still owes ${progress!.owed.length} task(s): resume it with \`sync\` 'async'`);
    return undefined;
  }
  return progress ?? { next: iteration * metaBatch, owed: [] };
}

function readProgress(saved: unknown, label: string): AsyncProgress {
  const p = saved as Partial<AsyncProgress> | null;
  const ok = p !== null && typeof p === 'object' && Number.isSafeInteger(p.next) && p.next! >= 0 && Array.isArray(p.owed) && p.owed.length <= 1_000_000 && p.owed.every((t) => Number.isSafeInteger(t) && t >= 0 && t < p.next!);
  if (!ok) throw new CheckpointError(`${label} holds an unreadable asynchronous progress record: delete the checkpoint to start afresh, or restore it from a backup`);
  return { next: p.next!, owed: [...p.owed!] };
}
