/**
 * Benchmark of the executors (npm run bench:executors), on the built package:
 *
 * 1. Omniglot 5-way with the paper's flags (`omniglot-5w5s`: meta-batch 5, 5 Adam steps of batch 10)
 *    on the real data, every executor with the same policy (`shared`): inline on one engine thread,
 *    inline on the default two-thread engine, threads with 2 workers, redis with 2 local
 *    `reptile worker` processes. Interleaved round by round; medians of meta-iterations/s. The
 *    same at meta-batch 10, which two workers split evenly (5 tasks cannot be: 3 + 2).
 * 2. The coordinator's ceiling: an almost free learner (sine, one hidden unit, one inner step of
 *    one example), threads and redis with 2 workers.
 * 3. Saturation: redis with 1 … 64 worker processes on a tiny model (meta-batch 64), with the
 *    coordinator's CPU time per meta-iteration.
 *
 *   npm run bench:executors -- [--data-dir ../shared/data/omniglot] [--iters 40] [--rounds 3] [--max-workers 64]
 *                              [--parts machine,omniglot,ceiling,saturation] [--json file]
 *
 * A redis-server is started on a free loopback port for the run and stopped at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { builtLibrary, dist, median, option, root } from './built.js';

const lib = await builtLibrary();
// The origin a worker rebuilds the few-shot source from: an internal of the package, from its module.
const { dataOrigin } = (await import(dist('recipes/few-shot/settings.js'))) as typeof import('../src/recipes/few-shot/settings.js');

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => option(args, name, dflt);
const dataDir = path.resolve(opt('data-dir', path.join(root, '..', 'shared', 'data', 'omniglot')));
const iters = Number(opt('iters', '40'));
const rounds = Number(opt('rounds', '3'));
const maxWorkers = Number(opt('max-workers', '64'));
const jsonFile = args.includes('--json') ? opt('json', 'bench-executors.json') : undefined;
const PARTS = ['machine', 'omniglot', 'ceiling', 'saturation'];
const parts = new Set(opt('parts', PARTS.join(',')).split(','));
for (const p of parts) if (!PARTS.includes(p)) throw new Error(`unknown --parts entry '${p}': use some of ${PARTS.join(',')}`);
const log = (line: string) => void process.stderr.write(`${line}\n`);

// --- a redis-server and worker processes of the benchmark's own
async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
const redisDir = fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-bench-redis-'));
const port = await freePort();
const redisServer = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', redisDir, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
const url = `redis://127.0.0.1:${port}`;
await sleep(300);
// Every Node process here starts as the `reptile` command does (its first line): a larger starting
// heap, so that the large buffers of φ, states and results do not start a full collection every few
// jobs (docs/distributed.md, "Where a worker's time goes").
const NODE_FLAGS = ['--initial-old-space-size=512'];
const workers: ChildProcess[] = [];
async function setWorkers(n: number): Promise<void> {
  while (workers.length > n) {
    const w = workers.pop()!;
    w.kill('SIGKILL');
  }
  const started: Promise<void>[] = [];
  while (workers.length < n) {
    const w = spawn(process.execPath, [...NODE_FLAGS, dist('cli/main.js'), 'worker', '--redis', url, '--data-dir', dataDir], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, REPTILE_NATIVE_THREADS: '1' } });
    started.push(new Promise((resolve) => {
      let text = '';
      w.stderr!.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('waiting for runs')) resolve();
      });
    }));
    workers.push(w);
  }
  await Promise.all(started);
}
const cleanup = () => {
  for (const w of workers) w.kill('SIGKILL');
  redisServer.kill('SIGKILL');
  fs.rmSync(redisDir, { recursive: true, force: true });
};
process.on('exit', cleanup);

// --- one timed run: `warmup` meta-iterations (workers load the data and build their learner), then `n` timed
type Setup = { name: string; executor: () => Promise<import('../src/exec/executor.js').Executor | undefined>; threads: 1 | 2 };
async function timeRun(setup: Setup, build: (threads: 1 | 2) => { learner: import('../src/learners/learner.js').Learner; source: import('../src/tasks/task.js').TaskSource; dispose(): void }, config: Record<string, unknown>, n: number, warmup = 3): Promise<{ itPerS: number; coordinatorCpuMsPerIt: number }> {
  const executor = await setup.executor();
  const { learner, source, dispose } = build(setup.threads);
  try {
    const common = { learner, source, ...(executor ? { executor } : {}) };
    await lib.metaTrain({ ...common, config: { ...config, metaIters: warmup } });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await lib.metaTrain({ ...common, config: { ...config, metaIters: n } });
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return { itPerS: n / seconds, coordinatorCpuMsPerIt: (cpu.user + cpu.system) / 1000 / n };
  } finally {
    dispose();
    await executor?.close();
  }
}

const report: Record<string, unknown> = { machine: { cpus: os.availableParallelism(), model: os.cpus()[0]?.model, node: process.version }, iters, rounds };

// --- 1. Omniglot 5-way, the paper's flags, same policy everywhere
await lib.selectBackend('cpu');
log(`loading Omniglot from ${dataDir}`);
const data = lib.openFewShotData({ dataset: 'omniglot', dataDir, seed: 0 });
const preset = lib.getPreset('omniglot-5w5s');
if (preset.task !== 'few-shot') throw new Error('omniglot-5w5s is not a few-shot preset');
const omniglot = (threads: 1 | 2) => {
  const model = lib.createFewShotModel({ kind: 'omniglot', inputShape: data.train.inputShape, classes: 5, seed: 0, init: 'glorot' });
  const learner = new lib.NativeLearner({ model, innerState: 'shared', threads });
  const source = new lib.FewShotTaskSource({ dataset: data.train, classes: 5, shots: 5, trainShots: preset.fewShot.trainShots, origin: dataOrigin(data.describe, 'train', 0) });
  return { learner, source, dispose: () => { learner.dispose(); model.dispose(); } };
};
// `--solo`: one inline run on one engine thread, for the machine-ceiling measurement below.
if (args.includes('--solo')) {
  const t = await timeRun({ name: 'solo', executor: async () => undefined, threads: 1 }, omniglot, { ...preset.meta, innerState: 'shared', seed: 0 }, iters);
  process.stdout.write(`${JSON.stringify({ itPerS: t.itPerS })}\n`);
  cleanup();
  process.exit(0);
}

// The machine's own ceiling: the same inline run alone, and two of them at once in two processes.
const solo = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, ...NODE_FLAGS, fileURLToPath(import.meta.url), '--solo', '--iters', String(iters), '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve((JSON.parse(out.trim().split('\n').pop()!) as { itPerS: number }).itPerS) : reject(new Error(`solo run failed (${code})`))));
  });
const alone: number[] = [];
const together: number[] = [];
for (let r = 0; r < (parts.has('machine') ? rounds : 0); r++) {
  alone.push(await solo());
  const [a, b] = await Promise.all([solo(), solo()]);
  together.push(a! + b!);
  log(`machine ceiling, round ${r + 1}: one inline run ${alone[r]!.toFixed(2)} it/s, two at once ${together[r]!.toFixed(2)} it/s in total`);
}
if (parts.has('machine')) report['machineCeiling'] = { aloneItPerS: median(alone), twoAtOnceTotalItPerS: median(together), ratio: median(together) / median(alone), alone, together };

const setups: Setup[] = [
  { name: 'inline, 1 engine thread', executor: async () => undefined, threads: 1 },
  { name: 'inline, 2 engine threads', executor: async () => undefined, threads: 2 },
  { name: 'threads, 2 workers', executor: async () => new lib.ThreadsExecutor({ workers: 2 }), threads: 1 },
  { name: 'redis, 2 workers', executor: async () => { await setWorkers(2); return lib.RedisExecutor.connect({ url, log }); }, threads: 1 },
];
for (const metaBatch of parts.has('omniglot') ? [5, 10] : []) {
  const config = { ...preset.meta, metaBatch, innerState: 'shared', seed: 0 };
  const samples: Record<string, number[]> = Object.fromEntries(setups.map((s) => [s.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (const s of setups) {
      const t = await timeRun(s, omniglot, config, iters);
      samples[s.name]!.push(t.itPerS);
      log(`omniglot 5-way, meta-batch ${metaBatch}, round ${r + 1}: ${s.name}: ${t.itPerS.toFixed(2)} it/s`);
    }
  }
  const med = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
  const ratio = (a: string, b: string) => med[a]! / med[b]!;
  report[`omniglot5w_metaBatch${metaBatch}`] = {
    itPerS: med,
    samples,
    threadsOverInline1: ratio('threads, 2 workers', 'inline, 1 engine thread'),
    threadsOverInline2: ratio('threads, 2 workers', 'inline, 2 engine threads'),
    redisOverThreads: ratio('redis, 2 workers', 'threads, 2 workers'),
  };
  log(JSON.stringify(report[`omniglot5w_metaBatch${metaBatch}`]));
}

// --- 2. the coordinator's ceiling, 3. saturation
const tiny = (hidden: number[]) => (threads: 1 | 2) => {
  const model = lib.createSineModel({ hidden, seed: 0 });
  const learner = new lib.NativeLearner({ model, innerState: 'shared', threads });
  return { learner, source: new lib.SineTaskSource({ shots: 1 }), dispose: () => { learner.dispose(); model.dispose(); } };
};
const free = { metaStep: 0.1, metaStepFinal: 0.1, metaBatch: 2, innerIters: 1, innerBatch: 1, learningRate: 1e-3, optimizer: 'adam', innerState: 'shared', seed: 0 };
const ceiling: Record<string, unknown> = {};
for (const s of parts.has('ceiling') ? setups.filter((s) => s.name.startsWith('threads') || s.name.startsWith('redis')) : []) {
  const t = await timeRun(s, tiny([1]), free, 300, 20);
  ceiling[s.name] = { itPerS: t.itPerS, coordinatorCpuMsPerIt: t.coordinatorCpuMsPerIt };
  log(`coordinator ceiling, ${s.name}: ${t.itPerS.toFixed(0)} it/s, coordinator ${t.coordinatorCpuMsPerIt.toFixed(2)} ms CPU per it`);
}
if (parts.has('ceiling')) report['coordinatorCeiling'] = ceiling;

const saturation: Record<string, unknown>[] = [];
const busy = { ...free, metaBatch: 64, innerIters: 20, innerBatch: 1 };
for (let n = 1; n <= (parts.has('saturation') ? maxWorkers : 0); n *= 2) {
  const t = await timeRun({ name: `redis, ${n} workers`, executor: async () => { await setWorkers(n); return lib.RedisExecutor.connect({ url, log }); }, threads: 1 }, tiny([8]), busy, 20, 2);
  saturation.push({ workers: n, itPerS: t.itPerS, jobsPerS: t.itPerS * 64, coordinatorCpuMsPerIt: t.coordinatorCpuMsPerIt });
  log(`saturation: ${n} workers: ${t.itPerS.toFixed(1)} it/s (${(t.itPerS * 64).toFixed(0)} jobs/s), coordinator ${t.coordinatorCpuMsPerIt.toFixed(1)} ms CPU per it`);
}
if (parts.has('saturation')) report['saturation'] = saturation;

process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
if (jsonFile) fs.writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
cleanup();
process.exit(0);
