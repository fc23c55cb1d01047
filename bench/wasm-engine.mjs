/* global process, performance, console */
// The WebAssembly engine against the addon (one thread) and tfjs, measured in fresh processes,
// interleaved, medians over rounds: (1) milliseconds per Adam step of the paper's Omniglot network
// at inner batch 10 (wall and CPU time of the adapt call), (2) `reptile demo sine` end to end (wall
// and CPU time of the process, from /usr/bin/time). CPU time is the steadier figure on a busy machine.
// Run: npm run build && node bench/wasm-engine.mjs [rounds] [demo learners]   (default: 5 native,wasm,tfjs)
// The tfjs demo takes minutes; `node bench/wasm-engine.mjs 5 native,wasm` leaves it out, `5 none`
// times the steps only.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rounds = Number(process.argv[2] ?? 5);

// One measurement in this process: `node bench/wasm-engine.mjs step <engine>`.
if (process.argv[2] === 'step') {
  const { Rng, TfjsLearner, NativeLearner, WasmLearner, createOmniglotModel, selectBackend } = await import('../dist/index.js');
  const engine = process.argv[3].replace(/-avx2$|-simd128$/, '');
  await selectBackend(engine === 'tfjs-wasm' ? 'wasm' : 'cpu');
  const rng = Rng.derive(0);
  const count = 50;
  const inputs = Float32Array.from({ length: count * 784 }, () => (rng.next() < 0.2 ? 0 : 1));
  const targets = Float32Array.from({ length: count }, (_, i) => i % 5);
  const examples = { count, inputs, inputShape: [28, 28, 1], targets, targetShape: [] };
  const task = { kind: 'classification', numClasses: 5, support: examples, query: examples };
  const model = createOmniglotModel({ classes: 5, seed: 0 });
  const learner = engine === 'native' ? new NativeLearner({ model, threads: 1 }) : engine === 'wasm' ? new WasmLearner({ model }) : new TfjsLearner({ model });
  const steps = engine === 'tfjs-wasm' ? 25 : 200;
  const inner = { optimizer: 'adam', learningRate: 1e-3, innerIters: steps, innerBatch: 10 };
  await learner.adapt(task, { ...inner, innerIters: 5 }, Rng.derive(1)); // warm-up
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await learner.adapt(task, inner, Rng.derive(2));
  const wall = (performance.now() - t0) / steps;
  const c = process.cpuUsage(cpu0);
  console.log(JSON.stringify({ wall, cpu: (c.user + c.system) / 1000 / steps }));
  process.exit(0);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs) => `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;

// native-avx2: the addon on its AVX2 kernels (REPTILE_NATIVE_ISA=avx2), where the CPU has AVX-512;
// wasm: the build Node loads (relaxed SIMD where it validates), wasm-simd128: the SIMD128 build.
const stepEngines = ['native', 'native-avx2', 'wasm', 'wasm-simd128', 'tfjs-wasm'];
const steps = Object.fromEntries(stepEngines.map((e) => [e, { wall: [], cpu: [] }]));
const demoLearners = (process.argv[3] ?? 'native,wasm,tfjs').split(',').filter((l) => l && l !== 'none');
const demo = Object.fromEntries(demoLearners.map((e) => [e, { wall: [], cpu: [] }]));
const hasTime = existsSync('/usr/bin/time');
const out = mkdtempSync(path.join(os.tmpdir(), 'reptile-wasm-bench-'));

for (let r = 0; r < rounds; r++) {
  for (const e of stepEngines) {
    const p = spawnSync(process.execPath, [fileURLToPath(import.meta.url), 'step', e], { cwd: root, encoding: 'utf8', env: { ...process.env, REPTILE_NATIVE_THREADS: '1', ...(e === 'native-avx2' ? { REPTILE_NATIVE_ISA: 'avx2' } : {}), ...(e === 'wasm-simd128' ? { REPTILE_WASM_RELAXED: 'off' } : {}) } });
    if (p.status !== 0) throw new Error(`${e}: ${p.stderr}`);
    const m = JSON.parse(p.stdout.trim().split('\n').pop());
    steps[e].wall.push(m.wall);
    steps[e].cpu.push(m.cpu);
  }
  for (const l of demoLearners) {
    const args = [path.join(root, 'dist/cli/main.js'), 'demo', 'sine', '--learner', l, '--out', path.join(out, `${l}-${r}`)];
    const t0 = performance.now();
    const p = hasTime ? spawnSync('/usr/bin/time', ['-f', 'CPU %U %S', process.execPath, ...args], { cwd: root, encoding: 'utf8' }) : spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
    const wall = (performance.now() - t0) / 1000;
    if (p.status !== 0) throw new Error(`demo ${l}: ${p.stderr}`);
    demo[l].wall.push(wall);
    const cpu = /CPU ([\d.]+) ([\d.]+)/.exec(p.stderr);
    if (cpu) demo[l].cpu.push(Number(cpu[1]) + Number(cpu[2]));
  }
  console.error(`round ${r + 1}/${rounds} done`);
}
rmSync(out, { recursive: true, force: true });

console.log(`Omniglot network, Adam step at batch 10, ms per step, median (min–max) of ${rounds} fresh processes:`);
for (const e of stepEngines) console.log(`  ${e.padEnd(10)} wall ${fmt(steps[e].wall)}   cpu ${fmt(steps[e].cpu)}`);
console.log(`reptile demo sine, seconds, median (min–max) of ${rounds} runs:`);
for (const l of demoLearners) console.log(`  ${l.padEnd(10)} wall ${fmt(demo[l].wall)}   cpu ${demo[l].cpu.length ? fmt(demo[l].cpu) : 'n/a'}`);
