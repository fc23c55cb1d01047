import { Queue, QueueEvents, UnrecoverableError, Worker, type Job } from 'bullmq';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import { ReptileError, UsageError } from '../_utils/errors.js';
import { BlobVerdicts, checkJob, type JobResult, type RunSpec, type TaskJob, type TaskOutcome } from './job.js';
import { ParallelExecutor, type JobTransport, type ParallelExecutorOptions, type ResultCheck } from './parallel.js';
import { JobRunner, type SourceContext } from './runtime.js';

/** The set of runs a coordinator is serving; workers watch it to find queues to work on. */
export const RUNS_KEY = 'reptile:runs';
/** Largest run spec (model topology and task source) a worker reads. */
export const MAX_SPEC_BYTES = 4 << 20;
/** How long φ, states and results stay in Redis when nobody deletes them (seconds). */
const BLOB_TTL_S = 6 * 3600;
/** How often a coordinator looks at a job it waits for, besides its events (ms). */
const WATCH_MS = 3000;
/** Times one job may be lost by Redis before the coordinator gives up. */
const MAX_LOSSES = 20;
/** Words a worker fails a job with when φ or the state it names is not in Redis. */
const BLOBS_MISSING = 'not in redis (it restarted empty?)';

/** The BullMQ queue of a run: its name is prefixed by the run id. */
export function queueName(runId: string): string {
  return `reptile-${runId}`;
}

const key = (runId: string, ...parts: string[]): string => ['reptile', runId, ...parts].join(':');

/** What a job on the queue carries: the job's plain fields; φ and the state stay in Redis, once per iteration. */
type BulkJob = Parameters<Queue['addBulk']>[0][number];

interface QueuedJob extends Omit<TaskJob, 'phi' | 'state'> {
  readonly state?: { kind: 'sgd' | 'adam'; step: number; m: boolean; v: boolean };
}

/** Options of a connection to Redis. */
export interface RedisConnectOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS. */
  url: string;
  /** Where reconnections are reported (one line each). Default: stderr. */
  log?: (line: string) => void;
  /** Who is connecting, in log lines (`coordinator`, `worker`). */
  role: string;
}

/** The URL with its password hidden, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * Opens a connection and checks it once, so a wrong URL, password or ACL user fails at once with
 * one line; afterwards the connection reconnects with back-off (up to 5 s between tries) and says
 * so once when it is lost and once when it is back.
 */
