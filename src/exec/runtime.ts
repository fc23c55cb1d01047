import * as tf from '@tensorflow/tfjs';
import { DataError, InvalidOptionsError, ReptileError } from '../_utils/errors.js';
import { floatsToBytes, floatsView } from '../core/codec.js';
import { Params } from '../core/params.js';
import { openRecordedFewShotData, type FewShotData } from '../data/open.js';
import { selectBackend, type BackendChoice } from '../engine/backend.js';
import { createLearner } from '../learners/create-learner.js';
import type { Learner, OptimizerState } from '../learners/learner.js';
import { FewShotTaskSource } from '../tasks/labeled.js';
import { SineTaskSource } from '../tasks/sine.js';
import type { TaskSource } from '../tasks/task.js';
import { taskStreams } from './executor.js';
import { setFixedWeights, stateFromWire, stateToWire, type JobResult, type RunSpec, type TaskJob, type TaskOutcome } from './job.js';
import { evalTaskStreams, scoreTask } from './score.js';

/** Where a worker finds its data. */
export interface SourceContext {
  /** The worker's copy of the data; default the directory the run's spec names. */
  dataDir?: string;
  cacheDir?: string | false;
  /** Where progress and fallback notices go, one line at a time (default: nowhere). */
  log?: (line: string) => void;
}

/**
 * Rebuilds a task source from what its `describe()` returned (the factory that reverses it): the
 * sine family from its ranges; few-shot tasks by opening the named dataset from `dataDir`, taking
 * the named split and checking the data's fingerprint against the run's, so a worker with another
 * copy or version of the data refuses to run rather than train on different tasks.
 */
export function sourceFromSpec(spec: Record<string, unknown>, context: SourceContext = {}, opened?: Map<string, FewShotData>): TaskSource {
  let source: TaskSource;
  if (spec['task'] === 'sine') {
    source = new SineTaskSource({
      shots: spec['shots'] as number,
      gridPoints: spec['gridPoints'] as number,
      amplitudeRange: spec['amplitudeRange'] as [number, number],
      phaseRange: spec['phaseRange'] as [number, number],
      xRange: spec['xRange'] as [number, number],
    });
  } else if (spec['task'] === 'few-shot') {
    const origin = spec['data'] as Record<string, unknown> | undefined;
    if (origin === undefined || typeof origin['dataset'] !== 'string') throw new InvalidOptionsError('the run\'s few-shot task source does not say which data it samples from (its `origin`): give it one, or use the inline executor', { option: 'source' });
    const dataDir = context.dataDir ?? (origin['dataDir'] as string);
    const splitSeed = origin['splitSeed'] as number;
    const key = `${String(origin['dataset'])}|${dataDir}|${splitSeed}|${String(origin['classSplit'] ?? 'seeded')}`;
    let data = opened?.get(key);
    if (data === undefined) {
      data = openRecordedFewShotData(origin, { seed: splitSeed, dataDir, ...(context.cacheDir !== undefined ? { cacheDir: context.cacheDir } : {}), ...(context.log ? { log: context.log } : {}) });
      opened?.set(key, data);
    }
    if (data.describe.fingerprint !== origin['fingerprint']) {
      throw new DataError(
        `the ${String(origin['dataset'])} data in '${dataDir}' is not the run's (fingerprint ${data.describe.fingerprint}, the run's ${String(origin['fingerprint'])}): point \`dataDir\` at the same copy of the data`,
      );
    }
    const split = origin['split'] === 'test' ? data.test : origin['split'] === 'val' ? data.val : data.train;
    if (split === undefined) throw new DataError(`the ${String(origin['dataset'])} data in '${dataDir}' has no '${String(origin['split'])}' split: point \`dataDir\` at a copy of the data that has it`);
    source = new FewShotTaskSource({
      dataset: split,
      classes: spec['classes'] as number,
      shots: spec['shots'] as number,
      ...(spec['trainShots'] !== null && spec['trainShots'] !== undefined ? { trainShots: spec['trainShots'] as number } : {}),
      queries: spec['queries'] as number,
      origin,
    });
  } else {
    throw new InvalidOptionsError(`a task source of kind '${String(spec['task'])}' cannot be rebuilt on a worker: use the inline executor`, { option: 'executor' });
  }
  if (JSON.stringify(source.describe()) !== JSON.stringify(spec)) {
    throw new DataError(`the task source rebuilt on this worker (${JSON.stringify(source.describe())}) differs from the run's (${JSON.stringify(spec)}): run the same reptile-ml version with the same data on both sides`);
  }
  return source;
}

/**
 * Runs jobs on a worker (a thread or a `reptile worker` process): it keeps one learner per run
 * (the model rebuilt from its topology, the native engine on one thread) and one copy of each
 * dataset, and computes each task exactly as the inline executor does, so the results are
 * bit-identical wherever they were computed.
 */
