import { Rng } from '../src/core/rng.js';
import { NativeLearner } from '../src/learners/native.js';
import { reptileUpdate } from '../src/core/meta-update.js';
import { createOmniglotBenchModel, randomOmniglotTask } from './omniglot-model.js';
const nl = new NativeLearner({ model: createOmniglotBenchModel() });
const task = randomOmniglotTask(Rng.fromSeed(1));
const inner = (n: number) => ({ optimizer: 'adam' as const, learningRate: 1e-3, innerIters: n, innerBatch: 10 });
await nl.adapt(task, inner(100), Rng.fromSeed(0));
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
for (let r = 0; r < 3; r++) {
  let c0 = cpu(); let t0 = performance.now(); await nl.adapt(task, inner(250), Rng.fromSeed(r)); const long = (performance.now() - t0) / 250; const longCpu = (cpu() - c0) / 250;
  c0 = cpu(); t0 = performance.now(); for (let i = 0; i < 50; i++) await nl.adapt(task, inner(5), Rng.fromSeed(i)); const short = (performance.now() - t0) / 250; const shortCpu = (cpu() - c0) / 250;
  c0 = cpu(); t0 = performance.now(); const phi = nl.getParams(); const ad = []; for (let i = 0; i < 5; i++) ad.push(phi.clone()); for (let i = 0; i < 10; i++) { nl.setParams(reptileUpdate(phi, ad, 0.5)); } const upd = (performance.now() - t0) / 10; const updCpu = (cpu() - c0) / 10;
  console.log(`wall/cpu ms: step in long adapt ${long.toFixed(3)}/${longCpu.toFixed(3)}; step in 5-step adapts ${short.toFixed(3)}/${shortCpu.toFixed(3)}; per-adapt overhead wall ${((short - long) * 5).toFixed(3)} cpu ${((shortCpu - longCpu) * 5).toFixed(3)}; update+setParams ${upd.toFixed(3)}/${updCpu.toFixed(3)}`);
}
