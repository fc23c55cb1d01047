/**
 * The native engine against the strongest CPU anchors (npm run bench:anchors; also run by
 * `npm run bench` unless --no-anchors), on the built package, in one interleaved sitting:
 *
 * - reptile-ml: `metaTrain` as a user runs it (inline executor, Adam state carried from task to
 *   task, the native engine on its default two threads, and on one), over fixed random tasks,
 *   each measurement in a fresh process as each anchor's is;
 * - JAX/XLA: ../shared/bench/jax_reference.py on 1 and 2 threads (the best one counts);
 * - PyTorch: ../shared/bench/pytorch_reference.py on 1 and 2 threads (the best one counts);
 *
 * for four configurations: the paper's 5-way training (5 tasks × 5 Adam steps × batch 10), its
 * 20-way training (5 tasks × 10 steps × batch 20), 5-shot 5-way evaluation tasks (50 steps of
 * batch 5 on the 25 support images, then the 5 non-transductive predictions) and 1-shot 20-way
 * evaluation tasks (50 steps of batch 10 on 20 images, the paper's eval-batch for 20-way, then 20
 * predictions), timed per task as
 * `evaluate` runs a stream of them (independent, so the engine runs two at once on two threads). The anchors run an
 * evaluation task as a meta-iteration of one task with those steps and do not predict (a few
 * forward passes: their figures are, if anything, flattered). Also the machine's float32 FMA
 * ceiling, measured by bench/peak-flops.cc on 1 and 2 threads, and the fraction of it each
 * configuration reaches. Medians of --rounds rounds; every raw figure is kept.
 *
 *   npm run bench:anchors -- [--python .venv-anchors/bin/python] [--rounds 3] [--configs train5,train20,eval5,eval20]
 *                            [--json docs/native-bench.json]
 *
 * `--python` (or $REPTILE_BENCH_PYTHON) names the interpreter with jax and torch; see ../shared/README.md.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtLibrary, median, option, peakFlops, root } from './built.js';
import { flopsPerExample } from './omniglot-model.js';

const lib = await builtLibrary();

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => option(args, name, dflt);
const log = (line: string) => void process.stderr.write(`${line}\n`);
const round = (x: number, d = 3) => Number(x.toFixed(d));
const rounds = Number(opt('rounds', '3'));
const jsonFile = args.includes('--json') ? path.resolve(opt('json', path.join(root, 'docs', 'native-bench.json'))) : undefined;
const shared = path.resolve(root, '..', 'shared', 'bench');

interface Config {
  name: string;
  what: string;
  classes: number;
  shots: number;
  innerBatch: number;
  innerIters: number;
  metaBatch: number;
  /** Non-transductive predictions after adapting (evaluation tasks). */
  queries: number;
  /** Timed meta-iterations (or tasks) per run: ours, JAX, PyTorch. */
  iters: number;
}
const CONFIGS: Config[] = [
  { name: 'train5', what: 'Omniglot 5-way training: 5 tasks × 5 Adam steps × batch 10', classes: 5, shots: 10, innerBatch: 10, innerIters: 5, metaBatch: 5, queries: 0, iters: 60 },
  { name: 'train20', what: 'Omniglot 20-way training: 5 tasks × 10 Adam steps × batch 20', classes: 20, shots: 10, innerBatch: 20, innerIters: 10, metaBatch: 5, queries: 0, iters: 20 },
  { name: 'eval5', what: 'one 5-shot 5-way evaluation task: 50 Adam steps × batch 5, 5 predictions', classes: 5, shots: 5, innerBatch: 5, innerIters: 50, metaBatch: 1, queries: 5, iters: 40 },
  { name: 'eval20', what: 'one 1-shot 20-way evaluation task: 50 Adam steps × batch 10, 20 predictions', classes: 20, shots: 1, innerBatch: 10, innerIters: 50, metaBatch: 1, queries: 20, iters: 40 },
];
const wanted = opt('configs', CONFIGS.map((c) => c.name).join(',')).split(',');
for (const w of wanted) if (!CONFIGS.some((c) => c.name === w)) throw new Error(`unknown --configs entry '${w}': use some of ${CONFIGS.map((c) => c.name).join(',')}`);
const configs = CONFIGS.filter((c) => wanted.includes(c.name));

function flopsOf(c: Config): number {
  const f = flopsPerExample(c.classes);
  // A non-transductive prediction runs the support set and one query forward.
  return c.metaBatch * c.innerIters * c.innerBatch * f.step + c.queries * (c.classes * c.shots + 1) * f.forward;
}

// --- the machine's FMA ceiling, measured

