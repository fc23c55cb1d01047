import { createHash, randomBytes } from 'node:crypto';
import { floatsToBytes, floatsView } from '../core/codec.js';
import { Params } from '../core/params.js';
import type { AdaptResult, Learner, OptimizerState } from '../learners/learner.js';
import type { TaskSource } from '../tasks/task.js';
import { AsyncDriver, type TaskAnswer } from './async-driver.js';
import { checkPolicyFor, type AsyncCounters, type AsyncSpanRequest, type AsyncSpanResult, type EvalRequest, type Executor, type MetaBatchRequest, type SyncMode } from './executor.js';
import { MAX_TASKS_PER_JOB, checkResult, jobDigest, runSpecOf, stateFromWire, stateToWire, type JobResult, type RunSpec, type TaskJob } from './job.js';
import { meanOptimizerState } from './shared-state.js';
import { checkInteger, describeValue } from '../_utils/checks.js';
import { InvalidOptionsError } from '../_utils/errors.js';

/**
 * Why a result cannot be used for the job it answers, or undefined when it can: the executor's
 * full check (`checkResult`), handed to the transport.
 */
export type ResultCheck = (result: JobResult) => string | undefined;

/**
 * Where a parallel executor sends its jobs: a pool of threads or a queue on Redis. `submit`
 * resolves with the job's result once some worker has computed it (retrying elsewhere if a worker
 * died) and `check` has accepted it, or rejects when the job cannot be run at all. A transport
 * whose workers cannot be trusted runs the job again when `check` rejects an answer; one whose
 * workers are this process's own threads rejects.
 */
export interface JobTransport {
  /** How many jobs can run at once (workers). */
  readonly slots: number;
  submit(spec: RunSpec, job: TaskJob, check: ResultCheck): Promise<JobResult>;
  /** Removes what the runs so far keep outside this process (queues, stored values); the transport stays open. */
  endRuns?(): Promise<void>;
  close(): Promise<void>;
}

/** Options of {@link ParallelExecutor}. */
export interface ParallelExecutorOptions {
  /** Prefix of the run id (and of the Redis queue's name); the rest is a hash of the run's learner, task source and {@link runKey}. */
  runId?: string;
  /**
   * What tells this run from any other with the same learner and task source, so that two runs
   * never share a run id (and a queue): a run that can be resumed passes something a resumed run
   * gives again (`createExecutor` passes the host and the checkpoint directory). Default: a
   * random nonce, different for every executor.
   */
  runKey?: string;
  /** Tasks per evaluation job; default a few jobs per worker, at most 50 tasks each. */
  evalChunk?: number;
  /**
   * Scan every value of every result for NaN and ±Infinity before using it. Default true; the
   * threads executor turns it off, its results coming from this process's own threads (the
   * training loop still stops a diverged run).
   */
  scanValues?: boolean;
  /**
   * `async` applies each task's result as it arrives instead of a meta-batch at once; not
   * bit-identical to the inline executor (docs/distributed.md). Default `sync`.
   */
  sync?: SyncMode;
  /** async: drop (and run again) a result whose φ is more than this many updates old. Default 2 × metaBatch. */
  maxStaleness?: number;
}

/**
 * The coordinator's half of the threads and redis executors: it makes each task of a meta-batch
 * a job (an evaluation is cut into jobs of several tasks), sends φ and the shared optimizer state as
 * bytes, checks every result against the job it answers (run, iteration, digest of φ, layout,
 * sizes, finite values), and puts the results back in task-index order. Under `shared` the next
 * state is the mean of the tasks' final states, exactly as the inline executor makes it, so the
 * parameters are bit-identical to an inline run (docs/architecture.md, invariant 1); `carry` is refused.
 */
export class ParallelExecutor implements Executor {
  readonly name: string;
  readonly parallel = true;
  private readonly transport: JobTransport;
  private readonly options: ParallelExecutorOptions;
  private readonly specs = new WeakMap<Learner, WeakMap<TaskSource, RunSpec>>();
  private readonly runKey: string;
  readonly sync: SyncMode;
  private readonly driver: AsyncDriver | undefined;

