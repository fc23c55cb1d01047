import { Command } from 'commander';
import * as fs from 'node:fs';
import { ReptileError, UsageError } from '../../_utils/errors.js';
import { runRedisWorker } from '../../exec/redis.js';
import { intAtLeast, LIMITS, numberIn } from '../parse.js';
import { checkRunId } from '../executor-flags.js';
import { checkCacheDir, checkInputDir } from '../paths.js';
import { probeRedis } from '../redis-probe.js';

const info = (line: string) => process.stderr.write(`${line}\n`);

/** `reptile worker`: a Redis + BullMQ worker that runs the tasks of the coordinators' runs. */
export function workerCommand(): Command {
  return new Command('worker')
    .description('run tasks for coordinators (reptile train|eval --executor redis) from Redis, on this machine')
    .option('--redis <url>', 'the coordinators\' Redis: redis://[user:password@]host:port, rediss:// for TLS')
    .option('--data-dir <dir>', 'this machine\'s copy of the data (default: the directory the run names)')
    .option('--cache-dir <dir>', 'cache of decoded images')
    .option('--concurrency <n>', 'jobs run at once by this process', intAtLeast(1, LIMITS.concurrency), 1)
    .option('--run-id <id>', 'work only on the run the coordinator named so (its --run-id; default: every run announced)')
    .option('--slowdown <factor>', 'for testing only: make this worker factor times slower by sleeping (factor − 1) × the time each task took it before answering', numberIn(1, 1000))
    .option('--lock-ms <ms>', 'how long a job stays locked to a silent worker before another takes it', intAtLeast(500, 86_400_000), 10_000)
    .action(async (flags: { redis?: string; dataDir?: string; cacheDir?: string; concurrency: number; runId?: string; lockMs: number; slowdown?: number }) => {
      if (flags.redis === undefined) throw new UsageError('missing --redis: the URL of the Redis the coordinator uses, e.g. --redis redis://host:6379');
      checkRunId(flags.runId);
      if (flags.dataDir !== undefined && !fs.existsSync(flags.dataDir)) throw new ReptileError(`--data-dir '${flags.dataDir}' does not exist: name this machine's copy of the data, or drop --data-dir to use the folder each run names`);
      checkInputDir(flags.dataDir, '--data-dir');
      checkCacheDir(flags.cacheDir);
      await probeRedis(flags.redis);
      const controller = new AbortController();
      const stop = () => {
        if (controller.signal.aborted) process.exit(130);
        info('reptile worker: stopping after the current job (again to quit at once)');
        controller.abort();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      try {
        await runRedisWorker({
          url: flags.redis,
          concurrency: flags.concurrency,
          lockMs: flags.lockMs,
          ...(flags.slowdown !== undefined ? { slowdown: flags.slowdown } : {}),
          signal: controller.signal,
          log: info,
          ...(flags.dataDir !== undefined ? { dataDir: flags.dataDir } : {}),
          ...(flags.cacheDir !== undefined ? { cacheDir: flags.cacheDir } : {}),
          ...(flags.runId !== undefined ? { runId: flags.runId } : {}),
        });
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