// --- reptile-ml
function randomTask(rng: import('../src/core/rng.js').Rng, c: Config): import('../src/tasks/task.js').Task {
  const count = c.classes * c.shots;
  const inputs = new Float32Array(count * 784);
  for (let i = 0; i < inputs.length; i++) inputs[i] = rng.uniform(0, 1);
  const targets = new Float32Array(count);
  for (let i = 0; i < count; i++) targets[i] = Math.floor(i / c.shots);
  const support = { count, inputs, inputShape: [28, 28, 1], targets, targetShape: [] };
  const q = Math.max(c.queries, 1);
  const qInputs = new Float32Array(q * 784);
  for (let i = 0; i < qInputs.length; i++) qInputs[i] = rng.uniform(0, 1);
  const query = { count: q, inputs: qInputs, inputShape: [28, 28, 1], targets: Float32Array.from({ length: q }, (_, i) => i % c.classes), targetShape: [] };
  return { kind: 'classification', numClasses: c.classes, support, query };
}

async function ours(c: Config, threads: 1 | 2): Promise<number> {
  const model = lib.createFewShotModel({ kind: 'omniglot', inputShape: [28, 28, 1], classes: c.classes, seed: 0, init: 'glorot' });
  const learner = new lib.NativeLearner({ model, innerState: 'carry', threads });
  try {
    const tasks = Array.from({ length: 5 }, (_, i) => randomTask(lib.Rng.derive(7, i), c));
    let next = 0;
    const source = { kind: 'classification' as const, inputShape: [28, 28, 1], outputSize: c.classes, sample: () => tasks[next++ % tasks.length]!, describe: () => ({ task: 'bench' }) };
    const inner = { optimizer: 'adam' as const, learningRate: 1e-3, beta1: 0, beta2: 0.999, epsilon: 1e-8, innerIters: c.innerIters, innerBatch: c.innerBatch };
    if (c.queries === 0) {
      const config = { metaIters: 0, metaBatch: c.metaBatch, metaStep: 1, metaStepFinal: 0, innerIters: c.innerIters, innerBatch: c.innerBatch, learningRate: 1e-3, optimizer: 'adam' as const, innerState: 'carry' as const, seed: 0 };
      await lib.metaTrain({ learner, source, config: { ...config, metaIters: 3 } });
      const t0 = performance.now();
      await lib.metaTrain({ learner, source, config: { ...config, metaIters: c.iters } });
      return (performance.now() - t0) / c.iters;
    }
    // Evaluation tasks as `evaluate` runs them: each adapts from φ and the state, predicts its
    // queries and restores both; the learner runs independent tasks side by side where it can
    // (two single-thread engines on two threads).
    const items = (n: number, from: number) => Array.from({ length: n }, (_, i) => ({ task: tasks[(from + i) % tasks.length]!, rng: lib.Rng.derive(3, from + i) }));
    const score = lib.taskScoring(false);
    await learner.scoreTasks(items(4, 0), inner, score);
    const t0 = performance.now();
    await learner.scoreTasks(items(c.iters, 4), inner, score);
    return (performance.now() - t0) / c.iters;
  } finally {
    learner.dispose();
    model.dispose();
  }
}

