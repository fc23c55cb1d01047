import { Option, type Command } from 'commander';
import { EXECUTOR_NAMES, createExecutor, type ExecutorName } from '../exec/create-executor.js';
import type { AsyncCounters, Executor, SyncMode } from '../exec/executor.js';
import { UsageError } from '../_utils/errors.js';
import { intAtLeast, LIMITS } from './parse.js';
import { probeRedis } from './redis-probe.js';

/** The executor flags of `reptile train` and `reptile eval`. */
export interface ExecutorFlags {
  executor: ExecutorName;
  workers?: number;
  redis?: string;
  runId?: string;
  /** train only: `--sync` and `--max-staleness`. */
  sync?: SyncMode;
  maxStaleness?: number;
}

/** Adds `--executor`, `--workers`, `--redis` and `--run-id`. */
export function addExecutorOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--executor <name>', 'where the tasks run: inline (this thread), threads (a worker-thread pool) or redis (BullMQ workers on any machine)').choices([...EXECUTOR_NAMES]).default('inline'))
    .option('--workers <n>', 'threads: worker threads (default: the number of cores)', intAtLeast(1, LIMITS.concurrency))
    .option('--redis <url>', 'redis: the coordinator\'s Redis, redis://[user:password@]host:port (rediss:// for TLS)')
    .option('--run-id <id>', 'threads, redis: a name for the run, the prefix of its queue (default: a hash of the run)');
}

/** Adds `--sync` and `--max-staleness` (training only: an evaluation has no meta-update). */
export function addSyncOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--sync <mode>', 'threads, redis: sync (every meta-iteration waits for its tasks; bit-identical to inline) or async (each result applied as it arrives, for uneven workers)').choices(['sync', 'async']))
    .option('--max-staleness <n>', 'async: drop and re-run a result computed from a φ more than n updates old (default 2 × --meta-batch)', intAtLeast(0, LIMITS.staleness));
}

/** Refuses `--sync` and `--max-staleness` where they cannot apply, with the way out. */
export function checkSyncFlags(flags: ExecutorFlags): void {
  if (flags.maxStaleness !== undefined && flags.sync !== 'async') throw new UsageError('--max-staleness is for the asynchronous mode: add --sync async, or drop --max-staleness');
  if (flags.sync === 'async' && flags.executor === 'inline') throw new UsageError('--sync async needs workers that run side by side: add --executor threads or --executor redis, or drop --sync');
}

/** Refuses a `--run-id` that cannot name a queue. */
export function checkRunId(runId: string | undefined): void {
  if (runId !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(runId)) {
    throw new UsageError(`--run-id '${runId}' is not a run name: use up to 64 letters, digits, '.', '_' or '-'`);
  }
}

/**
 * The executor the flags ask for (the caller closes it). `checkpointDir`: where a training run
 * checkpoints, so that a resumed run keeps its run id (and its queue on Redis).
 */
export async function openExecutor(flags: ExecutorFlags, log: (line: string) => void, checkpointDir?: string): Promise<Executor> {
  checkRunId(flags.runId);
  checkSyncFlags(flags);
  if (flags.executor === 'redis' && flags.redis !== undefined) await probeRedis(flags.redis);
  return createExecutor({
    executor: flags.executor,
    ...(flags.workers !== undefined ? { workers: flags.workers } : {}),
    ...(flags.redis !== undefined ? { redis: flags.redis } : {}),
    ...(flags.runId !== undefined ? { runId: flags.runId } : {}),
    ...(checkpointDir !== undefined ? { checkpointDir } : {}),
    ...(flags.sync !== undefined ? { sync: flags.sync } : {}),
    ...(flags.maxStaleness !== undefined ? { maxStaleness: flags.maxStaleness } : {}),
    log,
  });
}

/** The asynchronous mode's counters in one line (after a run with --sync async). */
export function asyncSummary(c: AsyncCounters): string {
  return `async: ${c.sent} tasks sent, ${c.applied} results applied, ${c.stale} dropped as stale and run again, ${c.duplicates} duplicates ignored`;
}
