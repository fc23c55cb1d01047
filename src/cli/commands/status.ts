import { Command } from 'commander';
import { UsageError } from '../../_utils/errors.js';
import { connectRedis, readRunStatus, redactUrl, type RunStatus } from '../../exec/redis.js';
import { printResult } from '../run.js';

/** `reptile status`: the runs on a Redis, their workers, rate, redeliveries and last errors. */
export function statusCommand(): Command {
  return new Command('status')
    .description('show the runs on a Redis: their workers, jobs per second, redeliveries and last errors')
    .option('--redis <url>', 'the coordinators\' Redis: redis://[user:password@]host:port, rediss:// for TLS')
    .option('--json', 'print the runs as JSON on stdout')
    .action(async (flags: { redis?: string; json?: boolean }) => {
      if (flags.redis === undefined) throw new UsageError('missing --redis: the URL of the Redis the coordinators use, e.g. --redis redis://host:6379');
      const client = await connectRedis({ url: flags.redis, role: 'status', log: () => {} });
      try {
        const runs = await readRunStatus(client);
        printResult(flags.json === true, { redis: redactUrl(flags.redis), runs }, () => (runs.length === 0 ? [`no runs on ${redactUrl(flags.redis!)}`] : runs.flatMap(describe)));
      } finally {
        client.disconnect();
      }
    });
}

function describe(run: RunStatus): string[] {
  return [
    `run ${run.runId} (${run.task ?? 'spec gone'}, ${run.learner ?? '?'} learner): ${run.jobsPerSecond.toFixed(2)} jobs/s over the last minute, ${run.waiting} waiting, ${run.active} running, ${run.redeliveries} redelivered`,
    ...(run.workers.length === 0 ? ['  no workers'] : run.workers.map((w) => `  worker ${w.name} at ${w.addr}`)),
    ...run.lastErrors.map((e) => `  failed ${e.jobId}: ${e.reason}`),
  ];
}
