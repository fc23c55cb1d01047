import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNS_KEY } from '../src/exec/redis.js';
import { makeTemp } from './few-shot/fixtures.js';
import { netnsSkipReason, redisOn, twoHosts } from './helpers/netns.js';
import { checkpointPayload, redisSkipReason, runReptile, spawnReptile, startRedis, type TestRedis, type WorkerProcess } from './helpers/redis.js';
import { busy, logLines } from './helpers/process.js';

// The faults of issue 36 that loopback can show: Redis's memory over a long run, a frozen Redis
// (a partition as the clients see it: connections stay open, nothing answers), a worker cut off
// mid-task that finishes late, and two runs that differ only in their settings.

const sine = (iters: number, extra: string[] = []) => ['train', '--task', 'sine', '--hidden', '16,16', '--meta-iters', String(iters), '--meta-batch', '4', '--inner-state', 'shared', '--eval-samples', '4', '--checkpoint-every', '5', '--json', ...extra];
// Tasks of 2,000 inner steps: a worker stopped at random is almost surely in the middle of one.
const slow = (iters: number, extra: string[] = []) => sine(iters, ['--inner-iters', '2000', ...extra]);

async function keysMatching(client: Redis, pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return out;
}

async function usedMemory(client: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
}

/** Waits for the first run id announced with this prefix. */
async function runIdOf(client: Redis, prefix: string, ms = 60_000): Promise<string> {
  const until = Date.now() + ms;
  for (;;) {
    const id = (await client.smembers(RUNS_KEY)).find((r) => r.startsWith(`${prefix}-`));
    if (id !== undefined) return id;
    if (Date.now() > until) throw new Error(`no run ${prefix}-… announced`);
    await sleep(20);
  }
}

async function exitOf(p: WorkerProcess, ms: number): Promise<number | null | 'running'> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return p.child.exitCode;
  return Promise.race([new Promise<number | null>((resolve) => p.child.once('exit', (code) => resolve(code))), sleep(ms).then(() => 'running' as const)]);
}

