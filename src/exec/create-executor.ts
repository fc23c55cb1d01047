import * as os from 'node:os';
import * as path from 'node:path';
import { checkOptionsObject } from '../_utils/checks.js';
import { InvalidOptionsError } from '../_utils/errors.js';
import type { InnerStatePolicy } from '../learners/learner.js';
import type { Executor, SyncMode } from './executor.js';
import { InlineExecutor } from './inline.js';
import { checkSyncOptions } from './parallel.js';

/** The executors `--executor` names. */
export const EXECUTOR_NAMES = ['inline', 'threads', 'redis'] as const;
/** Where a meta-batch's tasks run: in this thread, on worker threads, or on Redis workers. */
export type ExecutorName = (typeof EXECUTOR_NAMES)[number];

/**
 * The inner-state policy of the parallel executors when none is asked for: `shared`, which in
 * docs/distributed.md's measurements matches `carry` and beats `reset`.
 */
export const PARALLEL_INNER_STATE: InnerStatePolicy = 'shared';

/** Options of {@link createExecutor}. */
export interface CreateExecutorOptions {
  executor?: ExecutorName;
  /** threads: worker threads (default: the number of cores). */
  workers?: number;
  /** redis: the coordinator's Redis URL. */
  redis?: string;
  /** threads, redis: prefix of the run id and the queue's name. */
  runId?: string;
  /**
   * redis: the checkpoint directory of a run that can be resumed. The run id is made of this
   * host's name and the directory's absolute path (besides the learner and the task source), so
   * a resumed run finds its queue again; without it every run gets an id of its own.
   */
  checkpointDir?: string;
  /** threads: where the workers open the data (default: the directory the run names). */
  dataDir?: string;
  cacheDir?: string;
  /** Where progress and fallback notices go, one line at a time (default: nowhere). */
  log?: (line: string) => void;
  /**
   * threads, redis: `async` applies each task's result as it arrives, so a slow worker does not
   * hold every meta-iteration back; not bit-identical to inline (docs/distributed.md). Default `sync`.
   */
  sync?: SyncMode;
  /** async: a result computed from a φ more than this many updates old is dropped and its task run again (default 2 × metaBatch). */
  maxStaleness?: number;
}

/** Builds the executor `--executor` names; threads and redis are loaded only when asked for. */
export async function createExecutor(options: CreateExecutorOptions): Promise<Executor> {
  checkOptionsObject(options, 'createExecutor', "{ executor: 'threads' }");
  const name = options.executor ?? 'inline';
  if (name !== 'redis' && options.redis !== undefined) throw new InvalidOptionsError("`redis` is for the redis executor: set `executor` to 'redis', or drop `redis`", { option: 'redis' });
  if (name !== 'threads' && options.workers !== undefined) throw new InvalidOptionsError("`workers` is for the threads executor: set `executor` to 'threads', or drop `workers` (redis workers are separate `reptile worker` processes)", { option: 'workers' });
  checkSyncOptions(options);
  if (name === 'inline' && options.sync === 'async') throw new InvalidOptionsError("the inline executor runs one task at a time, so it has no asynchronous mode: set `executor` to 'threads' or 'redis', or drop `sync`", { option: 'sync' });
  const common = {
    ...(options.sync !== undefined ? { sync: options.sync } : {}),
    ...(options.maxStaleness !== undefined ? { maxStaleness: options.maxStaleness } : {}),
    ...(options.runId !== undefined ? { runId: options.runId } : {}),
    ...(options.checkpointDir !== undefined ? { runKey: `${os.hostname()}\0${path.resolve(options.checkpointDir)}` } : {}),
  };
  switch (name) {
    case 'inline':
      if (options.maxStaleness !== undefined) throw new InvalidOptionsError("`maxStaleness` is for the asynchronous mode of the threads and redis executors: drop it", { option: 'maxStaleness' });
      return new InlineExecutor();
    case 'threads': {
      const { ThreadsExecutor } = await import('./threads.js');
      return new ThreadsExecutor({ ...common, ...(options.workers !== undefined ? { workers: options.workers } : {}), ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}), ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}) });
    }
    case 'redis': {
      if (options.redis === undefined) throw new InvalidOptionsError("the redis executor needs `redis`, the coordinator's Redis URL, e.g. 'redis://localhost:6379'", { option: 'redis' });
      const { RedisExecutor } = await import('./redis.js');
      return RedisExecutor.connect({ ...common, url: options.redis, ...(options.log ? { log: options.log } : {}) });
    }
    default:
      throw new InvalidOptionsError(`unknown executor '${String(name)}': \`executor\` must be 'inline', 'threads' or 'redis'`, { option: 'executor' });
  }
}

/** The policy a run uses on `executor`: the one asked for, else `shared` on a parallel executor (else the config's default). */
export function innerStateFor(executor: Pick<Executor, 'parallel'> | undefined, asked: InnerStatePolicy | undefined): InnerStatePolicy | undefined {
  return asked ?? (executor?.parallel === true ? PARALLEL_INNER_STATE : undefined);
}