  constructor(name: string, transport: JobTransport, options: ParallelExecutorOptions = {}) {
    if (options.runId !== undefined && (typeof options.runId !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(options.runId))) {
      throw new InvalidOptionsError(`\`runId\` must be 1 to 64 letters, digits, '.', '_' or '-', got ${describeValue(options.runId)}`, { option: 'runId' });
    }
    if (options.evalChunk !== undefined) checkInteger('evalChunk', options.evalChunk, 1, MAX_TASKS_PER_JOB);
    checkSyncOptions(options);
    this.name = name;
    this.sync = options.sync ?? 'sync';
    this.driver = this.sync === 'async' ? new AsyncDriver((request, task) => this.sendTask(request, task), options.maxStaleness !== undefined ? { maxStaleness: options.maxStaleness } : {}) : undefined;
    this.transport = transport;
    this.options = options;
    this.runKey = options.runKey ?? randomBytes(16).toString('hex');
  }

  /**
   * The run spec the workers receive for this learner and task source.
   * @internal
   */
  specFor(learner: Learner, source: TaskSource): RunSpec {
    let bySource = this.specs.get(learner);
    if (bySource === undefined) this.specs.set(learner, (bySource = new WeakMap()));
    let spec = bySource.get(source);
    if (spec === undefined) {
      const unnamed = runSpecOf(learner, source);
      const id = `r${createHash('sha256').update(unnamed.runId).update('\0').update(this.runKey).digest('hex').slice(0, 12)}`;
      spec = { ...unnamed, runId: this.options.runId === undefined ? id : `${this.options.runId}-${id}` };
      bySource.set(source, spec);
    }
    return spec;
  }

  async runMetaBatch(request: MetaBatchRequest): Promise<AdaptResult[]> {
    const { learner } = request;
    checkPolicyFor(this, learner.innerState);
    const spec = this.specFor(learner, request.source);
    const shared = learner.innerState === 'shared';
    const wantLastStep = request.foml !== false;
    const phi = new Uint8Array(floatsToBytes(learner.getParams().data));
    const state = shared ? stateToWire(learner.getOptimizerState()) : undefined;
    const base = { runId: spec.runId, kind: 'adapt' as const, iteration: request.iteration, seed: request.seed, inner: request.inner, transductive: false, wantLastStep, phi, ...(state ? { state } : {}), digest: jobDigest(phi, state) };
    // One job per task: free workers take the next one, and each result is decoded as it arrives,
    // while the other tasks still run.
    const results = new Array<AdaptResult>(request.metaBatch);
    const finals = new Array<OptimizerState | undefined>(request.metaBatch);
    await Promise.all(
      Array.from({ length: request.metaBatch }, async (_, t) => {
        const answer = await this.send(spec, { ...base, taskIndices: [t] }, learner, shared);
        const o = answer.outcomes[0]!;
        const params = new Params(learner.layout, floatsView(o.params!));
        results[t] = { params, loss: o.loss!, lastStep: o.lastStep ? new Params(learner.layout, floatsView(o.lastStep)) : notSent() };
        if (shared) finals[t] = stateFromWire(o.state, learner.layout.size);
      }),
    );
    if (shared) learner.setOptimizerState(meanOptimizerState(finals));
    return results;
  }

  /** The asynchronous mode's span (docs/distributed.md); refused in the synchronous mode. */
  runAsyncSpan(request: AsyncSpanRequest): Promise<AsyncSpanResult> {
    if (this.driver === undefined) throw new InvalidOptionsError(`the ${this.name} executor is synchronous: create it with \`sync\` 'async' to run asynchronous spans`, { option: 'sync' });
    checkPolicyFor(this, request.learner.innerState);
    return this.driver.runSpan(request);
  }

  /** The asynchronous mode's counters (undefined in the synchronous mode). */
  get asyncCounters(): AsyncCounters | undefined {
    return this.driver?.totals;
  }

