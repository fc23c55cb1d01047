/**
 * The asynchronous mode against the synchronous one on an uneven cluster (npm run bench:async):
 * three `reptile worker` processes on one redis-server, one of them made four times slower with
 * the testing knob `--slowdown 4` (before answering a job it sleeps three times what the job took
 * it).
 * Omniglot 5-way 5-shot with the paper's flags (meta-batch 5, 5 Adam steps of 10 examples, ε from
 * 1 to 0), the same number of meta-iterations (so the same number of tasks) in each mode:
 *
 * - task throughput: tasks applied per second of training, from the spans of `log.jsonl` after
 *   the first `--warmup` ones (the workers load the data and build their learner then);
 *   modes interleaved round by round, medians over rounds;
 * - test accuracy of each final checkpoint: `reptile eval` on `--eval-samples` test tasks
 *   (5-shot, 50 steps of 5), evaluated by the two fast workers alone.
 *
 *   npm run bench:async -- [--data-dir data/omniglot] [--iters 200] [--rounds 1] [--warmup 5]
 *                          [--eval-samples 1000] [--slowdown 4] [--max-staleness N] [--nice 10] [--json file]
 *
 * The runs are CLI processes, as a user runs them; a redis-server is started on a free loopback
 * port and stopped at the end. Every process runs under `nice -n --nice`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { dist, median, option, root } from './built.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => option(args, name, dflt);
const dataDir = path.resolve(opt('data-dir', path.join(root, 'data', 'omniglot')));
const iters = Number(opt('iters', '200'));
const rounds = Number(opt('rounds', '1'));
const warmup = Number(opt('warmup', '5'));
const evalSamples = Number(opt('eval-samples', '1000'));
const slowdown = opt('slowdown', '4');
const maxStaleness = opt('max-staleness', '');
const niceness = opt('nice', '10');
const jsonFile = args.includes('--json') ? opt('json', 'bench-async.json') : undefined;
const log = (line: string) => void process.stderr.write(`${line}\n`);
if (!fs.existsSync(dist('cli/main.js'))) throw new Error('run npm run build first');

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-bench-async-'));
const env = { ...process.env, REPTILE_NATIVE_THREADS: '1', REPTILE_CACHE: path.join(work, 'cache') };
const reptile = (argv: string[]): [string, string[]] => ['nice', ['-n', niceness, process.execPath, '--initial-old-space-size=512', dist('cli/main.js'), ...argv]];

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
const port = await freePort();
const redisServer = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', work, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
const url = `redis://127.0.0.1:${port}`;
await sleep(300);

const workers: ChildProcess[] = [];
async function startWorker(extra: string[]): Promise<ChildProcess> {
  const [cmd, argv] = reptile(['worker', '--redis', url, '--data-dir', dataDir, ...extra]);
  const w = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], env });
  workers.push(w);
  await new Promise<void>((resolve, reject) => {
    let text = '';
    w.stderr!.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('waiting for runs')) resolve();
    });
    w.once('exit', (code) => reject(new Error(`a worker exited (${code}):\n${text}`)));
  });
  return w;
}
const cleanup = () => {
  for (const w of workers) w.kill('SIGKILL');
  redisServer.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

async function run(argv: string[]): Promise<{ stdout: string; stderr: string }> {
  const [cmd, a] = reptile(argv);
  const child = spawn(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`reptile ${argv.join(' ')} failed (${code}):\n${stderr}`);
  return { stdout, stderr };
}

// The paper's Omniglot 5-way 5-shot flags (bench/omniglot-accuracy.sh), shorter.
const omniglot = ['--dataset', 'omniglot', '--data-dir', dataDir, '--classes', '5', '--shots', '5', '--train-shots', '10', '--inner-batch', '10', '--inner-iters', '5', '--learning-rate', '0.001', '--meta-step', '1', '--meta-step-final', '0', '--meta-batch', '5', '--eval-batch', '5', '--eval-iters', '50', '--eval-interval', '1000000'];

interface Span {
  iteration: number;
  seconds: number;
  async?: { tasks: number[]; staleness: number[]; dropped: number };
}

async function train(mode: 'sync' | 'async', round: number): Promise<{ dir: string; tasksPerS: number; seconds: number; dropped: number; staleness: number[]; counters?: unknown }> {
  const dir = path.join(work, `${mode}-${round}`);
  const flags = [...omniglot, '--meta-iters', String(iters), '--executor', 'redis', '--redis', url, '--run-id', `${mode}${round}`, '--checkpoint', dir, '--json'];
  if (mode === 'async') flags.push('--sync', 'async', ...(maxStaleness !== '' ? ['--max-staleness', maxStaleness] : []));
  const { stdout } = await run(['train', ...flags]);
  const spans = fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Span);
  const timed = spans.slice(warmup);
  const seconds = timed.reduce((s, l) => s + l.seconds, 0);
  const tasksPerS = (timed.length * 5) / seconds;
  const result = JSON.parse(stdout) as { async?: unknown };
  return { dir, tasksPerS, seconds, dropped: spans.reduce((s, l) => s + (l.async?.dropped ?? 0), 0), staleness: spans.flatMap((l) => l.async?.staleness ?? []), ...(result.async !== undefined ? { counters: result.async } : {}) };
}

log(`work folder ${work}; ${iters} meta-iterations × 5 tasks per run, ${rounds} round(s), worker slowdown ${slowdown}`);
const fast = [await startWorker([]), await startWorker([])];
const slow = await startWorker(['--slowdown', slowdown]);
const results: Record<'sync' | 'async', Awaited<ReturnType<typeof train>>[]> = { sync: [], async: [] };
for (let r = 0; r < rounds; r++) {
  for (const mode of r % 2 === 0 ? (['sync', 'async'] as const) : (['async', 'sync'] as const)) {
    const t = await train(mode, r);
    results[mode].push(t);
    log(`round ${r} ${mode}: ${t.tasksPerS.toFixed(2)} tasks/s over the last ${iters - warmup} meta-iterations (${t.seconds.toFixed(1)} s)${mode === 'async' ? `, ${t.dropped} results dropped as stale, median staleness ${median(t.staleness)}, most ${Math.max(...t.staleness)}` : ''}`);
  }
}

// Accuracy: the two fast workers alone evaluate every checkpoint (the tasks do not depend on who runs them).
slow.kill('SIGKILL');
void fast;
const accuracy: Record<'sync' | 'async', { accuracy: number; ci95: number }[]> = { sync: [], async: [] };
for (const mode of ['sync', 'async'] as const) {
  for (const t of results[mode]) {
    const { stdout } = await run(['eval', '--checkpoint', t.dir, '--data-dir', dataDir, '--samples', String(evalSamples), '--executor', 'redis', '--redis', url, '--json']);
    const e = JSON.parse(stdout) as { accuracy: number; ci95: number };
    accuracy[mode].push({ accuracy: e.accuracy, ci95: e.ci95 });
    log(`${mode} ${path.basename(t.dir)}: test accuracy ${(100 * e.accuracy).toFixed(2)} % ± ${(100 * e.ci95).toFixed(2)} (${evalSamples} tasks)`);
  }
}

const syncRate = median(results.sync.map((t) => t.tasksPerS));
const asyncRate = median(results.async.map((t) => t.tasksPerS));
const report = {
  machine: { cpus: os.availableParallelism(), model: os.cpus()[0]?.model, node: process.version },
  settings: { iters, rounds, warmup, evalSamples, slowdown: Number(slowdown), maxStaleness: maxStaleness === '' ? 'default (2 × meta-batch = 10)' : Number(maxStaleness), workers: 3 },
  throughput: { syncTasksPerS: syncRate, asyncTasksPerS: asyncRate, ratio: asyncRate / syncRate },
  accuracy,
  runs: results,
};
log(`throughput: sync ${syncRate.toFixed(2)} tasks/s, async ${asyncRate.toFixed(2)} tasks/s: ${(asyncRate / syncRate).toFixed(2)}×`);
log(`accuracy: sync ${accuracy.sync.map((a) => (100 * a.accuracy).toFixed(2)).join(', ')} %, async ${accuracy.async.map((a) => (100 * a.accuracy).toFixed(2)).join(', ')} %`);
if (jsonFile !== undefined) fs.writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
process.exit(0);