export class JobRunner {
  private readonly context: SourceContext;
  private readonly learners = new Map<string, { learner: Learner; model: tf.LayersModel }>();
  private readonly sources = new Map<string, TaskSource>();
  private readonly opened = new Map<string, FewShotData>();

  constructor(context: SourceContext = {}) {
    this.context = context;
  }

  /** Builds (or finds) what the run needs; throws when this worker cannot run it. */
  async prepare(spec: RunSpec): Promise<{ learner: Learner; source: TaskSource }> {
    let entry = this.learners.get(spec.runId);
    if (entry === undefined) {
      await selectBackend(spec.learner.kind === 'tfjs' ? (spec.learner.backend as BackendChoice) : 'cpu');
      const model = await tf.models.modelFromJSON({ modelTopology: spec.learner.modelTopology as tf.io.ModelJSON['modelTopology'] });
      // Before the learner is built: the native engine copies frozen layers' weights into its plan.
      try {
        setFixedWeights(model, spec.learner.fixedWeights);
      } catch (e) {
        model.dispose();
        throw e instanceof ReptileError ? e : new DataError((e as Error).message);
      }
      const learner = createLearner({ model, learner: spec.learner.kind, innerState: spec.learner.innerState, batchStatsAtTest: spec.learner.batchStatsAtTest, threads: 1 });
      if (learner.layout.hash !== spec.learner.layout.hash || learner.layout.size !== spec.learner.layout.size) {
        learner.dispose();
        model.dispose();
        throw new DataError(`the run's model rebuilt here has layout ${learner.layout.hash} (${learner.layout.size} values), not ${spec.learner.layout.hash}: coordinator and worker run different versions`);
      }
      entry = { learner, model };
      this.learners.set(spec.runId, entry);
    }
    const key = JSON.stringify(spec.source);
    let source = this.sources.get(key);
    if (source === undefined) {
      source = sourceFromSpec(spec.source, this.context, this.opened);
      this.sources.set(key, source);
    }
    return { learner: entry.learner, source };
  }

  /**
   * Runs a job that `checkJob` has accepted and returns its result. With `transferable` (the
   * default) every array of the result is a fresh buffer of its own, which `postMessage` can
   * transfer; without it the parameters are views of the learner's outputs, valid until its next
   * call, for a caller that encodes the result at once.
   */
  async run(spec: RunSpec, job: TaskJob, { transferable = true }: { transferable?: boolean } = {}): Promise<JobResult> {
    const bytes = transferable ? copyBytes : floatsToBytes;
    const { learner, source } = await this.prepare(spec);
    const size = learner.layout.size;
    const phi = new Params(learner.layout, floatsView(job.phi, size));
    const start: OptimizerState | undefined = stateFromWire(job.state, size);
    const outcomes: TaskOutcome[] = [];
    learner.setParams(phi);
    for (const t of job.taskIndices) {
      learner.setOptimizerState(start);
      if (job.kind === 'adapt') {
        const streams = taskStreams(job.seed, job.iteration, t);
        const r = await learner.adapt(source.sample(streams.task), job.inner, streams.batches);
        const state = spec.learner.innerState === 'shared' ? stateToWire(learner.getOptimizerState()) : undefined;
        // getOptimizerState's arrays are the learner's fresh copies: they travel as they are.
        outcomes.push({ taskIndex: t, loss: r.loss, params: bytes(r.params.data), ...(job.wantLastStep ? { lastStep: bytes(r.lastStep.data) } : {}), ...(state ? { state } : {}) });
      } else {
        // As `evaluate` does inline: adapt from φ and the saved state, score, restore φ.
        const streams = evalTaskStreams(job.seed, t);
        const task = source.sample(streams.task);
        const adapted = await learner.adapt(task, job.inner, streams.batches);
        learner.setOptimizerState(start);
        learner.setParams(adapted.params);
        outcomes.push({ taskIndex: t, score: scoreTask(learner, task, job.transductive) });
        learner.setParams(phi);
      }
    }
    return { runId: job.runId, kind: job.kind, iteration: job.iteration, digest: job.digest, layoutHash: learner.layout.hash, outcomes };
  }

  /** Forgets a run's learner. */
  release(runId: string): void {
    const entry = this.learners.get(runId);
    if (entry === undefined) return;
    entry.learner.dispose();
    entry.model.dispose();
    this.learners.delete(runId);
  }

  dispose(): void {
    for (const id of [...this.learners.keys()]) this.release(id);
    this.sources.clear();
    this.opened.clear();
  }
}

function copyBytes(values: Float32Array): Uint8Array {
  return new Uint8Array(floatsToBytes(values));
}
