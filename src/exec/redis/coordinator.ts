import { Queue, QueueEvents, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { ReptileError } from '../../_utils/errors.js';
import type { JobResult, RunSpec, TaskJob } from '../job.js';
import { ParallelExecutor, type JobTransport, type ParallelExecutorOptions, type ResultCheck } from '../parallel.js';
import { asBuffer, BLOBS_MISSING, decodeResult, MAX_RESULT_OVERHEAD, MAX_TASKS_PER_RESULT, type QueuedJob } from './codec.js';
import { BLOB_TTL_S, bullConnection, connectRedis, key, queueName, RUNS_KEY, untilAnswered } from './connection.js';

/** How often a coordinator looks at a job it waits for, besides its events (ms). */
const WATCH_MS = 3000;
/** Times one job may be lost by Redis before the coordinator gives up. */
const MAX_LOSSES = 20;
/** Finished jobs BullMQ keeps on a run's queue (the coordinator reads results from their own keys). */
const KEEP_FINISHED = 100;
/** Entries kept in a queue's event stream (BullMQ's default, 10,000, holds megabytes). */
const EVENTS_KEPT = 1000;

type BulkJob = Parameters<Queue['addBulk']>[0][number];

/** Options of {@link RedisExecutor}. */
export interface RedisExecutorOptions extends ParallelExecutorOptions {
  url: string;
  /** Where progress and fallback notices go, one line at a time (default: nowhere). */
  log?: (line: string) => void;
  /** Tasks per evaluation job (default 25). */
  evalChunk?: number;
}

/**
 * The `redis` executor, the coordinator's side of BullMQ on Redis: each task of a meta-batch is a
 * job on the run's queue (`reptile-<run id>`), φ and the optimizer state are stored once per
 * meta-iteration as binary keys, and `reptile worker` processes on any machine take the jobs,
 * rebuild the tasks from (seed, iteration, task index) over their own copy of the data and write
 * their results back as binary. Job ids are deterministic, so a job delivered twice (a worker
 * killed mid-task and the job recovered as stalled) or a late answer changes nothing. Use
 * {@link RedisExecutor.connect}.
 */
export class RedisExecutor extends ParallelExecutor {
  private constructor(transport: RedisTransport, options: RedisExecutorOptions) {
    super('redis', transport, { evalChunk: 25, ...options });
  }

  /** Connects to Redis (one clear line on a wrong URL, password or unreachable server). */
  static async connect(options: RedisExecutorOptions): Promise<RedisExecutor> {
    const client = await connectRedis({ url: options.url, role: 'coordinator', ...(options.log ? { log: options.log } : {}) });
    return new RedisExecutor(new RedisTransport(client, options), options);
  }
}

/** How a coordinator stops looking at a job it no longer waits for. */
interface Watching {
  stopped: boolean;
  timer?: ReturnType<typeof setTimeout>;
  wake?: () => void;
}

class RedisTransport implements JobTransport {
  // One job per task: workers take them as they come free, which balances uneven machines.
  readonly slots = Number.MAX_SAFE_INTEGER;
  private readonly client: Redis;
  private readonly options: RedisExecutorOptions;
  private readonly runs = new Map<string, Promise<{ queue: Queue; events: QueueEvents }>>();
  /** The connections this transport opened for queues and events; BullMQ leaves a connection it was given open. */
  private readonly connections: Redis[] = [];
  /** φ (and the state) stored, by key, while some job of theirs is submitted. */
  private readonly blobs = new Map<string, Promise<void>>();
  /** Jobs being submitted, by run id and digest: at zero, φ and the state of that digest are deleted. */
  private readonly inFlight = new Map<string, number>();
  private readonly adds = new Map<Queue, { job: BulkJob; resolve: (j: Job) => void; reject: (e: unknown) => void }[]>();
  /** Set when close() begins: transactions cut off by an outage are no longer tried again. */
  private closing = false;

  constructor(client: Redis, options: RedisExecutorOptions) {
    this.client = client;
    this.options = options;
  }

  async submit(spec: RunSpec, job: TaskJob, check: ResultCheck): Promise<JobResult> {
    // Counted before the first await: the jobs of a meta-batch are all submitted in one turn, so
    // the count reaches zero only once the last of them is answered.
    const uses = `${spec.runId}:${job.digest}`;
    this.inFlight.set(uses, (this.inFlight.get(uses) ?? 0) + 1);
    try {
      return await this.submitCounted(spec, job, check);
    } finally {
      const left = this.inFlight.get(uses)! - 1;
      if (left > 0) this.inFlight.set(uses, left);
      else {
        this.inFlight.delete(uses);
        this.dropBlobs(spec.runId, job.digest);
      }
    }
  }

  private async submitCounted(spec: RunSpec, job: TaskJob, check: ResultCheck): Promise<JobResult> {
    const run = await this.register(spec);
    await this.storeBlobs(spec.runId, job);
    const jobId = `${job.kind}-${job.iteration}-${job.digest}-${job.taskIndices[0]}-${job.taskIndices.length}`;
    const data: QueuedJob = {
      runId: job.runId,
      kind: job.kind,
      iteration: job.iteration,
      seed: job.seed,
      taskIndices: job.taskIndices,
      inner: job.inner,
      transductive: job.transductive,
      wantLastStep: job.wantLastStep,
      digest: job.digest,
      ...(job.state ? { state: { kind: job.state.kind, step: job.state.step, m: job.state.m !== undefined, v: job.state.v !== undefined } } : {}),
    };
    const resultKey = key(spec.runId, 'result', jobId);
    let lost = 0;
    for (let attempt = 0; ; attempt++) {
      const id = attempt === 0 ? jobId : `${jobId}-again${attempt}`;
      const queued = await this.add(run.queue, { name: job.kind, data, opts: { jobId: id, removeOnComplete: { age: 600, count: KEEP_FINISHED }, removeOnFail: { age: 3600, count: KEEP_FINISHED }, attempts: 1 } });
      // (A plain flag and timer: an AbortController per job costs an exception object at each abort.)
      const watching: Watching = { stopped: false };
      let outcome: 'done' | 'lost' | { failed: string };
      try {
        outcome = await Promise.race([
          queued.waitUntilFinished(run.events).then(
            () => 'done' as const,
            (e: unknown) => ({ failed: (e as Error).message }),
          ),
          this.watch(run.queue, id, spec, job, watching),
        ]);
      } finally {
        watching.stopped = true;
        clearTimeout(watching.timer);
        watching.wake?.();
      }
      if (typeof outcome === 'object') {
        // A job Redis forgot (BullMQ: "Missing key for job …") or one a worker could not find φ for is queued again.
        if (!outcome.failed.includes(BLOBS_MISSING) && !/^Missing key for job/.test(outcome.failed)) {
          throw new ReptileError(`a worker could not run task(s) ${job.taskIndices.join(',')} of ${job.kind === 'adapt' ? `meta-iteration ${job.iteration}` : 'the evaluation'}: ${outcome.failed}`);
        }
        outcome = 'lost';
      }
      if (outcome === 'lost') {
        // Redis lost its memory (restarted without persistence, or flushed): announce the run and store φ again.
        if (lost++ === 0) this.log(`reptile coordinator: job ${id} vanished from Redis (restarted without append-only persistence?); queueing it again`);
        if (lost > MAX_LOSSES) throw new ReptileError(`job ${jobId} was lost by Redis ${MAX_LOSSES} times: Redis keeps losing its memory (see docs/distributed.md for AOF persistence and maxmemory-policy noeviction)`);
        await this.restore(spec, job);
        continue;
      }
      // readResult has deleted the value it read, so a job run again writes afresh.
      const result = await this.readResult(resultKey, spec);
      const problem = typeof result === 'string' ? result : check(result);
      if (problem === undefined) return result as JobResult;
      this.log(`reptile coordinator: rejected a result for job ${id} (${problem}); running the job again`);
      if (attempt >= 3) throw new ReptileError(`the results for job ${jobId} were rejected four times (last: ${problem}): a worker is broken or hostile`);
    }
  }

  /**
   * Ends the runs: each leaves the run set (so workers stop watching its queue), then its queue
   * (jobs, events, BullMQ's bookkeeping) and every key of its own are deleted: nothing of a run
   * that ended stays in Redis.
   */
  async endRuns(): Promise<void> {
    for (const [runId, pending] of this.runs) {
      const run = await pending.catch(() => undefined);
      if (run === undefined) continue;
      await this.client.srem(RUNS_KEY, runId).catch(() => {});
      await run.events.close();
      await run.queue.obliterate({ force: true }).catch(() => {});
      await run.queue.close();
      await this.deleteRunKeys(runId).catch(() => {});
    }
    this.runs.clear();
  }

  /** Ends the runs (see endRuns) and closes the connections. */
  async close(): Promise<void> {
    this.closing = true;
    await this.endRuns();
    for (const c of this.connections.splice(0)) c.disconnect();
    this.client.disconnect();
  }

  // The jobs of a meta-batch are submitted together: they go to Redis in one addBulk.
  private add(queue: Queue, job: BulkJob): Promise<Job> {
    return new Promise((resolve, reject) => {
      let pending = this.adds.get(queue);
      if (pending === undefined) {
        pending = [];
        this.adds.set(queue, pending);
        setImmediate(() => {
          const batch = this.adds.get(queue)!;
          this.adds.delete(queue);
          // Repeating it is safe: a job whose id Redis already holds is not added twice.
          untilAnswered(() => queue.addBulk(batch.map((b) => b.job)), () => this.closing).then(
            (jobs) => jobs.forEach((j, i) => batch[i]!.resolve(j)),
            (e: unknown) => batch.forEach((b) => b.reject(e)),
          );
        });
      }
      pending.push({ job, resolve, reject });
    });
  }

  private log(line: string): void {
    (this.options.log ?? ((l: string) => void process.stderr.write(`${l}\n`)))(line);
  }

  private register(spec: RunSpec): Promise<{ queue: Queue; events: QueueEvents }> {
    let run = this.runs.get(spec.runId);
    if (run === undefined) {
      run = this.open(spec);
      this.runs.set(spec.runId, run);
    }
    return run;
  }

  private async open(spec: RunSpec): Promise<{ queue: Queue; events: QueueEvents }> {
    const connection = bullConnection(this.client, false);
    this.connections.push(connection);
    const queue = new Queue(queueName(spec.runId), { connection, streams: { events: { maxLen: EVENTS_KEPT } } });
    // Every job of a meta-batch (or an evaluation) waits on the queue at once.
    queue.setMaxListeners(0);
    const eventsConnection = bullConnection(this.client, true);
    this.connections.push(eventsConnection);
    const events = new QueueEvents(queueName(spec.runId), { connection: eventsConnection });
    events.on('error', () => {});
    queue.on('error', () => {});
    // A worker's stalled-job check hands the job of a silent worker (dead, or cut off) to another.
    const stalled = new Set<string>();
    events.on('stalled', ({ jobId }: { jobId: string }) => {
      if (stalled.has(jobId)) return;
      stalled.add(jobId);
      this.log(`reptile coordinator: job ${jobId} stalled (its worker went silent for longer than its lock); another worker runs it again`);
    });
    await events.waitUntilReady();
    // A restarted coordinator starts from clean queues: jobs and keys of the run before it are dropped.
    await queue.pause();
    await queue.obliterate({ force: true });
    await queue.resume();
    await this.deleteRunKeys(spec.runId);
    await this.announce(spec);
    return { queue, events };
  }

  /** Deletes every key of the run (`reptile:<run id>:*`): its spec, φ, states and results. */
  private async deleteRunKeys(runId: string): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.client.scan(cursor, 'MATCH', key(runId, '*'), 'COUNT', 1000);
      if (keys.length > 0) await this.client.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  }

  /**
   * Deletes φ and the state of a digest no job waits for any more (the meta-iteration is over),
   * so Redis holds them for the current meta-iteration only. A job of theirs still running on a
   * cut-off worker finds them gone and fails; nobody waits for it.
   */
  private dropBlobs(runId: string, digest: string): void {
    const k = key(runId, 'phi', digest);
    if (!this.blobs.delete(k)) return;
    // Sent now, before any later store of the same digest on this connection.
    this.client.unlink(k, key(runId, 'm', digest), key(runId, 'v', digest)).catch(() => {});
  }

  private async announce(spec: RunSpec): Promise<void> {
    await this.client.set(key(spec.runId, 'spec'), JSON.stringify(spec), 'EX', BLOB_TTL_S * 4);
    await this.client.sadd(RUNS_KEY, spec.runId);
  }

  /** Announces the run and stores φ and the state again, whatever Redis says it holds. */
  private async restore(spec: RunSpec, job: TaskJob): Promise<void> {
    await this.announce(spec);
    this.blobs.delete(key(spec.runId, 'phi', job.digest));
    await this.storeBlobs(spec.runId, job);
  }

  /**
   * Watches a queued job without relying on the event stream alone (events are lost while Redis
   * restarts). Every few seconds: a job that completed or failed is reported as such; one unknown
   * to Redis at two checks in a row is 'lost'; and if Redis no longer holds the run's spec, its
   * entry in the run set or φ (it restarted empty between φ being stored and the job being
   * queued), they are stored again so that workers can take the job.
   */
  private async watch(queue: Queue, id: string, spec: RunSpec, job: TaskJob, watching: Watching): Promise<'done' | 'lost' | { failed: string }> {
    let missing = 0;
    while (!watching.stopped) {
      await new Promise<void>((wake) => {
        watching.wake = wake;
        watching.timer = setTimeout(wake, WATCH_MS);
      });
      if (watching.stopped) break;
      try {
        const state = await queue.getJobState(id);
        if (state === 'completed') return 'done';
        if (state === 'failed') return { failed: (await queue.getJob(id))?.failedReason ?? 'the job failed' };
        missing = state === 'unknown' ? missing + 1 : 0;
        if (missing >= 2) return 'lost';
        const [[, spec1], [, member], [, phi]] = (await this.client
          .multi()
          .exists(key(spec.runId, 'spec'))
          .sismember(RUNS_KEY, spec.runId)
          .exists(key(spec.runId, 'phi', job.digest))
          .exec()) as [[unknown, number], [unknown, number], [unknown, number]];
        if (spec1 === 0 || member === 0 || phi === 0) await this.restore(spec, job);
      } catch {
        // Redis away: the connection reconnects and says so; look again next round.
      }
    }
    return new Promise<never>(() => {});
  }

  private storeBlobs(runId: string, job: TaskJob): Promise<void> {
    const k = key(runId, 'phi', job.digest);
    let stored = this.blobs.get(k);
    if (stored === undefined) {
      // Keeps the run's announcement alive for as long as the run goes on.
      const store = () => {
        const m = this.client.multi().expire(key(runId, 'spec'), BLOB_TTL_S * 4).sadd(RUNS_KEY, runId).set(k, asBuffer(job.phi), 'EX', BLOB_TTL_S);
        if (job.state?.m) m.set(key(runId, 'm', job.digest), asBuffer(job.state.m), 'EX', BLOB_TTL_S);
        if (job.state?.v) m.set(key(runId, 'v', job.digest), asBuffer(job.state.v), 'EX', BLOB_TTL_S);
        return m.exec();
      };
      stored = untilAnswered(store, () => this.closing).then(() => undefined);
      // A failure is not kept: the next job of this digest stores the values afresh.
      stored.catch(() => this.blobs.delete(k));
      this.blobs.set(k, stored);
    }
    return stored;
  }

  // The result as written by a worker, or the reason it cannot be used (checked again, in full,
  // by ParallelExecutor against the job it answers).
  private async readResult(resultKey: string, spec: RunSpec): Promise<JobResult | string> {
    // One round trip: the size, at most one byte more than any result can need (so an oversized
    // one is refused without fetching it all), and the key deleted.
    const most = MAX_RESULT_OVERHEAD + MAX_TASKS_PER_RESULT * 4 * spec.learner.layout.size * 4;
    // Cut off by an outage, it is sent again; if the first one had reached Redis, the result is
    // gone and the job runs again ('no result was written').
    const read = () => this.client.multi().strlen(resultKey).getrangeBuffer(resultKey, 0, most).del(resultKey).exec();
    const [[, length], [, bytes]] = (await untilAnswered(read, () => this.closing)) as [[unknown, number], [unknown, Buffer]];
    if (length === 0) return 'no result was written';
    if (length > most) return `the result is ${length} bytes, more than any job of this model can need (${most})`;
    return decodeResult(bytes, spec.learner.layout.size);
  }

}
