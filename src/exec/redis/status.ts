import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { bullConnection, key, queueName, RUNS_KEY } from './connection.js';
import { MAX_SPEC_BYTES, parseJson } from './codec.js';

/** Events of a run's queue that {@link readRunStatus} looks back over (its stream keeps about 1,000). */
const EVENTS_READ = 1000;
/** The window over which jobs per second are counted (ms). */
const RATE_WINDOW_MS = 60_000;

/** One run on a Redis, as `reptile status` shows it. */
export interface RunStatus {
  readonly runId: string;
  /** The task family and learner of the run's spec, when Redis still holds it. */
  readonly task: string | undefined;
  readonly learner: string | undefined;
  /** Worker processes connected to the run's queue (BullMQ's named connections): name (host:pid) and address. */
  readonly workers: readonly { name: string; addr: string }[];
  readonly waiting: number;
  readonly active: number;
  /** Jobs completed per second over the last minute of the queue's event stream. */
  readonly jobsPerSecond: number;
  /** Jobs handed to another worker after their worker went silent (stalled), in the events kept. */
  readonly redeliveries: number;
  /** The last jobs that failed, newest first: id and reason. */
  readonly lastErrors: readonly { jobId: string; reason: string }[];
}

/**
 * What a Redis holds of the runs coordinators announced: for each, its workers, queue, rate,
 * redeliveries and last failures. Reads only what coordinators and workers already write (the
 * run set, the run's spec, BullMQ's queue, its event stream and its workers' connection names).
 */
export async function readRunStatus(client: Redis): Promise<RunStatus[]> {
  const runs = (await client.smembers(RUNS_KEY)).sort();
  const [seconds] = (await client.time()) as [number | string, number | string];
  const now = Number(seconds) * 1000;
  const out: RunStatus[] = [];
  for (const runId of runs) {
    const connection = bullConnection(client, false);
    const queue = new Queue(queueName(runId), { connection });
    queue.on('error', () => {});
    try {
      const raw = await client.get(key(runId, 'spec'));
      const spec = raw !== null && raw.length <= MAX_SPEC_BYTES ? (parseJson(raw) as { source?: { task?: unknown }; learner?: { kind?: unknown } } | undefined) : undefined;
      const counts = await queue.getJobCounts('waiting', 'active', 'prioritized');
      const workers = (await queue.getWorkers()).map((w) => ({ name: workerName(w['rawname'] ?? w['name'] ?? ''), addr: w['addr'] ?? '' }));
      const events = (await client.xrevrange(`bull:${queueName(runId)}:events`, '+', '-', 'COUNT', EVENTS_READ)) as [string, string[]][];
      let completed = 0;
      let stalled = 0;
      const lastErrors: { jobId: string; reason: string }[] = [];
      for (const [id, fields] of events) {
        const f = fieldsOf(fields);
        if (f['event'] === 'completed' && now - Number(id.split('-')[0]) <= RATE_WINDOW_MS) completed++;
        else if (f['event'] === 'stalled') stalled++;
        else if (f['event'] === 'failed' && lastErrors.length < 3) lastErrors.push({ jobId: f['jobId'] ?? '?', reason: (f['failedReason'] ?? '').split('\n')[0]! });
      }
      out.push({
        runId,
        task: typeof spec?.source?.task === 'string' ? spec.source.task : undefined,
        learner: typeof spec?.learner?.kind === 'string' ? spec.learner.kind : undefined,
        workers: dedupe(workers),
        waiting: (counts['waiting'] ?? 0) + (counts['prioritized'] ?? 0),
        active: counts['active'] ?? 0,
        jobsPerSecond: completed / (RATE_WINDOW_MS / 1000),
        redeliveries: stalled,
        lastErrors,
      });
    } finally {
      await queue.close();
      connection.disconnect();
    }
  }
  return out;
}

function fieldsOf(list: string[]): Record<string, string> {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < list.length; i += 2) f[list[i]!] = list[i + 1]!;
  return f;
}

// BullMQ names a worker's connections `bull:<queue, base64>:w:<worker name>`; the name is what follows.
function workerName(name: string): string {
  const i = name.indexOf(':w:');
  return i >= 0 ? name.slice(i + 3) : name;
}

// A worker has a connection for commands and one for blocking reads: one line per process.
function dedupe(workers: { name: string; addr: string }[]): { name: string; addr: string }[] {
  const seen = new Map<string, { name: string; addr: string }>();
  for (const w of workers) if (!seen.has(w.name || w.addr)) seen.set(w.name || w.addr, w);
  return [...seen.values()].sort((a, b) => a.name.localeCompare(b.name));
}
