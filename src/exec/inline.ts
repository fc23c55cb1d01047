import type { AdaptResult } from '../learners/learner.js';
import { taskStreams, type Executor, type MetaBatchRequest } from './executor.js';

/**
 * Runs the meta-batch's adaptations one after the other in this thread, in task-index order —
 * the order supervised-reptile uses, which matters when the inner optimizer's state carries over.
 */
export class InlineExecutor implements Executor {
  readonly name = 'inline';

  async runMetaBatch(request: MetaBatchRequest): Promise<AdaptResult[]> {
    const { learner } = request;
    if (learner.adaptTasks) {
      // The same tasks and minibatch streams, handed over in one call.
      const items = Array.from({ length: request.metaBatch }, (_, t) => {
        const streams = taskStreams(request.seed, request.iteration, t);
        return { task: request.source.sample(streams.task), rng: streams.batches };
      });
      return learner.adaptTasks(items, request.inner);
    }
    const results: AdaptResult[] = [];
    for (let t = 0; t < request.metaBatch; t++) {
      const streams = taskStreams(request.seed, request.iteration, t);
      const task = request.source.sample(streams.task);
      results.push(await learner.adapt(task, request.inner, streams.batches));
    }
    return results;
  }

  async close(): Promise<void> {}
}