  // One task of an asynchronous run, sent from the learner's φ and state of this moment.
  private async sendTask(request: AsyncSpanRequest, task: number): Promise<TaskAnswer> {
    const { learner } = request;
    const spec = this.specFor(learner, request.source);
    const shared = learner.innerState === 'shared';
    const phi = new Uint8Array(floatsToBytes(learner.getParams().data));
    const state = shared ? stateToWire(learner.getOptimizerState()) : undefined;
    const iteration = Math.floor(task / request.metaBatch);
    const job: TaskJob = { runId: spec.runId, kind: 'adapt', iteration, seed: request.seed, inner: request.inner, transductive: false, wantLastStep: request.foml, phi, ...(state ? { state } : {}), digest: jobDigest(phi, state), taskIndices: [task % request.metaBatch] };
    const answer = await this.send(spec, job, learner, shared);
    const o = answer.outcomes[0]!;
    const result: AdaptResult = { params: new Params(learner.layout, floatsView(o.params!)), loss: o.loss!, lastStep: o.lastStep ? new Params(learner.layout, floatsView(o.lastStep)) : notSent() };
    return { result, state: shared ? stateFromWire(o.state, learner.layout.size) : undefined };
  }

  async evaluateTasks(request: EvalRequest): Promise<number[]> {
    const { learner, samples } = request;
    const spec = this.specFor(learner, request.source);
    const phi = new Uint8Array(floatsToBytes(learner.getParams().data));
    const state = stateToWire(learner.getOptimizerState());
    const base = { runId: spec.runId, kind: 'eval' as const, iteration: 0, seed: request.seed, inner: request.inner, transductive: request.transductive, wantLastStep: false, phi, ...(state ? { state } : {}), digest: jobDigest(phi, state) };
    const size = this.options.evalChunk ?? Math.max(1, Math.min(50, Math.ceil(samples / (this.transport.slots * 4))));
    const chunks: number[][] = [];
    for (let s = 0; s < samples; s += size) chunks.push(Array.from({ length: Math.min(size, samples - s) }, (_, i) => s + i));
    const scores = new Array<number>(samples);
    let done = 0;
    await Promise.all(
      chunks.map(async (taskIndices) => {
        const answer = await this.send(spec, { ...base, taskIndices }, learner, false);
        for (const o of answer.outcomes) scores[o.taskIndex] = o.score!;
        done += taskIndices.length;
        request.onTask?.(done, samples);
      }),
    );
    return scores;
  }

  /** Removes what the runs so far keep outside this process (a Redis queue and its values). */
  endRuns(): Promise<void> {
    return this.transport.endRuns?.() ?? Promise.resolve();
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  private async send(spec: RunSpec, job: TaskJob, learner: Learner, wantState: boolean): Promise<JobResult> {
    const check: ResultCheck = (result) => {
      const problem = checkResult(result, { job, layout: learner.layout, wantState, scanValues: this.options.scanValues ?? true });
      // A worker's honest answer is non-finite only when training diverged; the loop says so.
      return problem !== undefined && problem.includes('non-finite') && job.kind === 'adapt' ? undefined : problem;
    };
    return this.transport.submit(spec, job, check);
  }
}

/** Refuses a `sync` that is not a mode, and a `maxStaleness` that is not a count or comes without `sync` 'async'. */
export function checkSyncOptions(options: Pick<ParallelExecutorOptions, 'sync' | 'maxStaleness'>): void {
  if (options.sync !== undefined && options.sync !== 'sync' && options.sync !== 'async') {
    throw new InvalidOptionsError(`\`sync\` must be 'sync' or 'async', got ${describeValue(options.sync)}`, { option: 'sync' });
  }
  if (options.maxStaleness === undefined) return;
  if (options.sync !== 'async') throw new InvalidOptionsError("`maxStaleness` is for the asynchronous mode: set `sync` to 'async', or drop `maxStaleness`", { option: 'maxStaleness' });
  checkInteger('maxStaleness', options.maxStaleness, 0, 1_000_000);
}

// Reptile's update does not read the last inner step, so it does not travel; reading it is a bug
// (an internal invariant, hence a plain Error).
function notSent(): Params {
  return new Proxy({} as Params, {
    get() {
      throw new Error('the last inner step was not sent back: the executor was told the run is not FOMAML (MetaBatchRequest.foml)');
    },
  });
}
