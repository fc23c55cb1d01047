import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeResult, queueName, RUNS_KEY } from '../src/exec/redis.js';
import type { JobResult } from '../src/exec/job.js';
import { makeTemp, writeImageFolder } from './few-shot/fixtures.js';
import { checkpointPayload, redisSkipReason, runReptile, spawnReptile, startRedis, type TestRedis, type WorkerProcess } from './helpers/redis.js';

// Sine meta-training small enough for a test, with tasks long enough (2,000 inner steps) that a
// worker killed at random is almost surely in the middle of one.
const sine = (policy: string, iters = 20) => ['train', '--task', 'sine', '--hidden', '16,16', '--meta-iters', String(iters), '--meta-batch', '4', '--inner-state', policy, '--eval-samples', '8', '--checkpoint-every', '5', '--json'];
const slow = (iters: number) => [...sine('shared', iters), '--inner-iters', '2000'];

async function train(args: string[], dir: string) {
  const r = await runReptile([...args, '--checkpoint', dir]);
  if (r.code !== 0) throw new Error(`reptile ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return { payload: checkpointPayload(dir), result: JSON.parse(r.stdout) as { heldOut: { mse: number } }, stderr: r.stderr };
}

// A few-shot checkpoint trained for 3 meta-iterations on a 12-class folder of generated images.
async function tinyFewShotCheckpoint(): Promise<string> {
  const folder = writeImageFolder(makeTemp(), { classes: 12, perClass: 3, size: 28 });
  const ck = path.join(makeTemp(), 'ck');
  const tiny = ['--classes', '3', '--shots', '1', '--train-shots', '2', '--inner-batch', '3', '--inner-iters', '2', '--meta-iters', '3', '--meta-batch', '2', '--eval-iters', '3', '--eval-batch', '2', '--eval-interval', '100'];
  const t = await runReptile(['train', '--dataset', 'folder', '--data-dir', folder, ...tiny, '--checkpoint', ck, '--backend', 'cpu']);
  expect(t.code, t.stderr).toBe(0);
  return ck;
}

// `reptile eval` with the extra flags gives the inline run's accuracy and interval exactly.
async function expectSameEvaluation(evalArgs: string[], extra: string[]): Promise<void> {
  const inline = await runReptile(evalArgs);
  const other = await runReptile([...evalArgs, ...extra]);
  expect(inline.code, inline.stderr).toBe(0);
  expect(other.code, other.stderr).toBe(0);
  const a = JSON.parse(inline.stdout) as { accuracy: number; ci95: number };
  const b = JSON.parse(other.stdout) as { accuracy: number; ci95: number };
  expect(b.accuracy).toBe(a.accuracy);
  expect(b.ci95).toBe(a.ci95);
}

function oneLine(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('train sine') && !l.startsWith('tfjs backend'));
}

describe('the threads executor', () => {
  for (const policy of ['shared', 'reset']) {
    it(`gives the inline executor's parameters bit for bit after 20 meta-iterations (${policy})`, async () => {
      const root = makeTemp('reptile-threads-');
      const inline = await train(sine(policy), path.join(root, 'inline'));
      const threads = await train([...sine(policy), '--executor', 'threads', '--workers', '2'], path.join(root, 'threads'));
      expect(threads.payload.equals(inline.payload)).toBe(true);
      expect(threads.result.heldOut.mse).toBe(inline.result.heldOut.mse);
    }, 120_000);
  }

  it("gives the inline executor's parameters bit for bit under FOMAML, whose last inner steps travel back", async () => {
    const root = makeTemp('reptile-threads-');
    const inline = await train([...sine('shared', 10), '--foml'], path.join(root, 'inline'));
    const threads = await train([...sine('shared', 10), '--foml', '--executor', 'threads', '--workers', '3'], path.join(root, 'threads'));
    expect(threads.payload.equals(inline.payload)).toBe(true);
  }, 120_000);

  it('refuses the carry policy with one line naming the parallel-safe ones', async () => {
    const r = await runReptile(['train', '--task', 'sine', '--meta-iters', '2', '--inner-state', 'carry', '--executor', 'threads']);
    expect(r.code).not.toBe(0);
    const lines = oneLine(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^reptile: the threads executor .* cannot carry the inner optimizer's state .*: set --inner-state to 'shared' or 'reset', or --executor to 'inline'$/);
  });

  it('evaluates a few-shot checkpoint with the inline executor\'s accuracy (reptile eval --executor threads)', async () => {
    const ck = await tinyFewShotCheckpoint();
    const evalArgs = ['eval', '--checkpoint', ck, '--samples', '40', '--json', '--backend', 'cpu'];
    await expectSameEvaluation(evalArgs, ['--executor', 'threads', '--workers', '2']);
  }, 180_000);
});

