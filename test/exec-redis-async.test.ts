import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCheckpoint } from '../src/train/checkpoint.js';
import { makeTemp } from './few-shot/fixtures.js';
import { redisSkipReason, runReptile, spawnReptile, startRedis, type TestRedis, type WorkerProcess } from './helpers/redis.js';
import { busy, logLines } from './helpers/process.js';

// The asynchronous mode on a real redis-server with two `reptile worker` processes: whatever
// the workers' speed, deaths and freezes, and whatever the coordinator's, every task of the run
// is applied exactly once.

const META_BATCH = 4;
const sine = (iters: number, extra: string[] = []) => [
  'train', '--task', 'sine', '--hidden', '16,16', '--meta-iters', String(iters), '--meta-batch', String(META_BATCH), '--inner-state', 'shared',
  '--eval-samples', '4', '--checkpoint-every', '1', '--json', '--executor', 'redis', '--sync', 'async', ...extra,
];

interface SpanLine {
  iteration: number;
  async: { tasks: number[]; staleness: number[]; dropped: number };
}

/**
 * The spans a run kept: for each meta-iteration the last line logged (a coordinator killed after
 * logging a span and before checkpointing it logs that span again when it resumes).
 */
function keptSpans(dir: string): SpanLine[] {
  const lines = fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as SpanLine);
  const last = new Map<number, SpanLine>();
  for (const l of lines) last.set(l.iteration, l);
  return [...last.values()].sort((a, b) => a.iteration - b.iteration);
}

/** Checks that the run applied each of its tasks exactly once, and returns the spans. */
function expectEachTaskOnce(dir: string, iters: number): SpanLine[] {
  const spans = keptSpans(dir);
  expect(spans.map((s) => s.iteration)).toEqual(Array.from({ length: iters }, (_, i) => i));
  const tasks = spans.flatMap((s) => s.async.tasks).sort((a, b) => a - b);
  expect(tasks).toEqual(Array.from({ length: iters * META_BATCH }, (_, i) => i));
  const ckpt = readCheckpoint(dir);
  expect(ckpt.iteration).toBe(iters);
  expect(ckpt.meta['async']).toEqual({ next: iters * META_BATCH, owed: [] });
  return spans;
}

