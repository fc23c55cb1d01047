/**
 * The engine on the model shapes people bring (npm run bench:models; also run by `npm run bench`
 * unless --no-models): ms per Adam step (forward, backward, update; β1 0, β2 0.999, ε 1e-8, lr 1e-3,
 * softmax cross-entropy) at batch 10 on fixed random inputs, for each shape that
 * ../shared/bench/models_reference.py defines — omniglot, miniimagenet, resnet12, mobilenet,
 * keras-convnet, mlp — built as tfjs models (bench/model-shapes.ts) and compiled onto the native
 * engine by `NativeLearner`, on one and two engine threads, against PyTorch and JAX on one and two
 * threads. One interleaved sitting: every measurement runs in a fresh process, programs take turns
 * round by round, the figures are medians of --rounds rounds (default 3), and every raw figure is
 * kept. For the convolutional shapes it also gives the share of the machine's two-core float32 FMA
 * ceiling (bench/peak-flops.cc) the best of ours reaches. A shape the engine cannot compile is
 * skipped with the engine's one-line reason.
 *
 *   npm run bench:models -- [--python .venv-anchors/bin/python] [--shared ../shared/bench] [--rounds 3]
 *                           [--models omniglot,mlp,...] [--frameworks torch,jax] [--no-cpu-time]
 *                           [--json docs/results/models-bench.json]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtLibrary, median, option, peakFlops, root } from './built.js';
import { MODEL_SHAPES, buildShape, flopsPerStep, type ShapeName } from './model-shapes.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => option(args, name, dflt);
const log = (line: string) => void process.stderr.write(`${line}\n`);
const round = (x: number, d = 3) => Number(x.toFixed(d));
const BATCH = 10;
const CLASSES = 5;

/** Ours, in this process: ms per Adam step (wall and process CPU), or why the engine refuses the shape. */
async function ours(name: ShapeName, threads: 1 | 2): Promise<{ ms: number; cpuMs: number } | { skip: string }> {
  const lib = await builtLibrary();
  await lib.selectBackend('cpu');
  const tf = await import('@tensorflow/tfjs');
  const model = buildShape(tf, name, CLASSES);
  let learner: InstanceType<typeof lib.NativeLearner>;
  try {
    learner = new lib.NativeLearner({ model, threads });
  } catch (e) {
    model.dispose();
    return { skip: String((e as Error).message).split('\n')[0]!.split('; the native engine supports')[0]! };
  }
  try {
    const rng = lib.Rng.derive(1);
    const inShape = model.inputs[0]!.shape.slice(1) as number[];
    const size = inShape.reduce((a, b) => a * b, 1);
    const inputs = new Float32Array(BATCH * size);
    for (let i = 0; i < inputs.length; i++) inputs[i] = rng.normal();
    const targets = Float32Array.from({ length: BATCH }, (_, i) => i % CLASSES);
    const support = { count: BATCH, inputs, inputShape: inShape, targets, targetShape: [] };
    const task = { kind: 'classification' as const, numClasses: CLASSES, support, query: support };
    const inner = (steps: number) => ({ optimizer: 'adam' as const, learningRate: 1e-3, beta1: 0, beta2: 0.999, epsilon: 1e-8, innerIters: steps, innerBatch: BATCH });
    // Warm up, then size a block to about 0.3 s, and take the median of 5 blocks, as the reference does.
    // Each call writes its result into the previous one's arrays, as the meta-training loop does.
    const t0 = performance.now();
    let last = await learner.adapt(task, inner(3), lib.Rng.derive(2, 0));
    const perStep = (performance.now() - t0) / 3;
    const steps = Math.max(3, Math.min(2000, Math.round(300 / Math.max(perStep, 1e-3))));
    const wall: number[] = [];
    const cpu: number[] = [];
    for (let b = 0; b < 5; b++) {
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      last = await learner.adapt(task, inner(steps), lib.Rng.derive(2, b + 1), { into: last });
      wall.push((performance.now() - w0) / steps);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1000 / steps);
    }
    return { ms: median(wall), cpuMs: median(cpu) };
  } finally {
    learner.dispose();
    model.dispose();
  }
}

// `--one NAME THREADS`: one measurement of ours, in a process of its own, as each reference's is.
if (args.includes('--one')) {
  const [name, threads] = [args[args.indexOf('--one') + 1] as ShapeName, Number(args[args.indexOf('--one') + 2])];
  if (!MODEL_SHAPES.includes(name) || (threads !== 1 && threads !== 2)) throw new Error('--one needs a model shape and 1 or 2 threads');
  process.stdout.write(`${JSON.stringify(await ours(name, threads))}\n`);
  process.exit(0);
}