describe.skipIf(redisSkipReason !== undefined)('the redis executor under the faults of real networks', () => {
  let redis: TestRedis;
  let client: Redis;
  const procs: WorkerProcess[] = [];
  let root: string;
  const spawn = (args: string[]) => {
    const p = spawnReptile(args);
    procs.push(p);
    return p;
  };
  const worker = async (extra: string[] = []) => {
    const w = spawn(['worker', '--redis', redis.url, '--lock-ms', '1000', ...extra]);
    await w.waitFor(/waiting for runs/);
    return w;
  };

  beforeAll(async () => {
    redis = await startRedis({ persistent: false });
    client = new Redis(redis.url, { maxRetriesPerRequest: null });
    root = makeTemp('reptile-redis-faults-');
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) {
      p.child.kill('SIGCONT');
      await p.stop();
    }
    client?.disconnect();
    await redis?.stop();
  });

  it("keeps one meta-iteration's keys in Redis, its memory flat over 120 meta-iterations, and nothing of the run once it ends", async () => {
    const w = await worker();
    const dir = path.join(root, 'memory');
    // A model of 4,353 parameters: φ and Adam's two moments are 52 KB a meta-iteration.
    const coordinator = spawn([...sine(120, ['--hidden', '64,64', '--inner-iters', '4', '--run-id', 'memory']), '--executor', 'redis', '--redis', redis.url, '--checkpoint', dir]);
    const runId = await runIdOf(client, 'memory');
    let most = 0;
    const memory: Record<number, number> = {};
    while (coordinator.child.exitCode === null) {
      most = Math.max(most, (await keysMatching(client, `reptile:${runId}:*`)).length);
      const done = logLines(dir);
      for (const at of [10, 100]) if (done >= at && memory[at] === undefined) memory[at] = await usedMemory(client);
      await sleep(10);
    }
    expect(coordinator.child.exitCode, coordinator.log()).toBe(0);
    console.log(`redis used_memory at meta-iteration 10: ${memory[10]} B, at 100: ${memory[100]} B; at most ${most} keys of the run at once`);
    // The spec, φ, m and v, and the four results of one meta-iteration (one more φ and state at the turn).
    expect(most).toBeLessThanOrEqual(12);
    expect(memory[100]! - memory[10]!).toBeLessThan(1 << 20);
    // Once the run has ended: no key of its own, nothing of its queue, not in the run set.
    const until = Date.now() + 10_000;
    let left: string[];
    for (;;) {
      // Its evaluation is a run of its own (memory-…): its queue must be gone too, `meta` included,
      // which BullMQ's stalled-job check writes back when it runs after the queue was obliterated.
      left = [...(await keysMatching(client, `reptile:${runId}:*`)), ...(await keysMatching(client, 'bull:reptile-memory-*'))];
      if (left.length === 0 || Date.now() > until) break;
      await sleep(200);
    }
    expect(left).toEqual([]);
    expect(await client.sismember(RUNS_KEY, runId)).toBe(0);
    await w.stop();
  }, 240_000);

  it('gives two runs that differ only in --meta-iters or --checkpoint ids of their own, and a resumed run its old id', async () => {
    const ws = [await worker(), await worker()];
    const inline = await runReptile([...sine(20), '--checkpoint', path.join(root, 'twin-inline')]);
    expect(inline.code, inline.stderr).toBe(0);
    const seen = new Set<string>();
    const runs = [
      spawn([...sine(20, ['--run-id', 'twin']), '--executor', 'redis', '--redis', redis.url, '--checkpoint', path.join(root, 'twin-a')]),
      spawn([...sine(21, ['--run-id', 'twin']), '--executor', 'redis', '--redis', redis.url, '--checkpoint', path.join(root, 'twin-b')]),
    ];
    while (runs.some((r) => r.child.exitCode === null)) {
      for (const id of await client.smembers(RUNS_KEY)) if (id.startsWith('twin-')) seen.add(id);
      await sleep(10);
    }
    for (const r of runs) expect(r.child.exitCode, r.log()).toBe(0);
    expect(seen.size).toBe(2);
    for (const r of runs) expect(r.log()).not.toMatch(/vanished/);
    expect(checkpointPayload(path.join(root, 'twin-a')).equals(checkpointPayload(path.join(root, 'twin-inline')))).toBe(true);
    // The same --checkpoint again (a killed coordinator started anew) is the same run.
    const dir = path.join(root, 'twin-resumed');
    const first = spawn([...slow(30, ['--run-id', 'again']), '--executor', 'redis', '--redis', redis.url, '--checkpoint', dir]);
    const id = await runIdOf(client, 'again');
    await first.stop();
    const second = spawn([...slow(30, ['--run-id', 'again']), '--executor', 'redis', '--redis', redis.url, '--checkpoint', dir]);
    await second.waitFor(/train sine: \d+\/30/, 60_000);
    expect(await client.smembers(RUNS_KEY)).toContain(id);
    await second.stop();
    for (const w of ws) await w.stop();
  }, 240_000);

  it('drops the result of a worker that finishes after its job was handed to another, and the coordinator says it re-ran the job', async () => {
    const late = await worker();
    const other = await worker();
    const dir = path.join(root, 'late');
    // Long enough that the run cannot end while the worker is frozen and thawed a few times, on a quiet machine.
    const coordinator = spawn([...slow(400, ['--run-id', 'late']), '--executor', 'redis', '--redis', redis.url, '--checkpoint', dir]);
    const runId = await runIdOf(client, 'late');
    await coordinator.waitFor(/train sine: \d+\/400/, 120_000);
    // Cut off (frozen) mid-task for three locks' time: its job goes to the other worker; then it finishes it.
    let left: string[] = [];
    for (let tries = 0; tries < 5 && !/dropped/.test(late.log()); tries++) {
      // Freeze it while it computes (its CPU time rising), so that it is in the middle of a task.
      await busy(late.child.pid!, 10_000);
      late.child.kill('SIGSTOP');
      await sleep(3000);
      late.child.kill('SIGCONT');
      await sleep(2000);
      // Results of meta-iterations the coordinator is done with must not stay.
      const now = logLines(dir);
      left = (await keysMatching(client, `reptile:${runId}:result:*`)).filter((k) => Number(/:result:adapt-(\d+)-/.exec(k)?.[1] ?? now) < now - 1);
      if (left.length > 0) break;
    }
    expect(left).toEqual([]);
    expect(late.log()).toMatch(/reptile worker: job adapt-\S+ of run \S+ was handed to another worker while this one ran it \(its lock expired\); its result is dropped/);
    await coordinator.waitFor(/reptile coordinator: job adapt-\S+ stalled \(its worker went silent for longer than its lock\); another worker runs it again/, 60_000);
    await coordinator.stop();
    await late.stop();
    await other.stop();
  }, 240_000);

  it('notices a frozen Redis within seconds on every side, and the worker takes jobs again afterwards and stops at the first SIGTERM', async () => {
    const w = await worker();
    const dir = path.join(root, 'frozen');
    const coordinator = spawn([...slow(30, ['--run-id', 'frozen']), '--executor', 'redis', '--redis', redis.url, '--checkpoint', dir]);
    await coordinator.waitFor(/train sine: 3\/30/, 120_000);
    const began = Date.now();
    redis.pause();
    const noticed: Record<string, number> = {};
    try {
      await Promise.all(
        [
          ['coordinator', coordinator],
          ['worker', w],
        ].map(async ([who, p]) => {
          await (p as WorkerProcess).waitFor(new RegExp(`reptile ${who as string}: lost redis`), 25_000);
          noticed[who as string] = Date.now() - began;
        }),
      );
      // Frozen for longer than every lock and socket timeout, so every connection is dropped and retried.
      await sleep(Math.max(0, 30_000 - (Date.now() - began)));
    } finally {
      redis.resume();
    }
    console.log(`a frozen redis noticed after ${noticed['coordinator']} ms by the coordinator, ${noticed['worker']} ms by the worker`);
    expect(noticed['coordinator']).toBeLessThan(20_000);
    expect(noticed['worker']).toBeLessThan(20_000);
    await coordinator.waitFor(/"iterations": 30/, 180_000);
    // The worker alone must take the jobs of a new run.
    const after = await runReptile([...sine(3, ['--run-id', 'after']), '--executor', 'redis', '--redis', redis.url], 60_000);
    expect(after.code, after.stderr).toBe(0);
    expect(w.log()).toMatch(/working on run after-/);
    const t = Date.now();
    w.child.kill('SIGTERM');
    expect(await exitOf(w, 10_000)).not.toBe('running');
    console.log(`the worker stopped ${Date.now() - t} ms after its first SIGTERM`);
    expect(checkpointPayload(dir).length).toBeGreaterThan(0);
  }, 300_000);
});

