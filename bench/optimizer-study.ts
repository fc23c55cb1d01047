/**
 * The optimizer study (`npm run study:optimizer`): the documentation's MNIST network trained with
 * Reptile (inner SGD and inner Adam), plain SGD and plain Adam over a grid of learning rates and
 * seeds, for a fixed number of epochs; writes docs/optimizer-study.{md,svg,jsonl}. A benchmark,
 * not a test: it takes about half an hour on the pure-JS cpu backend.
 *
 * Flags: --epochs N (2), --seeds N (3), --limit N (training images, 60000), --lrs a,b,c,
 * --out DIR (docs), --render-only (rebuild the .md and .svg from the .jsonl of an earlier run),
 * --sync-grid (instead of the learning-rate grid: Reptile over Adam at lr 0.01 for
 * syncPeriod k ∈ {5, 10} × metaStepSize ε ∈ {0.3, 0.5, 0.8}, written to optimizer-study-sync.jsonl
 * and rendered as a section of the same report).
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { renderPlots, type Series } from '../src/_utils/plot.js';
import { loadMnist } from '../src/data/mnist.js';
import { selectBackend } from '../src/engine/backend.js';
import { Reptile } from '../src/optim/reptile.js';
import { trainMnistMlp } from '../src/recipes/mnist-mlp.js';

type Method = 'reptile-sgd' | 'reptile-adam' | 'sgd' | 'adam';
const METHODS: { id: Method; label: string; short: string; color: string }[] = [
  { id: 'reptile-sgd', label: 'Reptile (inner SGD, k=5, ε=0.5)', short: 'Reptile over SGD', color: '#d62728' },
  { id: 'reptile-adam', label: 'Reptile (inner Adam, k=5, ε=0.5)', short: 'Reptile over Adam', color: '#9467bd' },
  { id: 'sgd', label: 'SGD', short: 'SGD', color: '#1f77b4' },
  { id: 'adam', label: 'Adam', short: 'Adam', color: '#2ca02c' },
];

interface Row {
  method: Method;
  lr: number;
  seed: number;
  epochs: number;
  trainExamples: number;
  testAccuracyByEpoch: number[];
  testLoss: number;
  diverged: boolean;
  seconds: number;
}

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const epochs = Number(flag('epochs') ?? 2);
const seeds = Number(flag('seeds') ?? 3);
const limit = Number(flag('limit') ?? 60000);
const lrs = (flag('lrs') ?? '0.001,0.003,0.01,0.03,0.1,0.3,1').split(',').map(Number);
const outDir = flag('out') ?? 'docs';
const renderOnly = process.argv.includes('--render-only');
const syncGrid = process.argv.includes('--sync-grid');
const logFile = path.join(outDir, 'optimizer-study.jsonl');
const syncLogFile = path.join(outDir, 'optimizer-study-sync.jsonl');
const command = `npm run study:optimizer -- --epochs ${epochs} --seeds ${seeds} --limit ${limit}${flag('lrs') ? ` --lrs ${flag('lrs')}` : ''}`;
const SYNC_K = [5, 10];
const SYNC_EPS = [0.3, 0.5, 0.8];
const SYNC_LR = 0.01;

interface SyncRow {
  syncPeriod: number;
  metaStepSize: number;
  lr: number;
  seed: number;
  epochs: number;
  trainExamples: number;
  testAccuracyByEpoch: number[];
  seconds: number;
  command: string;
}

function makeOptimizer(method: Method, lr: number): tf.Optimizer {
  switch (method) {
    case 'reptile-sgd':
      return new Reptile({ learningRate: lr, innerOptimizer: 'sgd', syncPeriod: 5, metaStepSize: 0.5 });
    case 'reptile-adam':
      return new Reptile({ learningRate: lr, innerOptimizer: 'adam', syncPeriod: 5, metaStepSize: 0.5 });
    case 'sgd':
      return tf.train.sgd(lr);
    case 'adam':
      return tf.train.adam(lr);
  }
}

async function run(): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  if (syncGrid && !renderOnly) {
    await selectBackend('cpu', (l) => console.log(l));
    const data = await loadMnist({ trainLimit: limit });
    writeFileSync(syncLogFile, '');
    const syncCommand = `npm run study:optimizer -- --sync-grid --epochs ${epochs} --seeds ${seeds} --limit ${limit}`;
    for (let seed = 0; seed < seeds; seed++) {
      for (const k of SYNC_K) {
        for (const eps of SYNC_EPS) {
          const opt = new Reptile({ learningRate: SYNC_LR, innerOptimizer: 'adam', syncPeriod: k, metaStepSize: eps });
          const r = await trainMnistMlp({ data, optimizer: opt, epochs, seed });
          const row: SyncRow = {
            syncPeriod: k,
            metaStepSize: eps,
            lr: SYNC_LR,
            seed,
            epochs: r.epochs,
            trainExamples: r.trainExamples,
            testAccuracyByEpoch: r.history.map((h) => h.testAccuracy),
            seconds: r.seconds,
            command: syncCommand,
          };
          appendFileSync(syncLogFile, `${JSON.stringify(row)}\n`);
          console.log(`seed ${seed} k ${k} ε ${eps}: acc ${row.testAccuracyByEpoch.map((a) => a.toFixed(4)).join(' → ')} ${r.seconds.toFixed(1)} s`);
        }
      }
    }
    await render();
    return;
  }
  if (!renderOnly) {
    await selectBackend('cpu', (l) => console.log(l));
    const data = await loadMnist({ trainLimit: limit });
    writeFileSync(logFile, '');
    console.log(`study: ${METHODS.length} methods × ${lrs.length} learning rates × ${seeds} seeds, ${epochs} epochs on ${data.train.count} images`);
    const began = performance.now();
    // Seeds outermost, so that an interrupted run still holds whole grids for the first seeds.
    for (let seed = 0; seed < seeds; seed++) {
      for (const lr of lrs) {
        for (const m of METHODS) {
          const r = await trainMnistMlp({ data, optimizer: makeOptimizer(m.id, lr), epochs, seed });
          const row: Row = {
            method: m.id,
            lr,
            seed,
            epochs: r.epochs,
            trainExamples: r.trainExamples,
            testAccuracyByEpoch: r.history.map((h) => h.testAccuracy),
            testLoss: r.testLoss,
            diverged: r.diverged,
            seconds: r.seconds,
          };
          appendFileSync(logFile, `${JSON.stringify(row)}\n`);
          const elapsed = (performance.now() - began) / 1000;
          console.log(`seed ${seed} lr ${lr} ${m.id}: acc ${row.testAccuracyByEpoch.map((a) => a.toFixed(4)).join(' → ')}${r.diverged ? ' (diverged)' : ''} ${r.seconds.toFixed(1)} s [${elapsed.toFixed(0)} s]`);
        }
      }
    }
  }
  await render();
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
function std(xs: number[]): number {
  const m = mean(xs);
  return xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
}
const pct = (v: number) => (Number.isFinite(v) ? (100 * v).toFixed(2) : 'NaN');

async function render(): Promise<void> {
  if (!existsSync(logFile)) throw new Error(`${logFile} is missing: run the study first`);
  const rows = readFileSync(logFile, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Row);
  const finalAcc = (r: Row) => r.testAccuracyByEpoch[r.testAccuracyByEpoch.length - 1] ?? Number.NaN;
  const grid = lrs.map((lr) => ({ lr, cells: METHODS.map((m) => rows.filter((r) => r.method === m.id && r.lr === lr)) }));
  const seedsSeen = [...new Set(rows.map((r) => r.seed))].sort();
  const nEpochs = Math.max(...rows.map((r) => r.testAccuracyByEpoch.length));
  const totalSeconds = rows.reduce((a, r) => a + r.seconds, 0);

  const lines: string[] = [];
  lines.push('# Optimizer study: Reptile as an optimizer vs SGD and Adam on MNIST', '');
  lines.push(
    `The documentation's network (784 → 10 ReLU → 10 softmax, categorical cross-entropy, batch 32) trained for ${nEpochs} epoch${nEpochs > 1 ? 's' : ''} on the first ${rows[0]?.trainExamples ?? '?'} MNIST training images, ` +
      `test accuracy on the 10,000 test images, seeds ${seedsSeen.join(', ')} (seeded initialisation and shuffling), tfjs ${tf.version.tfjs} cpu backend. ` +
      `Reptile is the Lookahead form (k = 5 inner steps, then slow ← slow + 0.5·(fast − slow), fast ← slow); the learning rate is the inner optimizer's. ` +
      `Adam is tfjs's (β1 = 0.9, β2 = 0.999). ${rows.length} runs, ${(totalSeconds / 60).toFixed(1)} minutes of training in all.`,
    '',
  );
  lines.push('Produced by:', '', '```', command, '```', '');
  lines.push(`on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'} (shared with other work, so the seconds are indicative only). Raw rows: [optimizer-study.jsonl](optimizer-study.jsonl).`, '');
  lines.push('![final test accuracy against learning rate](optimizer-study.svg)', '');
  lines.push('Lines: mean over seeds; dots: single runs (log learning-rate axis). Right: the same, showing only accuracies ≥ 0.8.', '');
  lines.push(`## Final test accuracy (%) after ${nEpochs} epoch${nEpochs > 1 ? 's' : ''}, mean ± sd over seeds`, '');
  lines.push(`| learning rate | ${METHODS.map((m) => m.label).join(' | ')} |`);
  lines.push(`| ---: | ${METHODS.map(() => '---:').join(' | ')} |`);
  for (const g of grid) {
    const cells = g.cells.map((rs) => {
      if (rs.length === 0) return '–';
      const accs = rs.map(finalAcc);
      const div = rs.filter((r) => r.diverged).length;
      return `${pct(mean(accs))} ± ${pct(std(accs))}${div > 0 ? ` (${div} diverged)` : ''}`;
    });
    lines.push(`| ${g.lr} | ${cells.join(' | ')} |`);
  }
  lines.push('');
  lines.push('## Test accuracy (%) after the first epoch, mean over seeds', '');
  lines.push(`| learning rate | ${METHODS.map((m) => m.label).join(' | ')} |`);
  lines.push(`| ---: | ${METHODS.map(() => '---:').join(' | ')} |`);
  for (const g of grid) lines.push(`| ${g.lr} | ${g.cells.map((rs) => (rs.length ? pct(mean(rs.map((r) => r.testAccuracyByEpoch[0] ?? Number.NaN))) : '–')).join(' | ')} |`);
  lines.push('');
  lines.push('## Summary per method', '');
  lines.push('| method | best learning rate | best final accuracy (%) | learning rates within 1 point of its best | learning rates ≥ 90% | mean seconds per run |');
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: |');
  const summary: Record<string, { bestLr: number; best: number; within1: number; above90: number }> = {};
  for (const [j, m] of METHODS.entries()) {
    const means = grid.map((g) => ({ lr: g.lr, acc: g.cells[j]!.length ? mean(g.cells[j]!.map(finalAcc)) : Number.NaN }));
    const valid = means.filter((x) => Number.isFinite(x.acc));
    const best = valid.reduce((a, b) => (b.acc > a.acc ? b : a), valid[0] ?? { lr: Number.NaN, acc: Number.NaN });
    const within1 = valid.filter((x) => x.acc >= best.acc - 0.01).length;
    const above90 = valid.filter((x) => x.acc >= 0.9).length;
    const secs = mean(rows.filter((r) => r.method === m.id).map((r) => r.seconds));
    summary[m.id] = { bestLr: best.lr, best: best.acc, within1, above90 };
    lines.push(`| ${m.label} | ${best.lr} | ${pct(best.acc)} | ${within1} of ${lrs.length} | ${above90} of ${lrs.length} | ${secs.toFixed(1)} |`);
  }
  lines.push('');
  if (existsSync(syncLogFile)) {
    const srows = readFileSync(syncLogFile, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as SyncRow);
    if (srows.length > 0) {
      const first = srows[0]!;
      lines.push(`## Reptile's own settings: sync period k and meta step ε (inner Adam, lr ${first.lr})`, '');
      lines.push(
        `Final test accuracy (%) after ${first.epochs} epoch${first.epochs > 1 ? 's' : ''} on ${first.trainExamples} images, mean ± sd over seeds ${[...new Set(srows.map((r) => r.seed))].join(', ')}; produced by \`${first.command}\`. ` +
          `For reference, plain Adam at the same learning rate: ${pct(mean(rows.filter((r) => r.method === 'adam' && r.lr === first.lr).map(finalAcc)))}.`,
        '',
      );
      lines.push(`| k | ${SYNC_EPS.map((e) => `ε = ${e}`).join(' | ')} |`);
      lines.push(`| ---: | ${SYNC_EPS.map(() => '---:').join(' | ')} |`);
      for (const k of SYNC_K) {
        const cells = SYNC_EPS.map((e) => {
          const accs = srows.filter((r) => r.syncPeriod === k && r.metaStepSize === e).map((r) => r.testAccuracyByEpoch[r.testAccuracyByEpoch.length - 1] ?? Number.NaN);
          return accs.length ? `${pct(mean(accs))} ± ${pct(std(accs))}` : '–';
        });
        lines.push(`| ${k} | ${cells.join(' | ')} |`);
      }
      lines.push('');
    }
  }
  // A hand-written reading of the numbers below the marker survives re-rendering.
  const mdFile = path.join(outDir, 'optimizer-study.md');
  const marker = '<!-- findings: hand-written, kept when the tables above are regenerated -->';
  const previous = existsSync(mdFile) ? readFileSync(mdFile, 'utf8') : '';
  const kept = previous.includes(marker) ? previous.slice(previous.indexOf(marker)) : `${marker}\n`;
  writeFileSync(mdFile, `${lines.join('\n')}\n${kept}`);

  const series: Series[] = [];
  for (const [j, m] of METHODS.entries()) {
    const xs: number[] = [];
    const ys: number[] = [];
    const px: number[] = [];
    const py: number[] = [];
    grid.forEach((g) => {
      const rs = g.cells[j]!;
      if (rs.length === 0) return;
      xs.push(g.lr);
      ys.push(mean(rs.map(finalAcc)));
      for (const r of rs) {
        px.push(g.lr);
        py.push(finalAcc(r));
      }
    });
    // Same name for the seeds' markers: the legend lists each method once (line = mean over seeds).
    series.push({ name: m.short, x: xs, y: ys, color: m.color });
    series.push({ name: m.short, x: px, y: py, color: m.color, markersOnly: true });
  }
  const svg = await renderPlots(
    [
      { title: `MNIST MLP: final test accuracy after ${nEpochs} epochs`, xLabel: 'learning rate', yLabel: 'test accuracy', logX: true, series },
      {
        title: 'Same, near the top (accuracy ≥ 0.8)',
        xLabel: 'learning rate',
        yLabel: 'test accuracy',
        logX: true,
        series: series.map((s) => ({ ...s, y: s.y.map((v) => (v >= 0.8 ? v : Number.NaN)) })),
      },
    ],
    2,
  );
  writeFileSync(path.join(outDir, 'optimizer-study.svg'), svg);
  console.log(`wrote ${path.join(outDir, 'optimizer-study.md')} and .svg from ${rows.length} runs`);
  console.log(JSON.stringify(summary));
}

await run();
