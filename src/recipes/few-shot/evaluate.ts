import { InvalidOptionsError } from '../../_utils/errors.js';
import { definedOnly } from '../../_utils/objects.js';
import type { Executor } from '../../exec/executor.js';
import { openRecordedFewShotData } from '../../data/open.js';
import { learnerKind, type LearnerChoice } from '../../learners/create-learner.js';
import type { Learner } from '../../learners/learner.js';
import { FewShotTaskSource, type LabeledDataset } from '../../tasks/labeled.js';
import { evaluate, type EvaluateResult } from '../../train/evaluate.js';
import type { MetaConfig } from '../../train/config.js';
import { FEW_SHOT_DEFAULTS, type FewShotLoss } from '../presets.js';
import { loadFewShotCheckpoint } from './checkpoint.js';
import { checkTaskFits, dataOrigin, evalInnerOptions, type FewShotSettings } from './settings.js';

/** Options of `fewShotEvaluate`. */
export interface FewShotEvaluateOptions {
  learner: Learner;
  dataset: LabeledDataset;
  settings: FewShotSettings;
  config: Pick<MetaConfig, 'optimizer' | 'learningRate' | 'beta1' | 'beta2' | 'innerBatch'>;
  samples: number;
  seed: number;
  /** Called after each task with (done, total). */
  onTask?: (done: number, total: number) => void;
  /** Runs the test tasks (default in this thread); threads and redis spread them over workers with the same scores. */
  executor?: Executor;
  /** Where `dataset` came from (see `FewShotOptions.origin`), needed by the threads and redis executors. */
  origin?: Record<string, unknown>;
}

/**
 * The paper's few-shot evaluation (§5): `samples` N-way tasks with shots + 1 examples per class
 * from `dataset`, one per class held out as the query; adapt from φ, classify the queries
 * (non-transductive unless `settings.transductive`), restore φ and Adam's state; mean accuracy
 * with a 95% interval.
 */
export async function fewShotEvaluate(options: FewShotEvaluateOptions): Promise<EvaluateResult> {
  const { settings } = options;
  checkTaskFits(options.dataset, 'test split', settings.classes, settings.shots + 1, '`shots` + 1');
  return evaluate({
    learner: options.learner,
    source: new FewShotTaskSource({ dataset: options.dataset, classes: settings.classes, shots: settings.shots, ...(options.origin ? { origin: options.origin } : {}) }),
    inner: evalInnerOptions(settings, options.config),
    samples: options.samples,
    seed: options.seed,
    transductive: settings.transductive,
    ...(options.onTask ? { onTask: options.onTask } : {}),
    ...(options.executor ? { executor: options.executor } : {}),
  });
}

/**
 * An `onTask` callback for long evaluations: a line `eval: done/total tasks, N s` each time
 * another tenth of the tasks is done (once per tenth, also when a parallel executor finishes
 * tasks in chunks), none at the end.
 */
export function evalProgress(log: (line: string) => void): (done: number, total: number) => void {
  const began = performance.now();
  let reported = 0;
  return (done, total) => {
    const tenth = Math.floor(done / Math.max(1, Math.floor(total / 10)));
    if (tenth <= reported || done >= total) return;
    reported = tenth;
    log(`eval: ${done}/${total} tasks, ${((performance.now() - began) / 1000).toFixed(0)} s`);
  };
}

/** Options of `evaluateFewShotCheckpoint`: the checkpoint, and what to change from how it was trained. */
export interface CheckpointEvaluationOptions {
  checkpoint: string;
  /** Dataset directory; default the one recorded in the checkpoint. */
  dataDir?: string;
  samples: number;
  seed: number;
  shots?: number;
  evalIters?: number;
  evalBatch?: number;
  transductive?: boolean;
  /** How the inner loop combines a minibatch's losses (default: as recorded, else `sum`). */
  loss?: FewShotLoss;
  split?: 'test' | 'train' | 'val';
  cacheDir?: string;
  learner?: LearnerChoice;
  /** Where `auto` says why it fell back to tfjs. */
  log?: (line: string) => void;
  /** Called after each task with (done, total). */
  onTask?: (done: number, total: number) => void;
  /** Runs the test tasks (default in this thread). */
  executor?: Executor;
}

/** What `evaluateFewShotCheckpoint` measured, with the settings it measured it at (`reptile eval --json`). */
export interface CheckpointEvaluation {
  accuracy: number;
  ci95: number;
  samples: number;
  classes: number;
  shots: number;
  transductive: boolean;
  evalIters: number;
  evalBatch: number;
  /** How the inner loop combined each minibatch's losses. */
  loss: FewShotLoss;
  split: 'test' | 'train' | 'val';
  dataset: string;
  dataDir: string;
  /** Meta-iteration of the checkpoint evaluated. */
  iteration: number;
  seed: number;
  learner: string;
  seconds: number;
  loadSeconds: number;
}

/**
 * Evaluates a few-shot checkpoint as the paper does (§5): `samples` test tasks, each adapted to
 * from φ with the inner optimizer's saved state and scored on held-out queries. One training run is
 * evaluated at several settings (`shots`, `transductive`, …), as the paper's 1-shot and 5-shot cells
 * come from one run trained with `trainShots`.
 */
export async function evaluateFewShotCheckpoint(options: CheckpointEvaluationOptions): Promise<CheckpointEvaluation> {
  const { info: ck, learner, model, iteration } = loadFewShotCheckpoint(options.checkpoint, { learner: options.learner ?? 'auto', ...(options.log ? { log: options.log } : {}) });
  try {
    const dataDir = options.dataDir ?? ck.data.dataDir;
    const split = options.split ?? 'test';
    const splitSeed = typeof ck.data['splitSeed'] === 'number' ? (ck.data['splitSeed'] as number) : ck.config.seed;
    const data = openRecordedFewShotData(ck.data, { seed: splitSeed, dataDir, ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}), ...(options.log ? { log: options.log } : {}) });
    const dataset = split === 'train' ? data.train : split === 'val' ? data.val : data.test;
    if (dataset === undefined) throw new InvalidOptionsError(`the ${ck.data.dataset} dataset has no '${split}' split: set \`split\` to 'test' or 'train'`, { option: 'split' });
    const settings: FewShotSettings = {
      ...ck.settings,
      ...definedOnly({ shots: options.shots, evalIters: options.evalIters, evalBatch: options.evalBatch, transductive: options.transductive, loss: options.loss }),
    };
    const began = performance.now();
    const r = await fewShotEvaluate({
      learner,
      dataset,
      settings,
      config: ck.config,
      samples: options.samples,
      seed: options.seed,
      origin: dataOrigin(data.describe, split, splitSeed),
      ...(options.onTask ? { onTask: options.onTask } : {}),
      ...(options.executor ? { executor: options.executor } : {}),
    });
    return {
      accuracy: r.mean,
      ci95: r.ci95,
      samples: r.samples,
      classes: settings.classes,
      shots: settings.shots,
      transductive: settings.transductive,
      evalIters: settings.evalIters,
      evalBatch: settings.evalBatch,
      loss: settings.loss ?? FEW_SHOT_DEFAULTS.loss,
      split,
      dataset: ck.data.dataset,
      dataDir,
      iteration,
      seed: options.seed,
      learner: learnerKind(learner),
      seconds: (performance.now() - began) / 1000,
      loadSeconds: data.seconds,
    };
  } finally {
    learner.dispose();
    model.dispose();
  }
}