// A worker on a host of its own, cut off from Redis's host long enough for TCP to give up on
// every connection (the namespace's tcp_retries2 shortened from 15 minutes to seconds) while the
// run it worked on ends without it, then healed: it must take the jobs of the next run, and stop
// at its first SIGTERM.
describe.skipIf(redisSkipReason !== undefined || netnsSkipReason !== undefined)('a worker on another host (network namespaces)', () => {
  if (netnsSkipReason !== undefined) console.log(`skipping the network-namespace tests: ${netnsSkipReason}`);

  it('takes jobs again after a partition long enough for TCP to give up, during which its run ended, and stops at its first SIGTERM', async () => {
    const hosts = twoHosts();
    const procs: WorkerProcess[] = [];
    let redis: Awaited<ReturnType<typeof redisOn>> | undefined;
    try {
      // On the worker's host TCP gives up on a silent connection after about 3 s (Linux's default: 15.6 minutes).
      hosts.b.sysctl('net.ipv4.tcp_retries2', 3);
      hosts.b.sysctl('net.ipv4.tcp_syn_retries', 1);
      redis = await redisOn(hosts.a);
      const url = redis.url;
      const spawnOn = (host: typeof hosts.a, args: string[]) => {
        const p = spawnReptile(args, {}, host.wrap);
        procs.push(p);
        return p;
      };
      const cutOff = spawnOn(hosts.b, ['worker', '--redis', url, '--lock-ms', '1000']);
      const local = spawnOn(hosts.a, ['worker', '--redis', url, '--lock-ms', '1000']);
      for (const w of [cutOff, local]) await w.waitFor(/waiting for runs/);
      const dir = path.join(makeTemp('reptile-netns-'), 'partition');
      const coordinator = spawnOn(hosts.a, [...slow(40, ['--run-id', 'partition']), '--executor', 'redis', '--redis', url, '--checkpoint', dir]);
      await coordinator.waitFor(/train sine: 4\/40/, 120_000);
      hosts.link(false);
      const began = Date.now();
      await cutOff.waitFor(/reptile worker: lost redis/, 30_000);
      const noticed = Date.now() - began;
      // The run ends without it (the other worker carries on); the link stays down for at least
      // 25 s: long past TCP giving up, past every timeout and lock.
      await coordinator.waitFor(/"iterations": 40/, 180_000);
      if (coordinator.child.exitCode === null) await new Promise((r) => coordinator.child.once('exit', r));
      await sleep(Math.max(0, 25_000 - (Date.now() - began)));
      hosts.link(true);
      await cutOff.waitFor(/reptile worker: reconnected to redis/, 60_000);
      // The worker that stayed goes; the one that was cut off must run a new run alone.
      await local.stop();
      const after = await runReptile([...sine(3, ['--run-id', 'after-partition']), '--executor', 'redis', '--redis', url], 90_000, {}, hosts.a.wrap);
      expect(after.code, `${after.stderr}\n--- the cut-off worker:\n${cutOff.log()}`).toBe(0);
      const t = Date.now();
      cutOff.child.kill('SIGTERM');
      expect(await exitOf(cutOff, 10_000)).not.toBe('running');
      console.log(`partitioned worker: noticed after ${noticed} ms, stopped ${Date.now() - t} ms after its first SIGTERM`);
      expect(noticed).toBeLessThan(30_000);
    } finally {
      for (const p of procs) await p.stop();
      await redis?.stop();
      hosts.remove();
    }
  }, 400_000);
});
