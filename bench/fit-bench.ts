/**
 * `npm run bench:fit`: the seed's example (784-10-10, batch 32, 10 epochs) and Keras's MNIST convnet
 * (batch 128, 2 epochs) in one sitting: `fit` on the native engine (1 and 2 threads), tfjs's
 * `model.fit` on the wasm backend, and the PyTorch anchors of bench/mnist_torch.py (Lookahead over
 * Adam and plain Adam, 1 and 2 threads; the same network, batch, seeded order rule and epochs).
 * Every run is a fresh process; the runs of a round are interleaved (each round starts one later in
 * the list), round r trains with seed r. Prints a table (medians over rounds of the training
 * seconds, the time per epoch, the process CPU seconds, the share of the time outside the engine —
 * wall time outside the addon's fit calls, and the same in CPU time —, mean test accuracy over the
 * seeds, each run's speed-up over PyTorch's Lookahead at its best thread count, in wall and in CPU
 * time) and writes the raw runs with the table to a JSON file; each run's JSON line also goes to
 * stderr as it ends.
 *
 *   npm run bench:fit -- [--rounds 3] [--epochs 10] [--convnet-rounds 1] [--convnet-epochs 2]
 *     [--runs engine-1t,engine-2t,tfjs-wasm,torch-lookahead-1t,torch-lookahead-2t,torch-adam-1t,torch-adam-2t]
 *     [--convnet-runs engine-1t,engine-2t,torch-lookahead-1t,torch-lookahead-2t,torch-adam-1t,torch-adam-2t]
 *     [--python PATH] [--out docs/results/fit-mnist.json]
 *
 * `--convnet-rounds 0` leaves the convnet out; tfjs-wasm can be named in --convnet-runs (a 2-epoch
 * convnet on the wasm backend takes many minutes). PyTorch comes from --python (default
 * .venv-anchors/bin/python when present, else python3). Timings are only comparable from a quiet
 * machine: every figure here is from one sitting.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { median, option, root } from './built.js';

const args = process.argv.slice(2);
const rounds = Number(option(args, 'rounds', '3'));
const epochs = Number(option(args, 'epochs', '10'));
const convRounds = Number(option(args, 'convnet-rounds', '1'));
const convEpochs = Number(option(args, 'convnet-epochs', '2'));
const runs = option(args, 'runs', 'engine-1t,engine-2t,tfjs-wasm,torch-lookahead-1t,torch-lookahead-2t,torch-adam-1t,torch-adam-2t').split(',');
const convRuns = option(args, 'convnet-runs', 'engine-1t,engine-2t,torch-lookahead-1t,torch-lookahead-2t,torch-adam-1t,torch-adam-2t').split(',');
const venv = path.join(root, '.venv-anchors', 'bin', 'python');
const python = option(args, 'python', fs.existsSync(venv) ? venv : 'python3');
const out = path.resolve(root, option(args, 'out', 'docs/results/fit-mnist.json'));
const RUN = /^(engine-[12]t|tfjs-wasm|torch-(lookahead|adam)-[12]t)$/;
for (const r of [...runs, ...convRuns]) {
  if (!RUN.test(r)) {
    console.error(`bench:fit: unknown run '${r}' (engine-1t, engine-2t, tfjs-wasm, torch-lookahead-1t, torch-lookahead-2t, torch-adam-1t, torch-adam-2t)`);
    process.exit(2);
  }
}

interface Row {
  run: string;
  model: string;
  seed: number;
  epochs: number;
  trainSeconds: number;
  cpuSeconds: number;
  engineSeconds?: number | null;
  engineCpuSeconds?: number | null;
  testAccuracy: number;
  [k: string]: unknown;
}

/** One run in a fresh process; its JSON line. */
function once(run: string, model: 'mlp' | 'convnet', seed: number, n: number): Row {
  const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: '1000000000', MALLOC_TRIM_THRESHOLD_: '1000000000' };
  let cmd: string;
  let argv: string[];
  if (run.startsWith('torch-')) {
    const [, optimizer, threads] = /^torch-(\w+)-(\d)t$/.exec(run)!;
    cmd = python;
    argv = [path.join(root, 'bench', 'mnist_torch.py'), '--model', model, '--epochs', String(n), '--seeds', String(seed), '--threads', threads!, '--optimizers', optimizer!];
  } else {
    cmd = process.execPath;
    const which = run === 'tfjs-wasm' ? 'wasm' : `native${run[7]}`;
    argv = ['--import', 'tsx', path.join(root, 'bench', 'fit-mnist.ts'), '--run', which, '--model', model, '--epochs', String(n), '--seed', String(seed)];
  }
  const p = spawnSync(cmd, argv, { cwd: root, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const line = (p.stdout ?? '').trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (p.status !== 0 || line === undefined) {
    const why = (p.stderr ?? '').trim().split('\n').filter((l) => l.length < 400).slice(-3).join(' | ');
    throw new Error(`bench:fit: ${run} (${model}, seed ${seed}) failed: ${p.error?.message ?? why}`);
  }
  const row = JSON.parse(line) as Row;
  return { ...row, run, model, seed };
}

function sitting(model: 'mlp' | 'convnet', names: string[], n: number, count: number): Row[] {
  const rows: Row[] = [];
  for (let round = 0; round < count; round++) {
    for (let i = 0; i < names.length; i++) {
      const run = names[(i + round) % names.length]!;
      const row = once(run, model, round, n);
      rows.push(row);
      console.error(`${model} round ${round + 1}/${count} ${run}: ${row.trainSeconds.toFixed(2)} s, test accuracy ${(100 * row.testAccuracy).toFixed(2)}% ${JSON.stringify(row)}`);
    }
  }
  return rows;
}

interface Summary {
  run: string;
  rounds: number;
  trainSeconds: number;
  perEpoch: number;
  cpuSeconds: number;
  outsideEngine: number | null;
  cpuOutsideEngine: number | null;
  testAccuracy: number;
  speedupOverLookahead: number | null;
  cpuSpeedupOverLookahead: number | null;
}

function summarize(rows: Row[]): Summary[] {
  const names = [...new Set(rows.map((r) => r.run))];
  const base = names.filter((n) => n.startsWith('torch-lookahead')).map((n) => median(rows.filter((r) => r.run === n).map((r) => r.trainSeconds)));
  const best = base.length ? Math.min(...base) : NaN;
  const baseCpu = names.filter((n) => n.startsWith('torch-lookahead')).map((n) => median(rows.filter((r) => r.run === n).map((r) => r.cpuSeconds)));
  const bestCpu = baseCpu.length ? Math.min(...baseCpu) : NaN;
  return names.map((run) => {
    const mine = rows.filter((r) => r.run === run);
    const t = median(mine.map((r) => r.trainSeconds));
    const inside = mine.filter((r) => typeof r.engineSeconds === 'number');
    const cpu = median(mine.map((r) => r.cpuSeconds));
    return {
      run,
      rounds: mine.length,
      trainSeconds: t,
      perEpoch: t / mine[0]!.epochs,
      cpuSeconds: cpu,
      outsideEngine: inside.length ? median(inside.map((r) => 1 - (r.engineSeconds as number) / r.trainSeconds)) : null,
      cpuOutsideEngine: inside.length ? median(inside.map((r) => 1 - (r.engineCpuSeconds as number) / r.cpuSeconds)) : null,
      testAccuracy: mine.reduce((s, r) => s + r.testAccuracy, 0) / mine.length,
      speedupOverLookahead: Number.isFinite(best) ? best / t : null,
      cpuSpeedupOverLookahead: Number.isFinite(bestCpu) ? bestCpu / cpu : null,
    };
  });
}

function table(title: string, s: Summary[]): string {
  const lines = [title, 'run                  rounds  train s  s/epoch  cpu s  outside engine (cpu)  test acc  × lookahead (cpu)'];
  for (const r of s) {
    lines.push(
      [
        r.run.padEnd(20),
        String(r.rounds).padStart(6),
        r.trainSeconds.toFixed(2).padStart(8),
        r.perEpoch.toFixed(3).padStart(8),
        r.cpuSeconds.toFixed(2).padStart(6),
        (r.outsideEngine === null ? '-' : `${(100 * r.outsideEngine).toFixed(1)}% (${(100 * r.cpuOutsideEngine!).toFixed(1)}%)`).padStart(21),
        `${(100 * r.testAccuracy).toFixed(2)}%`.padStart(9),
        (r.speedupOverLookahead === null ? '-' : `${r.speedupOverLookahead.toFixed(1)}× (${r.cpuSpeedupOverLookahead!.toFixed(1)}×)`).padStart(17),
      ].join(' '),
    );
  }
  return lines.join('\n');
}

const mlp = sitting('mlp', runs, epochs, rounds);
const conv = convRounds > 0 ? sitting('convnet', convRuns, convEpochs, convRounds) : [];
const result = {
  date: new Date().toISOString(),
  machine: { cpus: (await import('node:os')).cpus()[0]?.model, count: (await import('node:os')).availableParallelism() },
  mlp: { epochs, batchSize: 32, rounds, summary: summarize(mlp), runs: mlp },
  convnet: conv.length ? { epochs: convEpochs, batchSize: 128, rounds: convRounds, summary: summarize(conv), runs: conv } : null,
};
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, `${JSON.stringify(result, null, 1)}\n`);
console.log(table(`The seed's example (784-10-10, batch 32), ${epochs} epochs; medians of ${rounds} rounds, accuracy averaged over seeds 0..${rounds - 1}`, result.mlp.summary));
if (result.convnet) console.log(`\n${table(`Keras's MNIST convnet (batch 128), ${convEpochs} epochs; medians of ${convRounds} rounds`, result.convnet.summary)}`);
console.log(`\nraw runs: ${path.relative(root, out)}`);
