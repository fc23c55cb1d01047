import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { writeFileAtomicSync } from '../_utils/atomic-write.js';
import { makeDirectory } from '../_utils/make-dir.js';
import { InvalidOptionsError, ReptileError } from '../_utils/errors.js';
import { openFewShotData } from '../data/open.js';
import type { OmniglotClassSplit } from '../data/omniglot.js';
import { loadNative } from '../engine/native.js';
import type { LearnerChoice } from '../learners/create-learner.js';
import { hasCheckpoint, readCheckpoint } from '../train/checkpoint.js';
import type { Executor } from '../exec/executor.js';
import { evalProgress, evaluateFewShotCheckpoint, type CheckpointEvaluation } from './few-shot/evaluate.js';
import { resolveFewShotRun } from './few-shot/settings.js';
import { fewShotTrain, type FewShotProgress } from './few-shot/train.js';
import { readProgress, type ProgressLine } from './learning-curve.js';

/** One cell of the paper's table: accuracy ± 95% interval, both as fractions. */
export interface Cell {
  accuracy: number;
  ci95: number;
}

/** A training run of the paper's Omniglot table, and the two table columns (1-shot, 5-shot) it gives. */
export interface Reproduction {
  name: 'omniglot-5w' | 'omniglot-20w';
  /** The preset it trains with (`--train-shots 10`, so 1-shot and 5-shot train identically). */
  preset: string;
  columns: { setting: string; shots: number; paper: { nonTransductive: Cell; transductive: Cell } }[];
}

/** The paper's Omniglot runs (Nichol, Achiam & Schulman 2018, arXiv 1803.02999, final version, Table 1). */
export const REPRODUCTIONS: Record<Reproduction['name'], Reproduction> = {
  'omniglot-5w': {
    name: 'omniglot-5w',
    preset: 'omniglot-5w5s',
    columns: [
      { setting: 'omniglot-5w1s', shots: 1, paper: { nonTransductive: { accuracy: 0.9539, ci95: 0.0009 }, transductive: { accuracy: 0.9768, ci95: 0.0004 } } },
      { setting: 'omniglot-5w5s', shots: 5, paper: { nonTransductive: { accuracy: 0.989, ci95: 0.001 }, transductive: { accuracy: 0.9948, ci95: 0.0006 } } },
    ],
  },
  'omniglot-20w': {
    name: 'omniglot-20w',
    preset: 'omniglot-20w5s',
    columns: [
      { setting: 'omniglot-20w1s', shots: 1, paper: { nonTransductive: { accuracy: 0.8814, ci95: 0.0015 }, transductive: { accuracy: 0.8943, ci95: 0.0014 } } },
      { setting: 'omniglot-20w5s', shots: 5, paper: { nonTransductive: { accuracy: 0.9665, ci95: 0.0033 }, transductive: { accuracy: 0.9712, ci95: 0.0032 } } },
    ],
  },
};

/** The names `reptile reproduce` takes. */
export const REPRODUCTION_NAMES = Object.keys(REPRODUCTIONS) as Reproduction['name'][];

/** Options of `reproduce`. */
export interface ReproduceOptions {
  name: string;
  dataDir: string;
  /** Results directory: the run's checkpoint goes to `<outDir>/<name>/`, the columns to `<outDir>/<setting>.json`. */
  outDir: string;
  /** Test tasks per cell (the paper: 10,000). */
  samples?: number;
  /** Seed of the test tasks. */
  evalSeed?: number;
  checkpointEvery?: number;
  /** How seed 0 picks the training characters (default `seeded`; `supervised-reptile`: the paper's own). */
  classSplit?: OmniglotClassSplit;
  cacheDir?: string;
  learner?: LearnerChoice;
  /**
   * Runs the cells' test tasks (default in this thread). Training always runs inline, with the
   * paper's `carry` policy; evaluation restores φ and the state for every task, so a parallel
   * executor gives the same cells.
   */
  evalExecutor?: Executor;
  /** The command line, recorded in the results. */
  command: string;
  log?: (line: string) => void;
  onProgress?: (p: FewShotProgress) => void;
  signal?: AbortSignal;
}