describe.skipIf(redisSkipReason !== undefined)('the redis executor (BullMQ on a real redis-server)', () => {
  let redis: TestRedis;
  const workers: WorkerProcess[] = [];
  let root: string;
  const inline: Record<string, Buffer> = {};
  const startWorkers = async (n: number, extra: string[] = []) => {
    const started = Array.from({ length: n }, () => spawnReptile(['worker', '--redis', redis.url, '--lock-ms', '1000', ...extra]));
    for (const w of started) await w.waitFor(/waiting for runs/);
    workers.push(...started);
    return started;
  };

  beforeAll(async () => {
    redis = await startRedis();
    root = makeTemp('reptile-redis-');
    for (const policy of ['shared', 'reset']) inline[policy] = (await train(sine(policy), path.join(root, `inline-${policy}`))).payload;
    inline['slow'] = (await train(slow(30), path.join(root, 'inline-slow'))).payload;
    await startWorkers(2);
  }, 180_000);

  afterAll(async () => {
    for (const w of workers) await w.stop();
    await redis?.stop();
  });

  for (const policy of ['shared', 'reset']) {
    it(`gives the inline executor's parameters bit for bit after 20 meta-iterations, with two workers (${policy})`, async () => {
      const r = await train([...sine(policy), '--executor', 'redis', '--redis', redis.url], path.join(root, `redis-${policy}`));
      expect(r.payload.equals(inline[policy]!)).toBe(true);
    }, 120_000);
  }

  it("evaluates a few-shot checkpoint with the inline executor's accuracy (reptile eval --executor redis), the workers reading the data's directory", async () => {
    const ck = await tinyFewShotCheckpoint();
    const evalArgs = ['eval', '--checkpoint', ck, '--samples', '60', '--json', '--backend', 'cpu'];
    await expectSameEvaluation(evalArgs, ['--executor', 'redis', '--redis', redis.url]);
  }, 180_000);

  it('ends bit-identical when a worker is SIGKILLed mid-run: its job is delivered again', async () => {
    const [extra] = await startWorkers(1);
    const dir = path.join(root, 'killed-worker');
    const coordinator = spawnReptile([...slow(30), '--executor', 'redis', '--redis', redis.url, '--checkpoint', dir]);
    await coordinator.waitFor(/train sine: 8\/30/, 120_000);
    await extra!.stop();
    await coordinator.waitFor(/"iterations": 30/, 120_000);
    expect(checkpointPayload(dir).equals(inline['slow']!)).toBe(true);
  }, 240_000);

  it('continues bit-identical when the coordinator is SIGKILLed and started again on the same --checkpoint', async () => {
    const dir = path.join(root, 'killed-coordinator');
    const first = spawnReptile([...slow(30), '--executor', 'redis', '--redis', redis.url, '--checkpoint', dir]);
    await first.waitFor(/train sine: 13\/30/, 120_000);
    await first.stop();
    const again = await train([...slow(30), '--executor', 'redis', '--redis', redis.url], dir);
    expect(again.payload.equals(inline['slow']!)).toBe(true);
  }, 240_000);

  it('throws away well-formed forged results from a hostile worker, runs their jobs again and ends bit-identical', async () => {
    const own = await startRedis();
    let honest: WorkerProcess | undefined;
    const client = new Redis(own.url, { maxRetriesPerRequest: null });
    // BullMQ leaves a connection it was given open: closed here, or it retries the stopped server for ever.
    const hostileConnection = client.duplicate();
    let hostile: Worker | undefined;
    try {
      const dir = path.join(root, 'forged-result');
      const coordinator = spawnReptile([...sine('shared'), '--executor', 'redis', '--redis', own.url, '--run-id', 'forged-result', '--checkpoint', dir]);
      // The run names its queue when it starts (its id is its own): the hostile worker is on it
      // before the honest one starts.
      let runId: string | undefined;
      while ((runId = (await client.smembers(RUNS_KEY)).find((id) => id.startsWith('forged-result-'))) === undefined) await new Promise((r) => setTimeout(r, 10));
      const spec = JSON.parse((await client.get(`reptile:${runId}:spec`))!) as { learner: { layout: { size: number; hash: string } } };
      const zeros = new Uint8Array(spec.learner.layout.size * 4);
      // The hostile worker answers the first two jobs it gets with results that decode cleanly but
      // lie: one computed from another φ, one answering another task than it was given.
      let forged = 0;
      hostile = new Worker(
        queueName(runId),
        async (job) => {
          const d = job.data as { iteration: number; digest: string; taskIndices: number[] };
          const outcome = { taskIndex: d.taskIndices[0]!, loss: 0.1, params: zeros, state: { kind: 'adam' as const, step: 5, m: zeros, v: zeros } };
          const base = { runId, kind: 'adapt' as const, iteration: d.iteration, layoutHash: spec.learner.layout.hash };
          const result: JobResult = forged === 0 ? { ...base, digest: '0000000000000000', outcomes: [outcome] } : { ...base, digest: d.digest, outcomes: [{ ...outcome, taskIndex: d.taskIndices[0]! + 1 }] };
          await client.set(`reptile:${runId}:result:${String(job.id).replace(/-again\d+$/, '')}`, encodeResult(result));
          if (++forged === 2) void hostile!.close();
          return 'ok';
        },
        { connection: hostileConnection, concurrency: 1 },
      );
      await hostile.waitUntilReady();
      honest = spawnReptile(['worker', '--redis', own.url, '--lock-ms', '1000']);
      await coordinator.waitFor(/"iterations": 20/, 120_000);
      const r = { stderr: coordinator.log(), payload: checkpointPayload(dir) };
      expect(forged).toBe(2);
      expect(r.stderr).toMatch(/reptile coordinator: rejected a result for job adapt-\S+ \(the result was computed from another φ \(digest mismatch\): stale or forged\); running the job again/);
      expect(r.stderr).toMatch(/reptile coordinator: rejected a result for job adapt-\S+ \(outcome 0 is not for task \d+\); running the job again/);
      expect(r.payload.equals(inline['shared']!)).toBe(true);
    } finally {
      await hostile?.close();
      hostileConnection.disconnect();
      client.disconnect();
      await honest?.stop();
      await own.stop();
    }
  }, 180_000);

  it('survives Redis restarting under a running job: everyone says so in one line, the run ends bit-identical', async () => {
    const dir = path.join(root, 'redis-restart');
    const coordinator = spawnReptile([...slow(30), '--executor', 'redis', '--redis', redis.url, '--checkpoint', dir]);
    await coordinator.waitFor(/train sine: 6\/30/, 120_000);
    await redis.kill();
    await new Promise((r) => setTimeout(r, 1500));
    await redis.restart();
    await coordinator.waitFor(/"iterations": 30/, 180_000);
    expect(coordinator.log()).toMatch(/reptile coordinator: lost redis at redis:\/\/127\.0\.0\.1:\d+\/? \(.*\); reconnecting with back-off/);
    expect(coordinator.log()).toMatch(/reptile coordinator: reconnected to redis/);
    expect(coordinator.log().match(/lost redis/g)).toHaveLength(1);
    await workers[0]!.waitFor(/reptile worker: reconnected to redis/, 30_000);
    expect(workers[0]!.log().match(/reptile worker: lost redis/g)).toHaveLength(1);
    expect(checkpointPayload(dir).equals(inline['slow']!)).toBe(true);
  }, 300_000);

  it('survives Redis restarting with an empty memory (no persistence): lost jobs are queued again, the run ends bit-identical', async () => {
    const volatile = await startRedis({ persistent: false });
    const own = [0, 1].map(() => spawnReptile(['worker', '--redis', volatile.url, '--lock-ms', '1000']));
    try {
      for (const w of own) await w.waitFor(/waiting for runs/);
      const dir = path.join(root, 'redis-amnesia');
      const coordinator = spawnReptile([...slow(30), '--executor', 'redis', '--redis', volatile.url, '--checkpoint', dir]);
      await coordinator.waitFor(/train sine: 6\/30/, 120_000);
      // Redis must die holding a job: with the workers frozen, the coordinator's jobs stay queued
      // (between meta-iterations it queues the next ones), so the kill cannot fall into the gap
      // between reading one meta-batch's results and queueing the next.
      for (const w of own) w.child.kill('SIGSTOP');
      const client = new Redis(volatile.url, { maxRetriesPerRequest: null });
      const [runId] = await client.smembers(RUNS_KEY);
      const queue = new Queue(queueName(runId!), { connection: client });
      const queued = async () => Object.values(await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized')).reduce((a, b) => a + b, 0);
      while ((await queued()) === 0) await new Promise((r) => setTimeout(r, 5));
      await queue.close();
      client.disconnect();
      await volatile.kill();
      await volatile.restart();
      for (const w of own) w.child.kill('SIGCONT');
      await coordinator.waitFor(/"iterations": 30/, 180_000);
      expect(coordinator.log()).toMatch(/reptile coordinator: job .* vanished from Redis \(restarted without append-only persistence\?\); queueing it again/);
      expect(checkpointPayload(dir).equals(inline['slow']!)).toBe(true);
    } finally {
      for (const w of own) w.child.kill('SIGCONT');
      for (const w of own) await w.stop();
      await volatile.stop();
    }
  }, 300_000);

  it('survives Redis emptied the moment φ is stored, before the jobs are queued: φ and the run are stored again, the run ends bit-identical', async () => {
    const volatile = await startRedis({ persistent: false });
    const own = [0, 1].map(() => spawnReptile(['worker', '--redis', volatile.url, '--lock-ms', '1000']));
    const watcher = new Redis(volatile.url, { maxRetriesPerRequest: null });
    const flusher = new Redis(volatile.url, { maxRetriesPerRequest: null });
    try {
      for (const w of own) await w.waitFor(/waiting for runs/);
      // Keyspace events tell this client of every φ the coordinator stores; at three of them it
      // empties Redis at once, so the jobs of that meta-iteration go into a Redis without φ,
      // without the run's spec and without its entry in the run set.
      await watcher.config('SET', 'notify-keyspace-events', 'E$');
      let stores = 0;
      let flushes = 0;
      await watcher.psubscribe('__keyevent@0__:set');
      watcher.on('pmessage', (_pattern: string, _channel: string, name: string) => {
        if (!/^reptile:[^:]+:phi:/.test(name)) return;
        if ([4, 12, 20].includes(++stores)) void flusher.flushall().then(() => flushes++);
      });
      const dir = path.join(root, 'redis-emptied');
      const coordinator = spawnReptile([...slow(30), '--executor', 'redis', '--redis', volatile.url, '--checkpoint', dir]);
      await coordinator.waitFor(/"iterations": 30/, 240_000);
      expect(flushes).toBe(3);
      expect(checkpointPayload(dir).equals(inline['slow']!)).toBe(true);
    } finally {
      watcher.disconnect();
      flusher.disconnect();
      for (const w of own) await w.stop();
      await volatile.stop();
    }
  }, 300_000);

  it('rejects forged jobs and specs sent over the network, logging why, and runs nothing', async () => {
    const client = new Redis(redis.url, { maxRetriesPerRequest: null });
    try {
      // A hostile run: its spec is not JSON.
      await client.set('reptile:rEVIL:spec', 'require("child_process").exec("rm -rf /")');
      await client.sadd(RUNS_KEY, 'rEVIL');
      await workers[0]!.waitFor(/ignoring run rEVIL: its spec is not readable JSON/);
      // A real run's spec (copied while a short run goes on: the run deletes it when it ends),
      // announced again, and forged jobs on its queue.
      const short = spawnReptile([...slow(3), '--executor', 'redis', '--redis', redis.url, '--run-id', 'forgery', '--checkpoint', path.join(root, 'forgery')]);
      let runId: string | undefined;
      while ((runId = (await client.smembers(RUNS_KEY)).find((id) => id.startsWith('forgery-'))) === undefined) await new Promise((r) => setTimeout(r, 10));
      const specText = await client.get(`reptile:${runId}:spec`);
      await short.waitFor(/"iterations": 3/, 120_000);
      if (short.child.exitCode === null) await new Promise((r) => short.child.once('exit', r));
      await client.set(`reptile:${runId}:spec`, specText!);
      await client.sadd(RUNS_KEY, runId);
      const spec = JSON.parse(specText!) as { learner: { layout: { size: number } } };
      const queueConnection = client.duplicate();
      const queue = new Queue(queueName(runId), { connection: queueConnection });
      const size = spec.learner.layout.size;
      const phiOk = Buffer.alloc(size * 4);
      await client.set(`reptile:${runId}:phi:0123456789abcdef`, phiOk);
      await client.set(`reptile:${runId}:phi:ffffffffffffffff`, Buffer.alloc(size * 4 + 1_000_000));
      const job = { runId, kind: 'adapt', iteration: 0, seed: 1, taskIndices: [0], inner: { optimizer: 'adam', learningRate: 0.001, innerIters: 1, innerBatch: 1 }, transductive: false, wantLastStep: false };
      await queue.add('adapt', { ...job, digest: '0123456789abcdef' }, { jobId: 'forged-digest' });
      await queue.add('adapt', { ...job, digest: 'ffffffffffffffff' }, { jobId: 'forged-oversized' });
      await queue.add('adapt', { ...job, runId: 'rOTHER', digest: '0123456789abcdef' }, { jobId: 'forged-run' });
      await queue.add('adapt', { ...job, inner: { ...job.inner, innerIters: 1e9 }, digest: '0123456789abcdef' }, { jobId: 'forged-iters' });
      const all = () => workers.map((w) => w.log()).join('\n');
      const until = Date.now() + 60_000;
      const wanted = [/rejected job forged-digest .*: the digest does not match φ/, /forged-oversized.*phi is \d+ bytes, more than the model's/, /rejected job forged-run .*: the job is for run 'rOTHER'/, /rejected job forged-iters .*: inner iterations or batch above 100000/];
      while (!wanted.every((w) => w.test(all())) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      for (const w of wanted) expect(all()).toMatch(w);
      const failed = await queue.getFailed();
      expect(failed.map((j) => j.id).sort()).toEqual(['forged-digest', 'forged-iters', 'forged-oversized', 'forged-run']);
      await queue.close();
      queueConnection.disconnect();
    } finally {
      client.disconnect();
    }
  }, 120_000);

  it('refuses a wrong password and an unreachable server with one line and a non-zero exit', async () => {
    const locked = await startRedis({ password: 's3cret' });
    try {
      const bad = `redis://:wrong@127.0.0.1:${locked.port}`;
      for (const args of [['worker', '--redis', bad], ['train', '--task', 'sine', '--meta-iters', '2', '--executor', 'redis', '--redis', bad]]) {
        const r = await runReptile(args, 30_000);
        expect(r.code).not.toBe(0);
        const lines = oneLine(r.stderr);
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^reptile: redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/? refused the credentials \(WRONGPASS.*\): check the user and password in --redis$/);
        expect(lines[0]).not.toMatch(/wrong/);
      }
      const r = await runReptile(['worker', '--redis', `redis://127.0.0.1:1`], 30_000);
      expect(r.code).not.toBe(0);
      expect(r.code).toBe(1);
      expect(oneLine(r.stderr)).toEqual([expect.stringMatching(/^reptile: cannot reach Redis at 127\.0\.0\.1:1 \(ECONNREFUSED\): start redis-server there, or fix the host and port in --redis$/)]);
    } finally {
      await locked.stop();
    }
  }, 60_000);

  it.skipIf(spawnSync('openssl', ['version']).status !== 0)('speaks TLS (rediss://), verifying the server\'s certificate', async () => {
    const dir = makeTemp('reptile-tls-');
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1']);
    expect(made.status).toBe(0);
    const tls = await startRedis({ password: 'tlspw', tls: { cert, key } });
    try {
      const refused = await runReptile(['worker', '--redis', tls.url], 30_000);
      expect(refused.code).not.toBe(0);
      expect(oneLine(refused.stderr)).toEqual([expect.stringMatching(/^reptile: the TLS certificate of redis at rediss:\/\/:\*\*\*@127\.0\.0\.1:\d+\/? was refused \(self-signed certificate\): add its CA with NODE_EXTRA_CA_CERTS/)]);
      const trust = { NODE_EXTRA_CA_CERTS: cert };
      const worker = spawnReptile(['worker', '--redis', tls.url], trust);
      try {
        await worker.waitFor(/waiting for runs/);
        const r = await runReptile([...sine('shared', 5), '--executor', 'redis', '--redis', tls.url], 120_000, trust);
        expect(r.code, r.stderr).toBe(0);
        expect(worker.log()).toMatch(/working on run/);
      } finally {
        await worker.stop();
      }
    } finally {
      await tls.stop();
    }
  }, 120_000);
});