export async function connectRedis(options: RedisConnectOptions): Promise<Redis> {
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new UsageError(`--redis '${redactUrl(options.url)}' is not a URL: use redis://[user:password@]host:port or rediss://… for TLS`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new UsageError(`--redis must start with redis:// or rediss:// (TLS), not ${url.protocol}//`);
  const shown = redactUrl(options.url);
  const redisOptions: RedisOptions = { maxRetriesPerRequest: null, enableReadyCheck: true, lazyConnect: true, retryStrategy: () => null };
  const client = new Redis(options.url, redisOptions);
  let firstError: Error | undefined;
  const remember = (e: Error) => void (firstError ??= e);
  client.on('error', remember);
  try {
    await client.connect();
    await client.ping();
    // An ACL user without access to the library's keys is told now, not at the first job.
    await client.exists(RUNS_KEY);
  } catch (e) {
    client.disconnect();
    // ioredis reports an AUTH failure as a closed connection; the error event has the reason.
    const m = (firstError ?? (e as Error)).message;
    if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test(m)) throw new UsageError(`redis at ${shown} refused the credentials (${m.split('\n')[0]}): check the user and password in --redis`);
    if (/certificate|CERT_|SSL|TLS/i.test(m)) throw new UsageError(`the TLS certificate of redis at ${shown} was refused (${m.split('\n')[0]}): add its CA with NODE_EXTRA_CA_CERTS=ca.pem, or fix --redis`);
    if (/NOPERM/i.test(m)) throw new UsageError(`the redis user in --redis may not run the commands a ${options.role} needs (${m.split('\n')[0]}): grant it ~reptile:* and ~bull:reptile-* (see docs/distributed.md)`);
    throw new UsageError(`cannot reach redis at ${shown} (${m.split('\n')[0] || 'connection closed'}): start redis-server there or fix --redis`);
  }
  client.off('error', remember);
  // From here on, reconnect for ever with back-off, and say so once per outage.
  client.options.retryStrategy = (times: number) => Math.min(100 * 2 ** Math.min(times, 6), 5000);
  let down = false;
  client.on('error', (e: Error) => {
    if (!down) {
      down = true;
      log(`reptile ${options.role}: lost redis at ${shown} (${e.message.split('\n')[0]}); reconnecting with back-off`);
    }
  });
  client.on('ready', () => {
    if (down) {
      down = false;
      log(`reptile ${options.role}: reconnected to redis at ${shown}`);
    }
  });
  return client;
}

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
  private readonly blobs = new Map<string, Promise<void>>();
  private readonly adds = new Map<Queue, { job: BulkJob; resolve: (j: Job) => void; reject: (e: unknown) => void }[]>();

  constructor(client: Redis, options: RedisExecutorOptions) {
    this.client = client;
    this.options = options;
  }

  async submit(spec: RunSpec, job: TaskJob, check: ResultCheck): Promise<JobResult> {
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
      const queued = await this.add(run.queue, { name: job.kind, data, opts: { jobId: id, removeOnComplete: { age: 600 }, removeOnFail: { age: 3600 }, attempts: 1 } });
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

  async close(): Promise<void> {
    for (const [runId, pending] of this.runs) {
      const run = await pending.catch(() => undefined);
      if (run === undefined) continue;
      await this.client.srem(RUNS_KEY, runId).catch(() => {});
      await run.events.close();
      await run.queue.close();
    }
    this.runs.clear();
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
          queue.addBulk(batch.map((b) => b.job)).then(
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
    const connection = this.client.duplicate();
    connection.on('error', () => {});
    this.connections.push(connection);
    const queue = new Queue(queueName(spec.runId), { connection });
    // Every job of a meta-batch (or an evaluation) waits on the queue at once.
    queue.setMaxListeners(0);
    const eventsConnection = this.client.duplicate();
    eventsConnection.on('error', () => {});
    this.connections.push(eventsConnection);
    const events = new QueueEvents(queueName(spec.runId), { connection: eventsConnection });
    events.on('error', () => {});
    queue.on('error', () => {});
    await events.waitUntilReady();
    // A restarted coordinator starts from clean queues: jobs of the run before it are dropped.
    await queue.pause();
    await queue.obliterate({ force: true });
    await queue.resume();
    await this.announce(spec);
    return { queue, events };
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
      const m = this.client.multi().expire(key(runId, 'spec'), BLOB_TTL_S * 4).sadd(RUNS_KEY, runId).set(k, asBuffer(job.phi), 'EX', BLOB_TTL_S);
      if (job.state?.m) m.set(key(runId, 'm', job.digest), asBuffer(job.state.m), 'EX', BLOB_TTL_S);
      if (job.state?.v) m.set(key(runId, 'v', job.digest), asBuffer(job.state.v), 'EX', BLOB_TTL_S);
      stored = m.exec().then(() => undefined);
      this.blobs.clear();
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
    const [[, length], [, bytes]] = (await this.client.multi().strlen(resultKey).getrangeBuffer(resultKey, 0, most).del(resultKey).exec()) as [[unknown, number], [unknown, Buffer]];
    if (length === 0) return 'no result was written';
    if (length > most) return `the result is ${length} bytes, more than any job of this model can need (${most})`;
    return decodeResult(bytes, spec.learner.layout.size);
  }

}

/** The same bytes as a Buffer, without copying them. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Options of {@link runRedisWorker}. */
export interface RedisWorkerOptions extends SourceContext {
  url: string;
  /** Jobs this process runs at once (each on its own learner). Default 1. */
  concurrency?: number;
  /** Only the runs of this id (a coordinator's `--run-id`, the prefix of the run's id); default every run announced. */
  runId?: string;
  /** How long a job's lock lasts before a silent worker's job is handed to another (ms). Default 10000. */
  lockMs?: number;
  signal?: AbortSignal;
  /** Where progress and fallback notices go, one line at a time (default: nowhere). */
  log?: (line: string) => void;
}

/**
 * `reptile worker`: takes jobs from the queues of the runs coordinators announce, checks each
 * one (known run, sizes, finite values, digest, the data's fingerprint), runs it with a
 * `JobRunner` and writes the result back as binary. A rejected job is logged with its reason and
 * failed without running; nothing in a job is executed. Returns when `signal` aborts.
 */
export async function runRedisWorker(options: RedisWorkerOptions): Promise<void> {
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const client = await connectRedis({ url: options.url, role: 'worker', log });
  const runner = new JobRunner({ ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}), ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}), log });
  // A run this worker cannot or will not work on is kept as undefined, so it is not tried again.
  const workers = new Map<string, Worker | undefined>();
  const connections = new Map<string, Redis>();
  const lockMs = options.lockMs ?? 10_000;
  const shown = redactUrl(options.url);
  log(`reptile worker: waiting for runs on ${shown}`);

  const startRun = async (runId: string): Promise<void> => {
    const raw = await client.getBuffer(key(runId, 'spec'));
    if (raw === null) return;
    const spec = raw.length <= MAX_SPEC_BYTES ? (parseJson(raw.toString('utf8')) as RunSpec | undefined) : undefined;
    const problem = checkSpec(spec, runId);
    if (problem !== undefined) {
      log(`reptile worker: ignoring run ${runId}: ${problem}`);
      workers.set(runId, undefined);
      return;
    }
    try {
      await runner.prepare(spec!);
    } catch (e) {
      log(`reptile worker: cannot work on run ${runId}: ${(e as Error).message}`);
      workers.set(runId, undefined);
      return;
    }
    const connection = client.duplicate();
    connection.on('error', () => {});
    connections.set(runId, connection);
    const worker = new Worker(queueName(runId), (job: Job) => processJob(job, spec!), {
      connection,
      concurrency: options.concurrency ?? 1,
      lockDuration: lockMs,
      stalledInterval: Math.max(500, Math.floor(lockMs / 2)),
      maxStalledCount: 1000,
    });
    worker.on('error', () => {});
    workers.set(runId, worker);
    log(`reptile worker: working on run ${runId} (${String(spec!.source['task'])}, ${spec!.learner.kind} learner)`);
  };

  const verdicts = new BlobVerdicts();
  let lastBlobs: { runId: string; digest: string; phi: Buffer; m: Buffer | undefined; v: Buffer | undefined } | undefined;
  const processJob = async (job: Job, spec: RunSpec): Promise<string> => {
    try {
      return await computeJob(job, spec);
    } catch (e) {
      if (e instanceof UnrecoverableError) log(`reptile worker: job ${String(job.id)} of run ${spec.runId}: ${e.message}; the coordinator stores them again`);
      if (!(e instanceof Rejected)) throw e;
      log(`reptile worker: rejected job ${String(job.id)} of run ${spec.runId}: ${e.message}`);
      throw new UnrecoverableError(`rejected by the worker: ${e.message}`);
    }
  };

  const computeJob = async (job: Job, spec: RunSpec): Promise<string> => {
    const data = job.data as QueuedJob;
    if (typeof data !== 'object' || data === null) throw new Rejected('the job is not an object');
    // φ and the state are the same for every task of a meta-iteration: read them once, in one
    // round trip, and never more than the model's size (plus one byte, to tell a longer value).
    const digest = String(data.digest);
    let blobs = lastBlobs?.runId === spec.runId && lastBlobs.digest === digest ? lastBlobs : undefined;
    if (blobs === undefined) {
      const size = spec.learner.layout.size * 4;
      const names = ['phi', ...(data.state?.m === true ? ['m'] : []), ...(data.state?.v === true ? ['v'] : [])];
      const read = client.multi();
      for (const name of names) read.strlen(key(spec.runId, name, digest)).getrangeBuffer(key(spec.runId, name, digest), 0, size);
      const replies = ((await read.exec()) ?? []) as [Error | null, unknown][];
      const got: Record<string, Buffer | undefined> = {};
      names.forEach((name, i) => {
        const [[e1, length], [e2, bytes]] = [replies[2 * i] ?? [new Error('no reply'), 0], replies[2 * i + 1] ?? [new Error('no reply'), undefined]];
        if (e1 || e2) throw e1 ?? e2;
        if ((length as number) > size) throw new Rejected(`${name} is ${length as number} bytes, more than the model's ${size}`);
        got[name] = (bytes as Buffer).length > 0 ? (bytes as Buffer) : undefined;
      });
      const absent = names.filter((name) => got[name] === undefined);
      // Redis restarted empty after the coordinator stored them: it stores them again and queues the job anew.
      if (absent.length > 0) throw new UnrecoverableError(`${absent.join(' and ')} of meta-iteration ${String(data.iteration)} ${BLOBS_MISSING}`);
      blobs = { runId: spec.runId, digest, phi: got['phi']!, m: got['m'], v: got['v'] };
      lastBlobs = blobs;
    }
    const { phi, m, v } = blobs;
    const full = {
      ...data,
      phi,
      ...(data.state ? { state: { kind: data.state.kind, step: data.state.step, ...(m ? { m } : {}), ...(v ? { v } : {}) } } : {}),
    } as TaskJob;
    const problem = checkJob(full, { spec, verdicts });
    if (problem !== undefined) throw new Rejected(problem);
    const result = await runner.run(spec, full, { transferable: false });
    const resultKey = key(spec.runId, 'result', String(job.id).replace(/-again\d+$/, ''));
    await client.set(resultKey, encodeResult(result), 'EX', BLOB_TTL_S);
    return 'ok';
  };

  const poll = async (): Promise<void> => {
    // --run-id names a run as the coordinator's --run-id does: the prefix of its id.
    const wanted = options.runId;
    const runs = (await client.smembers(RUNS_KEY)).filter((id) => wanted === undefined || id === wanted || id.startsWith(`${wanted}-`));
    for (const runId of runs) if (!workers.has(runId)) await startRun(runId);
    for (const [runId, worker] of workers) {
      if (!runs.includes(runId)) {
        workers.delete(runId);
        if (worker !== undefined) {
          await worker.close();
          connections.get(runId)?.disconnect();
          connections.delete(runId);
          runner.release(runId);
          log(`reptile worker: run ${runId} ended`);
        }
      }
    }
  };

  try {
    while (!options.signal?.aborted) {
      try {
        await poll();
      } catch (e) {
        // Redis away: the connection reconnects and says so; try again next round.
        if (!/Connection is closed|ECONNREFUSED|ECONNRESET|LOADING/i.test((e as Error).message)) throw e;
      }
      await sleep(500, undefined, options.signal ? { signal: options.signal } : {}).catch(() => {});
    }
  } finally {
    for (const w of workers.values()) if (w !== undefined) await w.close().catch(() => {});
    for (const c of connections.values()) c.disconnect();
    runner.dispose();
    client.disconnect();
  }
}