/** A column as `docs/results/<setting>.json` holds it. */
export interface ColumnResult {
  setting: string;
  metaIters: number;
  nonTransductive: Cell & { samples: number };
  transductive: Cell & { samples: number };
  paper: { nonTransductive: Cell; transductive: Cell };
  /** Training wall time (all sessions) plus the two cells' evaluation time. */
  wallSeconds: number;
  trainSeconds: number;
  evalSeconds: number;
  engine: string;
  executor: string;
  innerState: string;
  /** How the inner loop combined each minibatch's losses (supervised-reptile: the sum). */
  loss: string;
  checkpoint: string;
  machine: Record<string, unknown>;
  command: string;
}

/** What `reproduce` did: stopped early (resume by running it again), or the columns it wrote. */
export type ReproduceResult = { stopped: true; iteration: number; checkpoint: string } | { stopped: false; columns: { file: string; result: ColumnResult }[]; curve?: string };

/**
 * Reproduces one training run of the paper's Omniglot table (§5, Table 1): trains with the paper's
 * settings into `<outDir>/<name>/` (resuming the checkpoint there, which is the normal path for a
 * run longer than a working session), then evaluates 1-shot and 5-shot, non-transductive and
 * transductive, on `samples` test tasks each. Each cell is written as it completes and reused when
 * the command runs again on the same checkpoint; each column is written as `<outDir>/<setting>.json`.
 */