describe.skipIf(redisSkipReason !== undefined)('the asynchronous mode on redis, two workers', () => {
  let redis: TestRedis;
  let root: string;
  const procs: WorkerProcess[] = [];
  const worker = async (extra: string[] = []) => {
    const w = spawnReptile(['worker', '--redis', redis.url, '--lock-ms', '1000', ...extra]);
    procs.push(w);
    await w.waitFor(/waiting for runs/);
    return w;
  };
  const stopAll = async () => {
    for (const p of procs.splice(0)) {
      p.child.kill('SIGCONT');
      await p.stop();
    }
  };

  beforeAll(async () => {
    redis = await startRedis();
    root = makeTemp('reptile-redis-async-');
  }, 60_000);

  afterAll(async () => {
    await stopAll();
    await redis?.stop();
  });

  it('applies every task exactly once while a worker is frozen past its lock (its late result dropped) and another is SIGKILLed mid-task', async () => {
    const a = await worker();
    const b = await worker();
    const dir = path.join(root, 'faults');
    // Tasks of 30,000 inner steps (about 0.1 s each on the engine) keep the workers computing
    // most of the time, so that the freeze and the kill land mid-task, not between two jobs.
    const coordinator = spawnReptile([...sine(10, ['--inner-iters', '30000', '--max-staleness', '100']), '--redis', redis.url, '--checkpoint', dir]);
    procs.push(coordinator);
    while (logLines(dir) < 2) await sleep(50);
    // Frozen mid-task for five locks: its job goes to the other worker, and its result comes too late.
    await busy(a.child.pid!, 10_000);
    a.child.kill('SIGSTOP');
    await sleep(5000);
    a.child.kill('SIGCONT');
    while (logLines(dir) < 5) await sleep(50);
    await busy(b.child.pid!, 10_000);
    await b.stop();
    await worker();
    const code = await new Promise<number | null>((resolve) => (coordinator.child.exitCode !== null ? resolve(coordinator.child.exitCode) : coordinator.child.once('exit', resolve)));
    expect(code, coordinator.log()).toBe(0);
    expectEachTaskOnce(dir, 10);
    // Both faults struck mid-task: the frozen worker's job and the killed one's were run again.
    expect(coordinator.log()).toMatch(/stalled/);
    expect(a.log()).toMatch(/handed to another worker while this one ran it/);
    const [, sent, applied, stale, duplicates] = /async: (\d+) tasks sent, (\d+) results applied, (\d+) dropped as stale and run again, (\d+) duplicates ignored/.exec(coordinator.log())!.map(Number);
    expect(applied).toBe(40);
    expect(sent).toBe(applied! + stale!);
    expect(duplicates).toBe(0);
    await stopAll();
  }, 400_000);

  it('drops the results of a slow worker computed from a φ more than --max-staleness updates old, runs their tasks again, and applies each task once', async () => {
    await worker();
    await worker(['--slowdown', '6']);
    const dir = path.join(root, 'stale');
    const r = await runReptile([...sine(10, ['--inner-iters', '300', '--max-staleness', '1']), '--redis', redis.url, '--checkpoint', dir]);
    expect(r.code, r.stderr).toBe(0);
    const spans = expectEachTaskOnce(dir, 10);
    const dropped = spans.reduce((s, l) => s + l.async.dropped, 0);
    expect(dropped).toBeGreaterThan(0);
    expect(Math.max(...spans.flatMap((s) => s.async.staleness))).toBeLessThanOrEqual(1);
    const counters = (JSON.parse(r.stdout) as { async: { sent: number; applied: number; stale: number } }).async;
    expect(counters).toMatchObject({ applied: 40, stale: dropped, sent: 40 + dropped });
    expect(r.stderr).toMatch(/async: \d+ tasks sent, 40 results applied, \d+ dropped as stale and run again, 0 duplicates ignored/);
    await stopAll();
  }, 400_000);

  it('resumes a SIGKILLed coordinator from its checkpoint: the tasks it owed are run, none applied twice', async () => {
    await worker();
    await worker();
    const dir = path.join(root, 'resume');
    const args = [...sine(14, ['--inner-iters', '400']), '--redis', redis.url, '--checkpoint', dir];
    const first = spawnReptile(args);
    procs.push(first);
    while (logLines(dir) < 5) await sleep(20);
    await first.stop();
    const saved = readCheckpoint(dir);
    expect(saved.iteration).toBeGreaterThanOrEqual(4);
    // Tasks were out when it died: the checkpoint owes them.
    const progress = saved.meta['async'] as { next: number; owed: number[] };
    expect(progress.owed.length).toBeGreaterThan(0);
    expect(progress.next - progress.owed.length).toBe(saved.iteration * META_BATCH);
    // A synchronous run would skip the owed tasks: it refuses the checkpoint, in one line.
    const copy = path.join(root, 'resume-sync');
    fs.cpSync(dir, copy, { recursive: true });
    const sync = await runReptile([...args.filter((a) => a !== '--sync' && a !== 'async').map((a) => (a === dir ? copy : a))]);
    expect(sync.code).not.toBe(0);
    expect(sync.stderr.trim().split('\n').filter((l) => l.startsWith('reptile:'))).toEqual([expect.stringMatching(/was written by an asynchronous run that still owes \d+ task\(s\): resume it with --sync 'async'/)]);
    const second = await runReptile(args);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ iterations: 14 });
    expectEachTaskOnce(dir, 14);
    await stopAll();
  }, 400_000);

  it('reptile status lists the run, its worker, its jobs per second and, once the run is stopped, nothing', async () => {
    const w = await worker();
    const dir = path.join(root, 'status');
    const coordinator = spawnReptile([...sine(1000, ['--inner-iters', '400', '--run-id', 'watched']), '--redis', redis.url, '--checkpoint', dir]);
    procs.push(coordinator);
    while (logLines(dir) < 3) await sleep(50);
    const r = await runReptile(['status', '--redis', redis.url, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const status = JSON.parse(r.stdout) as { runs: { runId: string; task: string; workers: { name: string }[]; jobsPerSecond: number; redeliveries: number; lastErrors: unknown[] }[] };
    expect(status.runs).toHaveLength(1);
    const run = status.runs[0]!;
    expect(run.runId).toMatch(/^watched-r[0-9a-f]{12}$/);
    expect(run.task).toBe('sine');
    expect(run.workers.map((x) => x.name)).toEqual([expect.stringMatching(new RegExp(`:${w.child.pid}$`))]);
    expect(run.jobsPerSecond).toBeGreaterThan(0);
    expect(run.redeliveries).toBe(0);
    expect(run.lastErrors).toEqual([]);
    const text = await runReptile(['status', '--redis', redis.url]);
    expect(text.stdout).toMatch(new RegExp(`^run ${run.runId} \\(sine, \\w+ learner\\): [0-9.]+ jobs/s over the last minute, \\d+ waiting, \\d+ running, 0 redelivered\\n  worker \\S+:${w.child.pid} at 127\\.0\\.0\\.1:\\d+\\n$`));
    // Stopped (Ctrl-C): it saves its checkpoint and ends the run, which leaves Redis.
    const exited = new Promise<number | null>((resolve) => coordinator.child.once('exit', resolve));
    coordinator.child.kill('SIGINT');
    expect(await exited, coordinator.log()).toBe(130);
    const after = await runReptile(['status', '--redis', redis.url]);
    expect(after.stdout).toBe(`no runs on ${redis.url}\n`);
    await stopAll();
  }, 400_000);
});