/** Bytes of a result besides its arrays (the JSON header), at most. */
const MAX_RESULT_OVERHEAD = 1 << 20;
/** Tasks in one result, at most: an evaluation job's 25 (adapt jobs hold one). */
const MAX_TASKS_PER_RESULT = 25;

/**
 * A result as one binary value: a little-endian u32 header length, the JSON header (every field
 * but the arrays, and which arrays each outcome has), zero padding to a multiple of 4, then the
 * arrays one after another. One value is one round trip and one buffer, and the arrays come out
 * as aligned views.
 */
export function encodeResult(result: JobResult): Buffer {
  const arrays: Uint8Array[] = [];
  const outcomes = result.outcomes.map((o) => {
    const parts = ([['p', o.params], ['l', o.lastStep], ['m', o.state?.m], ['v', o.state?.v]] as const).filter(([, a]) => a !== undefined);
    for (const [, a] of parts) arrays.push(a!);
    return { taskIndex: o.taskIndex, loss: o.loss, score: o.score, ...(o.state ? { state: { kind: o.state.kind, step: o.state.step } } : {}), parts: parts.map(([n]) => n).join('') };
  });
  const header = Buffer.from(JSON.stringify({ runId: result.runId, kind: result.kind, iteration: result.iteration, digest: result.digest, layoutHash: result.layoutHash, outcomes }), 'utf8');
  const start = Math.ceil((4 + header.length) / 4) * 4;
  const out = Buffer.alloc(start + arrays.reduce((n, a) => n + a.byteLength, 0));
  out.writeUInt32LE(header.length, 0);
  header.copy(out, 4);
  let at = start;
  for (const a of arrays) {
    out.set(a, at);
    at += a.byteLength;
  }
  return out;
}

