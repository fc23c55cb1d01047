import type { AdaptResult } from '../learners/learner.js';
import { taskStreams, type Executor, type MetaBatchRequest } from './executor.js';

/**
 * Runs the meta-batch's adaptations one after the other in this thread, in task-index order —
 * the order supervised-reptile uses, which matters when the inner optimizer's state carries over.
 */
export class InlineExecutor implements Executor {
  readonly name = 'inline';

  async runMetaBatch(request: MetaBatchRequest): Promise<AdaptResult[]> {
    const { learner, inner } = request;
    const items = Array.from({ length: request.metaBatch }, (_, t) => {
      const streams = taskStreams(request.seed, request.iteration, t);
      return { task: request.source.sample(streams.task), rng: streams.batches };
    });
    // A learner that can take the whole meta-batch in one call gets it that way (same results).
    if (learner.adaptTasks) return learner.adaptTasks(items, inner);
    const results: AdaptResult[] = [];
    for (const { task, rng } of items) results.push(await learner.adapt(task, inner, rng));
    return results;
  }

  async close(): Promise<void> {}
}
