import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, RUNS_KEY } from '../src/exec/redis/connection.js';
import { runRedisWorker } from '../src/exec/redis/worker.js';
import { redisSkipReason, startRedis, type TestRedis } from './helpers/redis.js';

// A worker SIGKILLed just after BullMQ's stalled-job check wrote its queue's `meta` hash back
// (the run had ended and its queue was obliterated) left that hash in Redis for good. Any live
// worker now deletes such a hash once two of its sweeps find it with its run ended.
describe.skipIf(redisSkipReason !== undefined)("a queue's meta hash left by a killed worker", () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis({ persistent: false });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it("is deleted by another worker, while a live run's and a paused queue's are left alone", async () => {
    const client = await connectRedis({ url: redis.url, role: 'coordinator', log: () => {} });
    const meta = (runId: string) => `bull:reptile-${runId}:meta`;
    await client.hset(meta('rended'), 'opts.maxLenEvents', '10000');
    // A run still announced (its coordinator is at work), and a queue being obliterated (paused).
    await client.sadd(RUNS_KEY, 'rlive');
    await client.hset(meta('rlive'), 'opts.maxLenEvents', '10000');
    await client.hset(meta('rpaused'), 'paused', '1');
    // Someone else's hash that only looks alike is not ours to touch.
    await client.hset('bull:other-queue:meta', 'opts.maxLenEvents', '10000');
    const stop = new AbortController();
    const lines: string[] = [];
    const worker = runRedisWorker({ url: redis.url, signal: stop.signal, sweepMs: 300, log: (l) => lines.push(l) });
    try {
      const until = Date.now() + 20_000;
      while ((await client.exists(meta('rended'))) === 1 && Date.now() < until) await sleep(100);
      expect(await client.exists(meta('rended'))).toBe(0);
      // Two sweeps at least: the first only marks a hash, the second deletes it.
      await sleep(1000);
      expect(await client.exists(meta('rlive'), meta('rpaused'), 'bull:other-queue:meta')).toBe(3);
    } finally {
      stop.abort();
      await worker;
      client.disconnect();
    }
    expect(lines.join('\n')).not.toMatch(/error/i);
  }, 60_000);
});
