import type { AdaptResult } from '../learners/learner.js';
import { taskStreams, type Executor, type MetaBatchRequest } from './executor.js';
import { meanOptimizerState } from './shared-state.js';

/**
 * Runs the meta-batch's adaptations one after the other in this thread, in task-index order —
 * the order supervised-reptile uses, which matters when the inner optimizer's state carries over.
 */
export class InlineExecutor implements Executor {
  readonly name = 'inline';
  readonly parallel = false;

  async runMetaBatch(request: MetaBatchRequest): Promise<AdaptResult[]> {
    const { learner, inner } = request;
    const items = Array.from({ length: request.metaBatch }, (_, t) => {
      const streams = taskStreams(request.seed, request.iteration, t);
      const into = request.into?.[t];
      return { task: request.source.sample(streams.task), rng: streams.batches, ...(into ? { into } : {}) };
    });
    // `shared`: every task from the same state Sᵢ, then Sᵢ₊₁ = the mean of their final states.
    if (learner.innerState === 'shared') {
      const start = learner.getOptimizerState();
      const results: AdaptResult[] = [];
      const finals = [];
      for (const { task, rng, into } of items) {
        learner.setOptimizerState(start);
        results.push(await learner.adapt(task, inner, rng, into ? { into } : undefined));
        finals.push(learner.getOptimizerState());
      }
      learner.setOptimizerState(meanOptimizerState(finals));
      return results;
    }
    // A learner that can take the whole meta-batch in one call gets it that way (same results).
    if (learner.adaptTasks) return learner.adaptTasks(items, inner);
    const results: AdaptResult[] = [];
    for (const { task, rng, into } of items) results.push(await learner.adapt(task, inner, rng, into ? { into } : undefined));
    return results;
  }

  async close(): Promise<void> {}
}