export async function reproduce(options: ReproduceOptions): Promise<ReproduceResult> {
  const spec = REPRODUCTIONS[options.name as Reproduction['name']];
  if (spec === undefined) throw new InvalidOptionsError(`unknown setting '${options.name}' to reproduce: \`name\` must be ${REPRODUCTION_NAMES.map((n) => `'${n}'`).join(' or ')}`, { option: 'name' });
  const log = options.log ?? (() => {});
  const dir = path.join(options.outDir, spec.name);
  const samples = options.samples ?? 10_000;
  const evalSeed = options.evalSeed ?? 0;
  // The data first: a missing or damaged archive leaves no empty run folder behind.
  const run = resolveFewShotRun({ preset: spec.preset, seed: 0 });
  const data = openFewShotData({ dataset: 'omniglot', dataDir: options.dataDir, seed: 0, ...(options.classSplit !== undefined ? { classSplit: options.classSplit } : {}), ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}), log });
  try {
    makeDirectory(dir);
  } catch (e) {
    throw new ReptileError(`cannot create the run folder '${dir}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable results folder`);
  }
  const plain = path.join(dir, 'progress.jsonl');
  const packed = `${plain}.gz`;
  // The committed form of the progress lines is compressed; training appends to the plain file.
  if (!fs.existsSync(plain) && fs.existsSync(packed)) writeFileAtomicSync(plain, zlib.gunzipSync(fs.readFileSync(packed)));
  log(`${spec.name}: ${hasCheckpoint(dir) ? `resuming from meta-iteration ${readCheckpoint(dir).iteration}` : 'training from scratch'} (preset ${spec.preset}, ${run.config.metaIters ?? '?'} meta-iterations) in ${dir}`);
  const trained = await fewShotTrain({
    data,
    settings: run.settings,
    config: run.config,
    evalInterval: run.evalInterval,
    checkpointDir: dir,
    checkpointEvery: options.checkpointEvery ?? 1000,
    logFile: path.join(dir, 'log.jsonl'),
    learner: options.learner ?? 'auto',
    log,
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  trained.learner.dispose();
  trained.model.dispose();
  const progress = readProgress(plain);
  writeFileAtomicSync(packed, zlib.gzipSync(fs.readFileSync(plain)));
  const checkpoint = trained.result.checkpoint ?? path.join(dir, 'reptile.ckpt');
  if (trained.result.stopped) return { stopped: true, iteration: trained.result.iterations, checkpoint };

  // fewShotTrain has drawn the learning curve from the progress lines when it ended.
  const curveFile = path.join(dir, 'learning-curve.svg');
  const curve = fs.existsSync(curveFile) ? curveFile : undefined;
  const trainSeconds = trainingSeconds(progress);
  const ck = readCheckpoint(dir);
  const engine = describeEngine(ck.meta['engine']);
  const columns: { file: string; result: ColumnResult }[] = [];
  for (const column of spec.columns) {
    const cells: Record<'nonTransductive' | 'transductive', CheckpointEvaluation> = {} as never;
    for (const transductive of [false, true]) {
      const file = path.join(dir, `eval-${column.shots}shot${transductive ? '-transductive' : ''}.json`);
      const want = { iteration: ck.iteration, samples, seed: evalSeed, shots: column.shots, transductive, classes: run.settings.classes, loss: run.settings.loss };
      let cell = readCell(file, want);
      if (cell === undefined) {
        log(`${column.setting} ${transductive ? 'transductive' : 'non-transductive'}: evaluating ${samples} test tasks`);
        cell = await evaluateFewShotCheckpoint({
          checkpoint: dir,
          dataDir: options.dataDir,
          samples,
          seed: evalSeed,
          shots: column.shots,
          transductive,
          loss: run.settings.loss,
          learner: options.learner ?? 'auto',
          log,
          ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
          ...(options.evalExecutor !== undefined ? { executor: options.evalExecutor } : {}),
          onTask: evalProgress(log),
        });
        writeFileAtomicSync(file, `${JSON.stringify(cell, null, 2)}\n`);
      } else {
        log(`${column.setting} ${transductive ? 'transductive' : 'non-transductive'}: ${path.basename(file)} already holds this checkpoint's ${samples}-task result`);
      }
      cells[transductive ? 'transductive' : 'nonTransductive'] = cell;
    }
    const evalSeconds = cells.nonTransductive.seconds + cells.transductive.seconds;
    const result: ColumnResult = {
      setting: column.setting,
      metaIters: ck.iteration,
      nonTransductive: { accuracy: cells.nonTransductive.accuracy, ci95: cells.nonTransductive.ci95, samples: cells.nonTransductive.samples },
      transductive: { accuracy: cells.transductive.accuracy, ci95: cells.transductive.ci95, samples: cells.transductive.samples },
      paper: column.paper,
      wallSeconds: round(trainSeconds + evalSeconds),
      trainSeconds: round(trainSeconds),
      evalSeconds: round(evalSeconds),
      engine,
      executor: 'inline',
      innerState: ck.meta['config'] !== undefined ? String((ck.meta['config'] as { innerState?: string }).innerState ?? 'carry') : 'carry',
      loss: run.settings.loss,
      checkpoint: path.join(dir, 'reptile.ckpt'),
      machine: machine(),
      command: options.command,
    };
    const file = path.join(options.outDir, `${column.setting}.json`);
    writeFileAtomicSync(file, `${JSON.stringify(result, null, 2)}\n`);
    columns.push({ file, result });
  }
  return { stopped: false, columns, ...(curve !== undefined ? { curve } : {}) };
}

// A cell computed before is reused only for the same checkpoint iteration and the same protocol.
function readCell(file: string, want: Partial<CheckpointEvaluation>): CheckpointEvaluation | undefined {
  if (!fs.existsSync(file)) return undefined;
  try {
    const cell = JSON.parse(fs.readFileSync(file, 'utf8')) as CheckpointEvaluation;
    for (const [k, v] of Object.entries(want)) if (cell[k as keyof CheckpointEvaluation] !== v) return undefined;
    return Number.isFinite(cell.accuracy) && Number.isFinite(cell.ci95) ? cell : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Training wall time over every session of a resumed run: each session's progress lines count
 * seconds from that session's start, so the total is the sum of each session's last value.
 */
export function trainingSeconds(lines: readonly ProgressLine[]): number {
  let total = 0;
  let last = 0;
  for (const p of lines) {
    if (p.seconds < last) total += last;
    last = p.seconds;
  }
  return total + last;
}

function describeEngine(recorded: unknown): string {
  if (recorded && typeof recorded === 'object') {
    const e = recorded as { learner?: string; threads?: number };
    return `${e.learner ?? 'unknown'}${e.threads !== undefined ? `, ${e.threads} thread${e.threads === 1 ? '' : 's'}` : ''}`;
  }
  return 'not recorded in the checkpoint';
}

/** The machine the results were measured on. */
export function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  const native = loadNative();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cpus: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${process.platform}-${process.arch}`,
    node: process.version,
    nativeKernels: native.ok ? native.addon.supportedIsas()[0] : null,
  };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