/** The result in `bytes` (see {@link encodeResult}), or why it cannot be read; `size` floats per array. */
export function decodeResult(bytes: Buffer, size: number): JobResult | string {
  if (bytes.length < 4) return 'the result is truncated';
  const headerLength = bytes.readUInt32LE(0);
  if (headerLength > MAX_RESULT_OVERHEAD || 4 + headerLength > bytes.length) return 'the result header is malformed';
  const meta = parseJson(bytes.toString('utf8', 4, 4 + headerLength)) as { runId?: unknown; kind?: unknown; iteration?: unknown; digest?: unknown; layoutHash?: unknown; outcomes?: unknown } | undefined;
  if (typeof meta !== 'object' || meta === null || !Array.isArray(meta.outcomes)) return 'the result is not readable';
  // Aligned views into one fresh buffer (a Buffer this large never comes from Node's shared pool).
  const body = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = Math.ceil((4 + headerLength) / 4) * 4;
  const take = (): Uint8Array | undefined => {
    if (at + size * 4 > body.byteLength) return undefined;
    const a = body.subarray(at, at + size * 4);
    at += size * 4;
    return a;
  };
  const outcomes: TaskOutcome[] = [];
  for (const o of meta.outcomes as Record<string, unknown>[]) {
    if (typeof o !== 'object' || o === null || typeof o['parts'] !== 'string' || !/^p?l?m?v?$/.test(o['parts'])) return 'an outcome of the result is malformed';
    const parts = o['parts'];
    const got: Record<string, Uint8Array> = {};
    for (const p of parts) {
      const a = take();
      if (a === undefined) return 'the result is shorter than its header says';
      got[p] = a;
    }
    const state = o['state'] as { kind: 'sgd' | 'adam'; step: number } | undefined;
    outcomes.push({
      taskIndex: o['taskIndex'] as number,
      ...(o['loss'] !== undefined ? { loss: o['loss'] as number } : {}),
      ...(o['score'] !== undefined ? { score: o['score'] as number } : {}),
      ...(got['p'] ? { params: got['p'] } : {}),
      ...(got['l'] ? { lastStep: got['l'] } : {}),
      ...(state ? { state: { kind: state.kind, step: state.step, ...(got['m'] ? { m: got['m'] } : {}), ...(got['v'] ? { v: got['v'] } : {}) } } : {}),
    });
  }
  if (at !== body.byteLength) return `the result holds ${body.byteLength - at} bytes more than its header says`;
  return { runId: meta.runId as string, kind: meta.kind as 'adapt', iteration: meta.iteration as number, digest: meta.digest as string, layoutHash: meta.layoutHash as string, outcomes };
}

