import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidOptionsError } from '../../_utils/errors.js';
import { BlobVerdicts, checkJob, type RunSpec, type TaskJob } from '../job.js';
import { describeValue } from '../../_utils/checks.js';
import { JobRunner, type SourceContext } from '../runtime.js';
import { BLOBS_MISSING, checkSpec, encodeResult, MAX_SPEC_BYTES, parseJson, type QueuedJob } from './codec.js';
import { BLOB_TTL_S, bullConnection, connectRedis, key, queueName, redactUrl, RUNS_KEY, untilAnswered } from './connection.js';

/** A job the worker refuses to run; its message is the reason. */
class Rejected extends Error {}

/** How long a BullMQ worker may take to close once no job of it runs, before it is dropped (ms). */
const CLOSE_MS = 3000;

/**
 * Writes a job's result only while this worker still holds the job's lock (BullMQ's
 * `bull:<queue>:<job id>:lock` holds the token of the worker running it): a worker cut off long
 * enough for its job to be handed to another leaves nothing behind when it finishes late.
 */
const WRITE_IF_LOCKED = `if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) return 1 end return 0`;

/**
 * Deletes a queue's `meta` hash unless its run is announced again or the queue is paused.
 * BullMQ's stalled-job check writes it back (`opts.maxLenEvents`) when it runs after the
 * coordinator obliterated the queue of a run that ended; each worker deletes it once its own
 * BullMQ worker for the run is closed. A paused queue is one the coordinator is obliterating
 * (BullMQ's obliterate needs `paused` in `meta` until its last batch deletes it): left alone.
 */
const DROP_ENDED_META = `if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 and redis.call('HEXISTS', KEYS[2], 'paused') == 0 then return redis.call('DEL', KEYS[2]) end return 0`;

/**
 * Reads blobs (φ and the moments of a meta-iteration) in one transaction, each at most `size`
 * bytes (plus one, to tell a longer value: that is a RangeError). An absent key reads as
 * undefined. A transaction cut off half answered ("Command aborted due to connection close") is
 * sent again once the connection is back, until `stop()` says the worker is closing.
 */
export async function readBlobs(client: Redis, keys: string[], size: number, stop: () => boolean): Promise<(Buffer | undefined)[]> {
  const replies = await untilAnswered(async () => {
    const read = client.multi();
    for (const k of keys) read.strlen(k).getrangeBuffer(k, 0, size);
    return ((await read.exec()) ?? []) as [Error | null, unknown][];
  }, stop);
  return keys.map((k, i) => {
    const [[e1, length], [e2, bytes]] = [replies[2 * i] ?? [new Error('no reply'), 0], replies[2 * i + 1] ?? [new Error('no reply'), undefined]];
    if (e1 || e2) throw e1 ?? e2;
    if ((length as number) > size) throw new RangeError(`${k.split(':').at(-2) ?? k} is ${length as number} bytes, more than the model's ${size}`);
    return (bytes as Buffer).length > 0 ? (bytes as Buffer) : undefined;
  });
}

/** How often a worker looks for queue `meta` hashes that killed workers left behind, by default (ms). */
const SWEEP_MS = 10_000;

/** Errors of a connection that is away; it reconnects and says so, and the worker tries again. */
const TRANSIENT = /Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Socket timeout|LOADING|Stream isn't writeable/i;

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
  /**
   * For testing only: a factor ≥ 1 by which this worker is made slower, by sleeping
   * (`slowdown` − 1) × the time each job took it (reading φ and computing) before answering
   * (an uneven cluster on one machine). Default 1.
   */
  slowdown?: number;
  /** How often to look for queue `meta` hashes killed workers left (ms). Default 10000. */
  sweepMs?: number;
}

/**
 * `reptile worker`: takes jobs from the queues of the runs coordinators announce, checks each
 * one (known run, sizes, finite values, digest, the data's fingerprint), runs it with a
 * `JobRunner` and writes the result back as binary. A rejected job is logged with its reason and
 * failed without running; nothing in a job is executed. Returns when `signal` aborts.
 */
