/**
 * Benchmark of the learners on the supervised-reptile Omniglot network (createOmniglotModel):
 * ms per inner step (forward + backward + Adam) at batch 10 and 50, and whole Reptile
 * meta-iterations (5 tasks × 5 Adam steps × batch 10, meta-step 1) for the native engine and the
 * tfjs learner, and — when `python3 -c 'import torch'` works — the PyTorch reference
 * (../shared/bench/pytorch_reference.py, on one thread and, where there are two CPUs, on two) in the
 * same invocation, interleaved run by run, with the ratios. Medians of `--runs` runs; every raw figure is kept in the JSON.
 *
 *   npm run bench -- [--json [file]] [--runs 3] [--tfjs-steps 1] [--no-tfjs] [--no-torch] [--meta-iters 50] [--no-anchors] [--no-models] [--no-executors]
 *
 * Then it runs bench/anchors.ts (npm run bench:anchors: the engine against JAX and PyTorch 2, written to
 * docs/native-bench.json), bench/models.ts (npm run bench:models: the engine on six model shapes against
 * PyTorch and JAX, written to docs/results/models-bench.json) and bench/executors.ts (npm run bench:executors; needs `npm run build` and redis-server).
 *
 * `native` is the engine as training runs it: its default thread count (2 where the machine has
 * two CPUs or more, `REPTILE_NATIVE_THREADS` otherwise), a meta-batch per `adaptTasks` call as the
 * inline executor makes it. `native_1thread` is the same on one thread.
 * The PyTorch reference runs twice per run: wall clock, then CPU time (`--no-cpu-time` skips the
 * second); the native engine's process CPU time is measured alongside its wall time.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { reptileUpdate } from '../src/core/meta-update.js';
import type { Params } from '../src/core/params.js';
import { Rng } from '../src/core/rng.js';
import { selectBackend } from '../src/engine/backend.js';
import { loadNative, requestedThreads } from '../src/engine/native.js';
import type { InnerOptions, Learner } from '../src/learners/learner.js';
import { NativeLearner } from '../src/learners/native-learner.js';
import { TfjsLearner } from '../src/learners/tfjs.js';
import type { Task } from '../src/tasks/task.js';
import { createOmniglotModel } from '../src/learners/models.js';
import { flopsPerExample, randomOmniglotTask } from './omniglot-model.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name: string): boolean => args.includes(`--${name}`);
const value = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : dflt;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number`);
  return v;
};
const jsonIndex = args.indexOf('--json');
const jsonFile = jsonIndex >= 0 && args[jsonIndex + 1] && !args[jsonIndex + 1]!.startsWith('--') ? args[jsonIndex + 1] : undefined;
const runs = value('runs', 3);
const tfjsSteps = value('tfjs-steps', 1);
const metaIters = value('meta-iters', 50);
const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number, d = 3): number => Number(x.toFixed(d));
const adam = (batch: number, steps: number): InnerOptions => ({ optimizer: 'adam', learningRate: 1e-3, beta1: 0, beta2: 0.999, epsilon: 1e-8, innerIters: steps, innerBatch: batch });

let lastStepCpuMs = 0;

async function stepMs(learner: Learner, task: Task, batch: number, steps: number): Promise<number> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await learner.adapt(task, adam(batch, steps), Rng.derive(1, batch, steps));
  const cpu = process.cpuUsage(cpu0);
  lastStepCpuMs = (cpu.user + cpu.system) / 1000 / steps;
  return (performance.now() - t0) / steps;
}

/**
 * One timed block of Reptile meta-iterations over 5 fixed random tasks, as the PyTorch reference
 * does it; the meta-batch goes to the learner as the inline executor hands it over.
 */
async function metaIterations(learner: Learner, tasks: Task[], iters: number, warmup: number): Promise<{ msPerIter: number; adaptMsPerIter: number; cpuMsPerIter: number }> {
  let phi = learner.getParams();
  let adaptMs = 0;
  const run = async (i: number): Promise<void> => {
    let adapted: Params[] = [];
    const t0 = performance.now();
    if (learner.adaptTasks) {
      adapted = (await learner.adaptTasks(tasks.map((task, t) => ({ task, rng: Rng.derive(2, i, t) })), adam(10, 5))).map((r) => r.params);
    } else {
      for (let t = 0; t < tasks.length; t++) adapted.push((await learner.adapt(tasks[t]!, adam(10, 5), Rng.derive(2, i, t))).params);
    }
    adaptMs += performance.now() - t0;
    phi = reptileUpdate(phi, adapted, 1 - i / (warmup + iters));
    learner.setParams(phi);
  };
  for (let i = 0; i < warmup; i++) await run(i);
  adaptMs = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = warmup; i < warmup + iters; i++) await run(i);
  const cpu = process.cpuUsage(cpu0);
  return { msPerIter: (performance.now() - t0) / iters, adaptMsPerIter: adaptMs / iters, cpuMsPerIter: (cpu.user + cpu.system) / 1000 / iters };
}