/** A job the worker refuses to run; its message is the reason. */
class Rejected extends Error {}

function checkSpec(spec: RunSpec | undefined, runId: string): string | undefined {
  if (typeof spec !== 'object' || spec === null) return 'its spec is not readable JSON (or larger than 4 MiB)';
  if (spec.runId !== runId) return `its spec names run '${String(spec.runId)}'`;
  const l = spec.learner as Partial<RunSpec['learner']> | undefined;
  if (typeof l !== 'object' || l === null) return 'its spec has no learner';
  if (l.kind !== 'native' && l.kind !== 'tfjs') return `unknown learner kind '${String(l.kind)}'`;
  if (l.innerState !== 'shared' && l.innerState !== 'reset' && l.innerState !== 'carry') return `unknown inner-state policy '${String(l.innerState)}'`;
  if (typeof l.layout !== 'object' || l.layout === null || !Number.isSafeInteger(l.layout.size) || l.layout.size < 1 || l.layout.size > 1 << 28 || typeof l.layout.hash !== 'string') return 'its layout is malformed';
  if (typeof l.modelTopology !== 'object' || l.modelTopology === null) return 'its model topology is not an object';
  if (typeof l.backend !== 'string' || !['cpu', 'wasm', 'tensorflow'].includes(l.backend)) return `unknown tfjs backend '${String(l.backend)}'`;
  if (typeof spec.source !== 'object' || spec.source === null) return 'its task source is not an object';
  return undefined;
}