export async function runRedisWorker(options: RedisWorkerOptions): Promise<void> {
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const lockMs = options.lockMs ?? 10_000;
  const slowdown = options.slowdown ?? 1;
  if (typeof slowdown !== 'number' || !(slowdown >= 1 && slowdown <= 1000)) throw new InvalidOptionsError(`\`slowdown\` must be a number from 1 to 1000, got ${String(slowdown)}`, { option: 'slowdown' });
  // After an outage longer than a job's lock, every job this process held has been handed to
  // another worker, and BullMQ's connections may be wedged (a blocking read on a socket that died
  // half-open): the BullMQ workers are closed and opened afresh.
  let renew = false;
  const client = await connectRedis({ url: options.url, role: 'worker', log, onReconnect: (outageMs) => void (renew ||= outageMs >= lockMs) });
  const runner = new JobRunner({ ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}), ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}), log });
  // A run this worker cannot or will not work on is kept as undefined, so it is not tried again.
  const workers = new Map<string, Worker | undefined>();
  const connections = new Map<string, Redis>();
  /** Jobs of this process running now. */
  let active = 0;
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
    const connection = bullConnection(client, true);
    connections.set(runId, connection);
    const worker = new Worker(queueName(runId), (job: Job, token?: string) => processJob(job, token, spec!), {
      connection,
      concurrency: options.concurrency ?? 1,
      lockDuration: lockMs,
      stalledInterval: Math.max(500, Math.floor(lockMs / 2)),
      maxStalledCount: 1000,
      // What `reptile status` lists this process as.
      name: `${hostname()}:${process.pid}`,
    });
    worker.on('error', () => {});
    workers.set(runId, worker);
    log(`reptile worker: working on run ${runId} (${describeValue(spec!.source['task'])}, ${spec!.learner.kind} learner)`);
  };

  /** Whether the worker is being stopped: a read or write that is not answered is then given up. */
  const stopping = (): boolean => options.signal?.aborted === true;
  const verdicts = new BlobVerdicts();
  let lastBlobs: { runId: string; digest: string; phi: Buffer; m: Buffer | undefined; v: Buffer | undefined } | undefined;
  const processJob = async (job: Job, token: string | undefined, spec: RunSpec): Promise<string> => {
    active++;
    try {
      return await computeJob(job, token, spec);
    } catch (e) {
      if (e instanceof UnrecoverableError) log(`reptile worker: job ${String(job.id)} of run ${spec.runId}: ${e.message}; the coordinator stores them again`);
      if (!(e instanceof Rejected)) throw e;
      log(`reptile worker: rejected job ${String(job.id)} of run ${spec.runId}: ${e.message}`);
      throw new UnrecoverableError(`rejected by the worker: ${e.message}`);
    } finally {
      active--;
    }
  };

  const computeJob = async (job: Job, token: string | undefined, spec: RunSpec): Promise<string> => {
    const began = performance.now();
    const data = job.data as QueuedJob;
    if (typeof data !== 'object' || data === null) throw new Rejected('the job is not an object');
    // φ and the state are the same for every task of a meta-iteration: read them once, in one
    // round trip, and never more than the model's size (plus one byte, to tell a longer value).
    // A forged job's fields are checked by checkJob; the digest names its blobs, so it is looked at first.
    if (typeof data.digest !== 'string') throw new Rejected('the job has no digest');
    const digest = data.digest;
    let blobs = lastBlobs?.runId === spec.runId && lastBlobs.digest === digest ? lastBlobs : undefined;
    if (blobs === undefined) {
      const size = spec.learner.layout.size * 4;
      const names = ['phi', ...(data.state?.m === true ? ['m'] : []), ...(data.state?.v === true ? ['v'] : [])];
      const got = await readBlobs(client, names.map((name) => key(spec.runId, name, digest)), size, stopping).catch((e: unknown) => {
        throw e instanceof RangeError ? new Rejected(e.message) : e;
      });
      const byName = Object.fromEntries(names.map((name, i) => [name, got[i]]));
      const absent = names.filter((name) => byName[name] === undefined);
      // Redis restarted empty after the coordinator stored them: it stores them again and queues the job anew.
      if (absent.length > 0) throw new UnrecoverableError(`${absent.join(' and ')} of meta-iteration ${describeValue(data.iteration)} ${BLOBS_MISSING}`);
      blobs = { runId: spec.runId, digest, phi: byName['phi']!, m: byName['m'], v: byName['v'] };
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
    if (slowdown > 1) await sleep((slowdown - 1) * (performance.now() - began));
    const resultKey = key(spec.runId, 'result', String(job.id).replace(/-again\d+$/, ''));
    const lockKey = `bull:${queueName(spec.runId)}:${String(job.id)}:lock`;
    // Writing the result is safe to repeat: sent until answered, so that a link cut mid-write
    // leaves the job to be finished here (or found late, if its lock expired meanwhile).
    const encoded = encodeResult(result);
    const written = await untilAnswered(() => client.eval(WRITE_IF_LOCKED, 2, resultKey, lockKey, encoded, token ?? '', BLOB_TTL_S), stopping);
    if (written !== 1) {
      log(`reptile worker: job ${String(job.id)} of run ${spec.runId} was handed to another worker while this one ran it (its lock expired); its result is dropped`);
      return 'late';
    }
    return 'ok';
  };

  /**
   * Closes a BullMQ worker: waits for the jobs of this process to end (a stop comes "after the
   * current job"), then gives BullMQ a few seconds and drops its connection whether or not it
   * has closed, so that a worker wedged on a dead connection never holds the process.
   */
  const stopWorker = async (runId: string, worker: Worker): Promise<void> => {
    while (active > 0) await sleep(100);
    const closed = worker.close().then(
      () => true,
      () => true,
    );
    if (!(await Promise.race([closed, sleep(CLOSE_MS).then(() => false)]))) void worker.close(true).catch(() => {});
    connections.get(runId)?.disconnect();
    connections.delete(runId);
  };

  /**
   * Deletes the `meta` hashes of queues whose run ended but whose worker was killed before it
   * could delete its own (see DROP_ENDED_META): any live worker cleans up after a dead one. The
   * keys are scanned one SCAN call per round of the loop (so a large Redis costs a little each
   * round, never a burst), and a pass starts at most every `sweepMs`. A hash is deleted only when
   * two passes in a row find it with its run unannounced, so a coordinator opening its queue (it
   * announces the run just after) is never touched.
   */
  let previousPass = new Set<string>();
  let thisPass = new Set<string>();
  let cursor = '0';
  let passBegan = -Infinity;
  let sweepRefused = false;
  const sweep = async (): Promise<void> => {
    if (cursor === '0') {
      if (performance.now() - passBegan < (options.sweepMs ?? SWEEP_MS)) return;
      passBegan = performance.now();
    }
    const [next, keys] = await client.scan(cursor, 'MATCH', `bull:${queueName('*')}:meta`, 'COUNT', 1000);
    for (const k of keys) thisPass.add(k);
    cursor = next;
    if (cursor !== '0') return;
    const seen = previousPass;
    previousPass = thisPass;
    thisPass = new Set();
    for (const k of previousPass) {
      const runId = k.slice(`bull:${queueName('')}`.length, -':meta'.length);
      if (workers.has(runId) || !seen.has(k)) continue;
      if ((await client.eval(DROP_ENDED_META, 2, RUNS_KEY, k, runId)) === 1) previousPass.delete(k);
    }
  };

  const poll = async (): Promise<void> => {
    // --run-id names a run as the coordinator's --run-id does: the prefix of its id.
    const wanted = options.runId;
    const runs = (await client.smembers(RUNS_KEY)).filter((id) => wanted === undefined || id === wanted || id.startsWith(`${wanted}-`));
    if (renew) {
      renew = false;
      for (const [runId, worker] of workers) {
        if (worker === undefined || !runs.includes(runId)) continue;
        log(`reptile worker: reopening the queue of run ${runId} after the outage`);
        workers.delete(runId);
        await stopWorker(runId, worker);
      }
    }
    for (const runId of runs) if (!workers.has(runId)) await startRun(runId);
    for (const [runId, worker] of workers) {
      if (!runs.includes(runId)) {
        workers.delete(runId);
        if (worker !== undefined) {
          await stopWorker(runId, worker);
          await client.eval(DROP_ENDED_META, 2, RUNS_KEY, `bull:${queueName(runId)}:meta`, runId).catch(() => {});
          runner.release(runId);
          log(`reptile worker: run ${runId} ended`);
        }
      } else if (worker !== undefined && !worker.isRunning() && !worker.closing) {
        // BullMQ's loop ended on its own (an error it could not get past): start afresh.
        log(`reptile worker: the queue of run ${runId} stopped taking jobs; reopening it`);
        workers.delete(runId);
        await stopWorker(runId, worker);
      }
    }
  };

  try {
    while (!options.signal?.aborted) {
      try {
        await poll();
        // The sweep is housekeeping: an error of its own (a user whose ACL forbids SCAN) is said once, not fatal.
        await sweep().catch((e: unknown) => {
          if (TRANSIENT.test((e as Error).message) || sweepRefused) return;
          sweepRefused = true;
          log(`reptile worker: cannot look for queue hashes that killed workers left (${(e as Error).message}); going on without`);
        });
      } catch (e) {
        // Redis away: the connection reconnects and says so; try again next round.
        if (!TRANSIENT.test((e as Error).message) && client.status === 'ready') throw e;
      }
      await sleep(500, undefined, options.signal ? { signal: options.signal } : {}).catch(() => {});
    }
  } finally {
    for (const [runId, w] of workers) if (w !== undefined) await stopWorker(runId, w);
    for (const c of connections.values()) c.disconnect();
    runner.dispose();
    client.disconnect();
  }
}