interface TorchRow {
  threads: number;
  fwd_bwd_adam: { batch: number; step_ms: number; images_per_s: number }[];
  meta_iteration: { meta_iter_ms: number; meta_iters_per_s: number; images_per_s: number }[];
}

/** The first python3 that imports torch ($REPTILE_BENCH_PYTHON, python3 on PATH, /usr/bin/python3), with torch's version. */
function findTorch(): { python: string; version: string } | undefined {
  const candidates = [process.env.REPTILE_BENCH_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return { python, version: r.stdout.trim() };
  }
  return undefined;
}

/**
 * Runs the PyTorch reference once. With `cpuTime`, its clock (time.perf_counter) is swapped for
 * the process CPU clock (time.process_time), so that every figure it prints is CPU time: on a
 * shared machine that compares the work done, not the share of the machine each process got.
 */
function runTorch(python: string, script: string, threads: string, cpuTime = false): TorchRow[] | undefined {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'reptile-bench-'));
  const out = path.join(dir, 'torch.json');
  try {
    // Without these malloc settings PyTorch returns its buffers to the OS after every step (shared/README.md).
    const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: '1000000000', MALLOC_TRIM_THRESHOLD_: '1000000000' };
    const scriptArgs = ['--threads', threads, '--batches', '10,50', '--meta-iters', String(metaIters), '--json', out];
    const argv = cpuTime
      ? ['-c', `import runpy, sys, time\ntime.perf_counter = time.process_time\nsys.argv = ${JSON.stringify([script, ...scriptArgs])}\nrunpy.run_path(sys.argv[0], run_name='__main__')`]
      : [script, ...scriptArgs];
    const r = spawnSync(python, argv, { env, encoding: 'utf8' });
    if (r.status !== 0) {
      log(`pytorch reference failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
      return undefined;
    }
    const parsed = JSON.parse(readFileSync(out, 'utf8')) as { results: TorchRow[] };
    return parsed.results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  await selectBackend('cpu');
  const loadBefore = os.loadavg();
  const native = loadNative();
  const torch = flag('no-torch') ? undefined : findTorch();
  const torchScript = path.resolve(root, '..', 'shared', 'bench', 'pytorch_reference.py');
  const withTorch = torch !== undefined && existsSync(torchScript);
  if (!native.ok) log(`native engine unavailable: ${native.reason}`);
  if (!withTorch) log(flag('no-torch') ? 'pytorch reference skipped (--no-torch)' : 'pytorch reference skipped (python3 cannot import torch, or ../shared/bench/pytorch_reference.py is missing)');

  const tasks = Array.from({ length: 5 }, (_, t) => randomOmniglotTask(Rng.derive(9, t)));
  const raw: Record<string, number[]> = {};
  const push = (key: string, v: number): void => {
    (raw[key] ??= []).push(v);
  };

  const threads = requestedThreads();
  const nativeLearner = native.ok ? new NativeLearner({ model: createOmniglotModel({ classes: 5, seed: 1 }), threads }) : undefined;
  const native1 = native.ok && threads > 1 ? new NativeLearner({ model: createOmniglotModel({ classes: 5, seed: 1 }), threads: 1 }) : undefined;
  // The portable kernels (no AVX2/AVX-512), on one thread: what a CPU without vector extensions gets.
  const nativeGeneric =
    native.ok && native.addon.supportedIsas()[0] !== 'generic' ? new NativeLearner({ model: createOmniglotModel({ classes: 5, seed: 1 }), threads: 1, isa: 'generic' }) : undefined;
  for (const l of [nativeLearner, native1, nativeGeneric]) {
    if (!l) continue;
    await stepMs(l, tasks[0]!, 10, 20);
    await metaIterations(l, tasks, 3, 0);
  }
  const measureNative = async (name: string, learner: NativeLearner, r: number): Promise<void> => {
    push(`${name}.step_ms.b10`, await stepMs(learner, tasks[0]!, 10, 200));
    push(`${name}_cpu.step_ms.b10`, lastStepCpuMs);
    push(`${name}.step_ms.b50`, await stepMs(learner, tasks[0]!, 50, 40));
    push(`${name}_cpu.step_ms.b50`, lastStepCpuMs);
    const meta = await metaIterations(learner, tasks, metaIters, 3);
    push(`${name}.meta_iter_ms`, meta.msPerIter);
    push(`${name}.meta_iter_adapt_ms`, meta.adaptMsPerIter);
    push(`${name}_cpu.meta_iter_ms`, meta.cpuMsPerIter);
    push(`${name}.meta_iter_cpu_ms`, meta.cpuMsPerIter);
    log(`run ${r + 1}/${runs} ${name} (${learner.threads} thread${learner.threads > 1 ? 's' : ''}): step b10 ${round(raw[`${name}.step_ms.b10`]!.at(-1)!)} ms, b50 ${round(raw[`${name}.step_ms.b50`]!.at(-1)!)} ms, meta-iteration ${round(meta.msPerIter)} ms (process CPU ${round(meta.cpuMsPerIter)} ms)`);
  };
  for (let r = 0; r < runs; r++) {
    if (nativeLearner) await measureNative('native', nativeLearner, r);
    if (native1) await measureNative('native_1thread', native1, r);
    if (nativeGeneric) await measureNative('native_generic', nativeGeneric, r);
    if (withTorch) {
      // One thread (the reference figure) and, where there are two CPUs, two threads.
      for (const row of runTorch(torch!.python, torchScript, os.availableParallelism() >= 2 ? '1,2' : '1') ?? []) {
        const name = row.threads === 1 ? 'torch' : `torch_${row.threads}threads`;
        for (const s of row.fwd_bwd_adam) push(`${name}.step_ms.b${s.batch}`, s.step_ms);
        push(`${name}.meta_iter_ms`, row.meta_iteration[0]!.meta_iter_ms);
        log(`run ${r + 1}/${runs} pytorch (${row.threads} thread${row.threads > 1 ? 's' : ''}): step b10 ${raw[`${name}.step_ms.b10`]!.at(-1)} ms, b50 ${raw[`${name}.step_ms.b50`]!.at(-1)} ms, meta-iteration ${raw[`${name}.meta_iter_ms`]!.at(-1)} ms`);
      }
      const cpuRow = flag('no-cpu-time') ? undefined : runTorch(torch!.python, torchScript, '1', true)?.[0];
      if (cpuRow) {
        for (const s of cpuRow.fwd_bwd_adam) push(`torch_cpu.step_ms.b${s.batch}`, s.step_ms);
        push('torch_cpu.meta_iter_ms', cpuRow.meta_iteration[0]!.meta_iter_ms);
        log(`run ${r + 1}/${runs} pytorch (1 thread), CPU time: step b10 ${raw['torch_cpu.step_ms.b10']!.at(-1)} ms, meta-iteration ${raw['torch_cpu.meta_iter_ms']!.at(-1)} ms`);
      }
    }
  }
  if (!flag('no-tfjs')) {
    // The tfjs cpu backend takes seconds per step: a few single steps only; its meta-iteration
    // time is estimated as 25 × its batch-10 step time (labelled as such).
    const tfjsLearner = new TfjsLearner({ model: createOmniglotModel({ classes: 5, seed: 1 }) });
    await stepMs(tfjsLearner, tasks[0]!, 10, 1);
    for (let r = 0; r < runs; r++) {
      push('tfjs.step_ms.b10', await stepMs(tfjsLearner, tasks[0]!, 10, tfjsSteps));
      log(`run ${r + 1}/${runs} tfjs-cpu: step b10 ${round(raw['tfjs.step_ms.b10']!.at(-1)!, 1)} ms`);
    }
    push('tfjs.step_ms.b50', await stepMs(tfjsLearner, tasks[0]!, 50, 1));
    tfjsLearner.dispose();
  }

  const images = 5 * 5 * 10;
  const summary: Record<string, Record<string, unknown>> = {};
  const learnerSummary = (name: string, threads: number | string, note?: string, stepsFrom = name): void => {
    const b10 = raw[`${stepsFrom}.step_ms.b10`];
    if (!b10) return;
    const b50 = raw[`${stepsFrom}.step_ms.b50`];
    const meta = raw[`${name}.meta_iter_ms`];
    const metaMs = meta ? median(meta) : 25 * median(b10);
    summary[name] = {
      threads,
      step_ms_b10: round(median(b10)),
      step_ms_b50: b50 ? round(median(b50)) : null,
      images_per_s_b10: round((10 * 1000) / median(b10), 1),
      images_per_s_b50: b50 ? round((50 * 1000) / median(b50), 1) : null,
      meta_iter_ms: round(metaMs),
      meta_iters_per_s: round(1000 / metaMs),
      meta_images_per_s: round((images * 1000) / metaMs, 1),
      ...(meta ? {} : { meta_estimated: 'meta-iteration = 25 × batch-10 step time (not run: too slow)' }),
      ...(raw[`${name}.meta_iter_adapt_ms`] ? { meta_iter_adapt_ms: round(median(raw[`${name}.meta_iter_adapt_ms`]!)), meta_iter_update_note: 'the rest of meta_iter_ms is the Reptile update in JS (core/reptileUpdate) and setParams' } : {}),
      // Process CPU time (all threads) per meta-iteration: what the run costs when it has a core to itself.
      ...(raw[`${name}.meta_iter_cpu_ms`] ? { meta_iter_cpu_ms: round(median(raw[`${name}.meta_iter_cpu_ms`]!)) } : {}),
      ...(note ? { note } : {}),
    };
  };
  const how = 'a meta-batch per adaptTasks() call, as the inline executor makes it';
  learnerSummary('native', nativeLearner?.threads ?? 1, nativeLearner ? `kernels ${nativeLearner.isa}; ${how}` : undefined);
  learnerSummary('native_1thread', 1, native1 ? `kernels ${native1.isa}; ${how}` : undefined);
  learnerSummary('native_generic', 1, nativeGeneric ? `portable kernels (no AVX2), one thread; ${how}` : undefined);
  learnerSummary('torch', 1, torch ? `torch ${torch.version} (${torch.python}), MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_=1e9` : undefined);
  learnerSummary('torch_2threads', 2, torch ? `torch ${torch.version}, two threads` : undefined);
  learnerSummary('native_cpu', nativeLearner?.threads ?? 1, 'process CPU time (all threads) instead of wall time');
  learnerSummary('native_1thread_cpu', 1, 'process CPU time instead of wall time');
  learnerSummary('torch_cpu', 1, 'process CPU time: the reference script run with time.perf_counter = time.process_time');
  learnerSummary('tfjs', 1, `tfjs ${tf.version.tfjs} cpu backend`);
  // ≈ 4 GFLOP per meta-iteration; ≈ 180 GFLOP/s per core (issue 5's figures).
  const flopPerMeta = countFlops() * 25;
  const ratios: Record<string, number> = {};
  const n = summary.native;
  const t = summary.torch;
  if (n && t) {
    ratios.native_over_torch_meta_iters_per_s = round((n.meta_iters_per_s as number) / (t.meta_iters_per_s as number), 2);
    ratios.native_over_torch_step_b10 = round((t.step_ms_b10 as number) / (n.step_ms_b10 as number), 2);
    ratios.native_over_torch_step_b50 = round((t.step_ms_b50 as number) / (n.step_ms_b50 as number), 2);
  }
  const nc = summary.native_cpu;
  const tc = summary.torch_cpu;
  if (nc && tc) {
    ratios.cpu_time_native_over_torch_meta_iters_per_s = round((nc.meta_iters_per_s as number) / (tc.meta_iters_per_s as number), 2);
    ratios.cpu_time_native_over_torch_step_b10 = round((tc.step_ms_b10 as number) / (nc.step_ms_b10 as number), 2);
  }
  const t2 = summary.torch_2threads;
  if (n && t2) ratios.native_over_torch_2threads_meta_iters_per_s = round((n.meta_iters_per_s as number) / (t2.meta_iters_per_s as number), 2);
  const n1 = summary.native_1thread;
  if (n1 && t) ratios.native_1thread_over_torch_meta_iters_per_s = round((n1.meta_iters_per_s as number) / (t.meta_iters_per_s as number), 2);
  const n1c = summary.native_1thread_cpu;
  if (n1c && tc) ratios.cpu_time_native_1thread_over_torch_meta_iters_per_s = round((n1c.meta_iters_per_s as number) / (tc.meta_iters_per_s as number), 2);
  if (n && summary.tfjs) ratios.native_over_tfjs_step_b10 = round((summary.tfjs.step_ms_b10 as number) / (n.step_ms_b10 as number), 1);
  const flops = n
    ? {
        gflop_per_meta_iter: round(flopPerMeta / 1e9),
        native_gflop_per_s: round((flopPerMeta / 1e9) * (n.meta_iters_per_s as number), 1),
        ceiling_meta_iters_per_s_2_cores: round((2 * 180e9) / flopPerMeta, 1),
        native_fraction_of_2_core_ceiling: round(((n.meta_iters_per_s as number) * flopPerMeta) / (2 * 180e9), 3),
        native_fraction_of_1_core_ceiling: round(((n.meta_iters_per_s as number) * flopPerMeta) / 180e9, 3),
        ...(nc ? { native_cpu_time_fraction_of_2_core_ceiling: round(((nc.meta_iters_per_s as number) * flopPerMeta) / (2 * 180e9), 3) } : {}),
        ...(n1 ? { native_1thread_fraction_of_2_core_ceiling: round(((n1.meta_iters_per_s as number) * flopPerMeta) / (2 * 180e9), 3) } : {}),
        steps_only_fraction_of_2_core_ceiling: round((flopPerMeta / 25 / ((n.step_ms_b10 as number) / 1000)) / (2 * 180e9), 3),
      }
    : undefined;
  // The machine may be shared: the load averages say how much else ran meanwhile.
  const machine = { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, loadavg_before: loadBefore.map((x) => round(x, 2)), loadavg_after: os.loadavg().map((x) => round(x, 2)) };
  const report = { machine, runs, summary, ratios, flops, raw };
  const text = JSON.stringify(report, null, 2);
  if (jsonIndex >= 0) {
    if (jsonFile) writeFileSync(jsonFile, `${text}\n`);
    else process.stdout.write(`${text}\n`);
  }
  for (const [name, s] of Object.entries(summary)) {
    log(`${name.padEnd(6)} threads ${s.threads}: step b10 ${s.step_ms_b10} ms, b50 ${s.step_ms_b50 ?? '-'} ms; meta-iteration ${s.meta_iter_ms} ms = ${s.meta_iters_per_s}/s, ${s.meta_images_per_s} images/s${s.meta_estimated ? ' (estimated)' : ''}${s.meta_iter_cpu_ms ? ` (process CPU ${s.meta_iter_cpu_ms} ms per meta-iteration)` : ''}`);
  }
  for (const [k, v] of Object.entries(ratios)) log(`${k}: ${v}`);
  log(`load average before ${machine.loadavg_before.join(' ')}, after ${machine.loadavg_after.join(' ')} (${machine.cpus} CPUs)`);
  if (flops) log(`FLOPs: ${flops.gflop_per_meta_iter} GFLOP per meta-iteration; native ${flops.native_gflop_per_s} GFLOP/s = ${flops.native_fraction_of_2_core_ceiling} of the 2-core ceiling (${flops.native_fraction_of_1_core_ceiling} of one core), ${n?.threads} thread(s)${flops.native_1thread_fraction_of_2_core_ceiling !== undefined ? `; on 1 thread ${flops.native_1thread_fraction_of_2_core_ceiling}` : ''}`);
  nativeLearner?.dispose();
  native1?.dispose();
  nativeGeneric?.dispose();
}

/** Multiply-add FLOPs of one fwd + bwd step at batch 10 (2 per multiply-add; forward, input and weight gradients). */
// One Adam step of batch 10 on the 5-way network.
function countFlops(): number {
  return 10 * flopsPerExample(5).step;
}

await main();
// Then the engine against JAX and PyTorch (bench/anchors.ts), unless --no-anchors.
if (!flag('no-anchors')) {
  const r = spawnSync(process.execPath, [...process.execArgv, path.join(root, 'bench', 'anchors.ts'), '--json', path.join(root, 'docs', 'native-bench.json')], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) process.exitCode = r.status ?? 1;
}
// Then the model shapes against PyTorch and JAX (bench/models.ts), unless --no-models.
if (!flag('no-models')) {
  const r = spawnSync(process.execPath, [...process.execArgv, path.join(root, 'bench', 'models.ts'), '--json', path.join(root, 'docs', 'results', 'models-bench.json')], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) process.exitCode = r.status ?? 1;
}
// Then the executors (inline, threads, redis; bench/executors.ts), unless --no-executors.
if (!flag('no-executors')) {
  const r = spawnSync(process.execPath, [...process.execArgv, '--initial-old-space-size=512', path.join(root, 'bench', 'executors.ts')], { stdio: 'inherit' });
  if (r.status !== 0) process.exitCode = r.status ?? 1;
}