const rounds = Number(opt('rounds', '3'));
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds needs a positive integer');
const wanted = opt('models', MODEL_SHAPES.join(',')).split(',');
for (const w of wanted) if (!MODEL_SHAPES.includes(w as ShapeName)) throw new Error(`unknown --models entry '${w}': use some of ${MODEL_SHAPES.join(',')}`);
const shapes = MODEL_SHAPES.filter((m) => wanted.includes(m));
const jsonFile = args.includes('--json') ? path.resolve(opt('json', path.join(root, 'docs', 'results', 'models-bench.json'))) : undefined;
// The reference script lives in a `shared/bench/` folder beside the repository's (or --shared DIR).
const script = path.join(path.resolve(opt('shared', path.join(root, '..', 'shared', 'bench'))), 'models_reference.py');
const python = opt('python', process.env['REPTILE_BENCH_PYTHON'] ?? (fs.existsSync(path.join(root, '.venv-anchors', 'bin', 'python')) ? path.join(root, '.venv-anchors', 'bin', 'python') : 'python3'));
const version = (module: string): string | undefined => {
  const r = spawnSync(python, ['-c', `import ${module}; print(${module}.__version__)`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
};
const frameworks = opt('frameworks', 'torch,jax')
  .split(',')
  .filter((f) => f !== '');
const versions: Record<string, string | undefined> = {};
for (const f of frameworks) {
  if (f !== 'torch' && f !== 'jax') throw new Error(`unknown --frameworks entry '${f}': use torch, jax or both`);
  versions[f] = fs.existsSync(script) ? version(f) : undefined;
  if (!versions[f]) log(`${f === 'torch' ? 'PyTorch' : 'JAX'} skipped: ${fs.existsSync(script) ? `${python} cannot import ${f} (pass --python)` : `${script} is missing (pass --shared DIR)`}`);
}

/**
 * One run of the reference. With `cpuTime`, its clock (time.perf_counter) is swapped for the process
 * CPU clock (time.process_time): on a shared machine that compares the work done on one thread,
 * not the share of the machine each process got.
 */
function reference(framework: 'torch' | 'jax', model: ShapeName, threads: number, cpuTime = false): number | undefined {
  // Without these malloc settings PyTorch returns its buffers to the OS after every step.
  const env = framework === 'torch' ? { ...process.env, MALLOC_MMAP_THRESHOLD_: '1000000000', MALLOC_TRIM_THRESHOLD_: '1000000000' } : process.env;
  const steps = model === 'resnet12' ? 10 : model === 'mlp' ? 2000 : 50;
  const scriptArgs = ['--framework', framework, '--model', model, '--batch', String(BATCH), '--classes', String(CLASSES), '--threads', String(threads), '--steps', String(steps)];
  const argv = cpuTime
    ? ['-c', `import runpy, sys, time\ntime.perf_counter = time.process_time\nsys.argv = ${JSON.stringify([script, ...scriptArgs])}\nrunpy.run_path(sys.argv[0], run_name='__main__')`]
    : [script, ...scriptArgs];
  const r = spawnSync(python, argv, { encoding: 'utf8', env });
  if (r.status !== 0) {
    log(`${framework} ${model} failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
    return undefined;
  }
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms_per_step: number }).ms_per_step;
}

// Also the references' process CPU time on one thread (--no-cpu-time skips it).
const cpuTimes = !args.includes('--no-cpu-time');
const skipped: Record<string, string> = {};
function oursAlone(model: ShapeName, threads: 1 | 2): { ms: number; cpuMs: number } | undefined {
  if (skipped[model]) return undefined;
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--one', model, String(threads)], { encoding: 'utf8' });
  if (r.status !== 0) {
    log(`reptile-ml ${model} failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
    return undefined;
  }
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number; cpuMs: number } | { skip: string };
  if ('skip' in out) {
    skipped[model] = out.skip;
    log(`${model} skipped: ${out.skip}`);
    return undefined;
  }
  return out;
}

// --- the machine's FMA ceiling, measured (best of 3 runs on 1 and 2 threads)

const peak = peakFlops(log);
if (peak) log(`FMA ceiling (bench/peak-flops.cc): ${peak.perCore} GFLOP/s on one core, ${peak.twoCores} on two`);
const loadBefore = os.loadavg();
const raw: Record<string, Record<string, number[]>> = Object.fromEntries(shapes.map((m) => [m, {}]));
const add = (model: ShapeName, who: string, ms: number | undefined) => {
  if (ms === undefined) return;
  (raw[model]![who] ??= []).push(ms);
  log(`round ${raw[model]![who]!.length}/${rounds} ${model}: ${who} ${ms.toFixed(3)} ms`);
};
for (let r = 0; r < rounds; r++) {
  for (const m of shapes) {
    for (const t of [2, 1] as const) {
      const o = oursAlone(m, t);
      add(m, `reptile-ml ${t}t`, o?.ms);
      add(m, `reptile-ml ${t}t cpu`, o?.cpuMs);
    }
    for (const f of ['torch', 'jax'] as const) {
      if (!versions[f]) continue;
      const who = f === 'torch' ? 'PyTorch' : 'JAX';
      for (const t of [1, 2]) add(m, `${who} ${t}t`, reference(f, m, t));
      if (cpuTimes) add(m, `${who} 1t cpu`, reference(f, m, 1, true));
    }
  }
}

const tf = await import('@tensorflow/tfjs');
const results: Record<string, unknown> = {};
const rows: string[][] = [];
for (const m of shapes) {
  const med = Object.fromEntries(Object.entries(raw[m]!).map(([k, v]) => [k, median(v)]));
  const best = (prefix: string) => {
    const found = Object.entries(med).filter(([k]) => k.startsWith(prefix) && !k.endsWith('cpu'));
    return found.length ? found.reduce((a, b) => (b[1] < a[1] ? b : a)) : undefined;
  };
  const us = best('reptile-ml');
  const refs = [best('PyTorch'), best('JAX')].filter((x): x is [string, number] => x !== undefined);
  const ref = refs.length ? refs.reduce((a, b) => (b[1] < a[1] ? b : a)) : undefined;
  const model = buildShape(tf, m, CLASSES);
  const flop = flopsPerStep(model, BATCH);
  model.dispose();
  const conv = m !== 'mlp';
  const share = us && peak && conv ? round(flop / (us[1] / 1000) / 1e9 / peak.twoCores, 3) : undefined;
  results[m] = {
    msMedian: Object.fromEntries(Object.entries(med).map(([k, v]) => [k, round(v, 4)])),
    ...(us ? { oursBest: us[0] } : {}),
    ...(ref ? { referenceBest: ref[0], referenceBestMs: round(ref[1], 4) } : {}),
    ...(us && ref ? { speedup: round(ref[1] / us[1], 2) } : {}),
    gflopPerStep: round(flop / 1e9, 4),
    ...(share !== undefined ? { fractionOfTwoCoreCeiling: share } : {}),
    ...(skipped[m] ? { skipped: skipped[m] } : {}),
    raw: raw[m],
  };
  const cell = (k: string) => (med[k] === undefined ? '-' : med[k]!.toFixed(med[k]! < 1 ? 3 : 2));
  const cpuRefs = ['PyTorch 1t cpu', 'JAX 1t cpu'].filter((k) => med[k] !== undefined).map((k) => med[k]!);
  const cpuRatio = med['reptile-ml 1t cpu'] !== undefined && cpuRefs.length ? Math.min(...cpuRefs) / med['reptile-ml 1t cpu']! : undefined;
  if (cpuRatio !== undefined) (results[m] as Record<string, unknown>).speedupCpuTime1Thread = round(cpuRatio, 2);
  rows.push([m, cell('reptile-ml 2t'), cell('reptile-ml 1t'), cell('PyTorch 2t'), cell('PyTorch 1t'), cell('JAX 2t'), cell('JAX 1t'), us && ref ? `${(ref[1] / us[1]).toFixed(2)}×` : '-', share !== undefined ? `${(share * 100).toFixed(0)}%` : '-', cell('reptile-ml 1t cpu'), cell('PyTorch 1t cpu'), cell('JAX 1t cpu'), cpuRatio !== undefined ? `${cpuRatio.toFixed(2)}×` : '-']);
}
const header = ['model', 'ours 2t', 'ours 1t', 'PyTorch 2t', 'PyTorch 1t', 'JAX 2t', 'JAX 1t', 'best/best', 'of ceiling', 'ours cpu', 'PyTorch cpu', 'JAX cpu', 'cpu ratio'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
log('\nms per Adam step at batch 10 (medians of wall time); best/best = best reference over best of ours; ceiling share for ours at its best;');
log('then process CPU time on one thread (ours, PyTorch, JAX) and the best reference over ours in CPU time');
for (const r of [header, ...rows]) log(r.map((c, i) => c.padStart(widths[i]!)).join('  '));
for (const [m, why] of Object.entries(skipped)) log(`${m}: skipped (${why})`);

const report = {
  date: new Date().toISOString().slice(0, 10),
  machine: { cpus: os.availableParallelism(), model: os.cpus()[0]?.model, node: process.version, loadavgBefore: loadBefore.map((x) => round(x, 2)), loadavgAfter: os.loadavg().map((x) => round(x, 2)) },
  batch: BATCH,
  classes: CLASSES,
  python,
  torch: versions['torch'] ?? null,
  jax: versions['jax'] ?? null,
  rounds,
  peakFlops: peak ?? null,
  results,
};
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
if (jsonFile) fs.writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