// --- the anchors
const python = opt('python', process.env['REPTILE_BENCH_PYTHON'] ?? (fs.existsSync(path.join(root, '.venv-anchors', 'bin', 'python')) ? path.join(root, '.venv-anchors', 'bin', 'python') : 'python3'));
const version = (module: string): string | undefined => {
  const r = spawnSync(python, ['-c', `import ${module}; print(${module}.__version__)`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
};
const child = args.includes('--one');
const jaxVersion = !child && fs.existsSync(path.join(shared, 'jax_reference.py')) ? version('jax') : undefined;
const torchVersion = !child && fs.existsSync(path.join(shared, 'pytorch_reference.py')) ? version('torch') : undefined;
if (!jaxVersion && !child) log(`JAX skipped: ${python} cannot import jax (see ../shared/README.md; pass --python)`);
if (!torchVersion && !child) log(`PyTorch skipped: ${python} cannot import torch (see ../shared/README.md; pass --python)`);
const shape = (c: Config) => ['--classes', String(c.classes), '--train-shots', String(c.shots), '--inner-batch', String(c.innerBatch), '--inner-iters', String(c.innerIters), '--meta-batch', String(c.metaBatch)];

function jax(c: Config, threads: number): number | undefined {
  const r = spawnSync(python, [path.join(shared, 'jax_reference.py'), ...shape(c), '--threads', String(threads), '--iters', String(c.iters)], { encoding: 'utf8' });
  if (r.status !== 0) {
    log(`JAX failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
    return undefined;
  }
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { meta_iter_ms: number }).meta_iter_ms;
}

function torch(c: Config): Record<number, number> {
  const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: '1000000000', MALLOC_TRIM_THRESHOLD_: '1000000000' };
  const r = spawnSync(python, [path.join(shared, 'pytorch_reference.py'), ...shape(c), '--threads', '1,2', '--batches', String(c.innerBatch), '--min-time', '0.3', '--meta-iters', String(c.iters)], { encoding: 'utf8', env });
  if (r.status !== 0) {
    log(`PyTorch failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
    return {};
  }
  const rows = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { threads: number; meta_iteration: { meta_iter_ms: number }[] });
  return Object.fromEntries(rows.map((row) => [row.threads, row.meta_iteration[0]!.meta_iter_ms]));
}

// --- one sitting, interleaved round by round
await lib.selectBackend('cpu');
// `--one NAME THREADS`: one measurement of ours, in a process of its own, as each anchor's is.
if (args.includes('--one')) {
  const [name, threads] = [args[args.indexOf('--one') + 1], Number(args[args.indexOf('--one') + 2])];
  const c = CONFIGS.find((x) => x.name === name);
  if (c === undefined || (threads !== 1 && threads !== 2)) throw new Error('--one needs a configuration name and 1 or 2 threads');
  process.stdout.write(`${JSON.stringify({ ms: await ours(c, threads) })}\n`);
  process.exit(0);
}
const oursAlone = (c: Config, threads: 1 | 2): number | undefined => {
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--one', c.name, String(threads)], { encoding: 'utf8' });
  if (r.status !== 0) {
    log(`reptile-ml run failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
    return undefined;
  }
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number }).ms;
};
const peak = peakFlops(log);
if (peak) log(`FMA ceiling (bench/peak-flops.cc): ${peak.perCore} GFLOP/s on one core, ${peak.twoCores} on two`);
const raw: Record<string, Record<string, number[]>> = Object.fromEntries(configs.map((c) => [c.name, {}]));
const add = (c: Config, who: string, ms: number | undefined) => {
  if (ms === undefined) return;
  (raw[c.name]![who] ??= []).push(ms);
  log(`round ${raw[c.name]![who]!.length}/${rounds} ${c.name}: ${who} ${ms.toFixed(2)} ms`);
};
for (let r = 0; r < rounds; r++) {
  for (const c of configs) {
    add(c, 'reptile-ml, 2 engine threads', oursAlone(c, 2));
    add(c, 'reptile-ml, 1 engine thread', oursAlone(c, 1));
    if (jaxVersion) for (const t of [1, 2]) add(c, `JAX ${t} thread${t > 1 ? 's' : ''}`, jax(c, t));
    if (torchVersion) for (const [t, ms] of Object.entries(torch(c))) add(c, `PyTorch ${t} thread${Number(t) > 1 ? 's' : ''}`, ms);
  }
}

const results: Record<string, unknown> = {};
for (const c of configs) {
  const med = Object.fromEntries(Object.entries(raw[c.name]!).map(([k, v]) => [k, median(v)]));
  const best = (prefix: string) => {
    const rows = Object.entries(med).filter(([k]) => k.startsWith(prefix));
    return rows.length ? rows.reduce((a, b) => (b[1] < a[1] ? b : a)) : undefined;
  };
  const us = med['reptile-ml, 2 engine threads']!;
  const bj = best('JAX');
  const bt = best('PyTorch');
  const flop = flopsOf(c);
  results[c.name] = {
    what: c.what,
    msMedian: Object.fromEntries(Object.entries(med).map(([k, v]) => [k, round(v)])),
    perSecond: Object.fromEntries(Object.entries(med).map(([k, v]) => [k, round(1000 / v, 2)])),
    ...(bj ? { bestJax: bj[0], overBestJax: round(bj[1] / us, 2) } : {}),
    ...(bt ? { bestPyTorch: bt[0], overBestPyTorch: round(bt[1] / us, 2) } : {}),
    gflop: round(flop / 1e9, 4),
    ...(peak ? { fractionOfTwoCoreCeiling: round(flop / (us / 1000) / 1e9 / peak.twoCores, 3), fractionOfOneCoreCeiling1Thread: round(flop / (med['reptile-ml, 1 engine thread']! / 1000) / 1e9 / peak.perCore, 3) } : {}),
    raw: raw[c.name],
  };
  log(`${c.name}: ${JSON.stringify(results[c.name])}`);
}
// Which kind of machine this is: these shared machines come in kinds (CPU family and model, with or
// without AVX-512) whose speeds differ, for the anchors as for us, and the engine picks its kernels
// by them.
function cpuKind(): { cpuFamily?: number; cpuModel?: number; avx512: boolean; engineKernels?: string } {
  let info = '';
  try {
    info = fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // Not Linux: the model name above is all there is.
  }
  const field = (name: string) => {
    const m = new RegExp(`^${name}\\s*:\\s*(\\d+)`, 'm').exec(info);
    return m ? Number(m[1]) : undefined;
  };
  const status = lib.loadNative();
  let engineKernels: string | undefined;
  if (status.ok) {
    const model = lib.createFewShotModel({ kind: 'omniglot', inputShape: [28, 28, 1], classes: 5, seed: 0, init: 'glorot' });
    const learner = new lib.NativeLearner({ model, threads: 1 });
    engineKernels = learner.isa;
    learner.dispose();
    model.dispose();
  }
  return { cpuFamily: field('cpu family'), cpuModel: field('model'), avx512: /\bavx512f\b/.test(info), engineKernels };
}
const report = {
  date: new Date().toISOString().slice(0, 10),
  machine: { cpus: os.availableParallelism(), model: os.cpus()[0]?.model, ...cpuKind(), node: process.version },
  python,
  jax: jaxVersion ?? null,
  torch: torchVersion ?? null,
  rounds,
  peakFlops: peak ?? null,
  results,
};
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
if (jsonFile) fs.writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
