import * as fs from 'node:fs';
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import { checkOptionsObject } from '../_utils/checks.js';
import { CheckpointError, DataError, DivergenceError, InvalidOptionsError, ReptileError, UnsupportedModelError, UsageError } from '../_utils/errors.js';
import type { JobResult, RunSpec, TaskJob } from './job.js';
import { ParallelExecutor, type JobTransport, type ParallelExecutorOptions, type ResultCheck } from './parallel.js';
import type { SourceContext } from './runtime.js';

/** Options of {@link ThreadsExecutor}. */
export interface ThreadsExecutorOptions extends ParallelExecutorOptions, SourceContext {
  /** Worker threads; default the number of cores (`os.availableParallelism()`). */
  workers?: number;
}

/**
 * The `threads` executor: a pool of `worker_threads`, each with its own learner (the native
 * engine on one thread) and its own copy of the data, opened from the directory the run names.
 * Each task of a meta-batch is a job that the next free worker takes; results are bit-identical
 * to the inline executor's under the `shared` and `reset` policies.
 */
export class ThreadsExecutor extends ParallelExecutor {
  /** Number of worker threads. */
  readonly workers: number;

  constructor(options: ThreadsExecutorOptions = {}) {
    checkOptionsObject(options, 'ThreadsExecutor', '{ workers: 4 }');
    const workers = options.workers ?? os.availableParallelism();
    if (!Number.isInteger(workers) || workers < 1 || workers > 1024) throw new InvalidOptionsError(`\`workers\` must be a whole number from 1 to 1024, got ${workers}`, { option: 'workers' });
    for (const option of ['dataDir', 'cacheDir'] as const) {
      if (options[option] !== undefined && typeof options[option] !== 'string') throw new InvalidOptionsError(`\`${option}\` must be a folder's path, got ${typeof options[option]}`, { option });
    }
    const context: SourceContext = { ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}), ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}) };
    super('threads', new ThreadPool(workers, context), { scanValues: false, ...options });
    this.workers = workers;
  }
}

// A worker thread's error as this thread throws it: of the class the worker threw, when that was
// one of the library's (the message names the problem and the fix), else a runtime failure.
const ERROR_CLASSES: Record<string, new (message: string) => ReptileError> = { UsageError, InvalidOptionsError, UnsupportedModelError, DataError, CheckpointError, DivergenceError };
function workerError(message: string, name: string | undefined): ReptileError {
  const cls = name === undefined ? undefined : ERROR_CLASSES[name];
  return cls !== undefined ? new cls(message) : new ReptileError(`a worker thread failed: ${message}`);
}

interface Slot {
  worker: Worker;
  busy: boolean;
  /** Runs whose spec this worker has, and the digest of the φ it holds. */
  specs: Set<string>;
  digest: string | undefined;
}

interface Pending {
  spec: RunSpec;
  job: TaskJob;
  check: ResultCheck;
  resolve: (r: JobResult) => void;
  reject: (e: Error) => void;
}

// The worker's compiled file beside this one; under a TypeScript runner (the tests, `tsx`) the
// .ts source, loaded through tsx.
function startWorker(options: { workerData: unknown; env: NodeJS.ProcessEnv }): Worker {
  const js = new URL('./thread-worker.js', import.meta.url);
  if (fs.existsSync(js)) return new Worker(js, options);
  const ts = new URL('./thread-worker.ts', import.meta.url).href;
  const boot = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(ts)}); });`;
  return new Worker(boot, { ...options, eval: true });
}

class ThreadPool implements JobTransport {
  readonly slots: number;
  private readonly context: SourceContext;
  private readonly pool: Slot[] = [];
  private readonly queue: Pending[] = [];
  private readonly inFlight = new Map<number, Pending & { slot: Slot }>();
  private nextId = 0;
  private closed = false;
  private failure: Error | undefined;

  constructor(workers: number, context: SourceContext) {
    this.slots = workers;
    this.context = context;
  }

  submit(spec: RunSpec, job: TaskJob, check: ResultCheck): Promise<JobResult> {
    if (this.closed) return Promise.reject(new UsageError('the threads executor is closed: create a new one to run more tasks'));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ spec, job, check, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.pool.map((s) => s.worker.terminate()));
    this.pool.length = 0;
  }

  private start(): Slot {
    const worker = startWorker({ workerData: this.context, env: { ...process.env, REPTILE_NATIVE_THREADS: '1' } });
    const slot: Slot = { worker, busy: false, specs: new Set(), digest: undefined };
    worker.on('message', (msg: { id: number; result?: JobResult; error?: string; errorName?: string }) => {
      const p = this.inFlight.get(msg.id);
      if (p === undefined) return;
      this.inFlight.delete(msg.id);
      slot.busy = false;
      if (msg.error !== undefined) p.reject(workerError(msg.error, msg.errorName));
      else {
        // This process's own threads: a result its check rejects is a bug, not an attack.
        const problem = p.check(msg.result!);
        if (problem === undefined) p.resolve(msg.result!);
        else p.reject(new ReptileError(`the threads executor got a result it cannot use (${problem})`));
      }
      this.pump();
    });
    const die = (why: string) => {
      this.failure = new ReptileError(`a worker thread of the threads executor died (${why})`);
      for (const [id, p] of this.inFlight) {
        if (p.slot === slot) {
          this.inFlight.delete(id);
          p.reject(this.failure);
        }
      }
      for (const p of this.queue.splice(0)) p.reject(this.failure);
    };
    worker.on('error', (e) => die(e.message));
    worker.on('exit', (code) => {
      if (!this.closed) die(`exit code ${code}`);
    });
    this.pool.push(slot);
    return slot;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let slot = this.pool.find((s) => !s.busy);
      if (slot === undefined && this.pool.length < this.slots) slot = this.start();
      if (slot === undefined) return;
      const p = this.queue.shift()!;
      const id = this.nextId++;
      slot.busy = true;
      this.inFlight.set(id, { ...p, slot });
      // Each worker gets a run's spec once and each meta-iteration's φ and state once.
      const spec = slot.specs.has(p.spec.runId) ? undefined : p.spec;
      slot.specs.add(p.spec.runId);
      const reuse = slot.digest === p.job.digest;
      slot.digest = p.job.digest;
      const job = reuse ? { ...p.job, phi: undefined, state: undefined } : p.job;
      slot.worker.postMessage({ id, spec, job, reuse });
    }
  }
}
