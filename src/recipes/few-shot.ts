import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Params } from '../core/params.js';
import { writeFileAtomicSync } from '../_utils/atomic-write.js';
import { ReptileError } from '../_utils/errors.js';
import { definedOnly } from '../_utils/objects.js';
import type { Executor } from '../exec/executor.js';
import { innerStateFor } from '../exec/create-executor.js';
import { openRecordedFewShotData, type FewShotData } from '../data/open.js';
import { DEFAULT_CONV_INIT, createMiniImageNetModel, createOmniglotModel, type ConvInit } from '../learners/models.js';
import { createLearner, learnerKind, type LearnerChoice } from '../learners/create-learner.js';
import { TfjsLearner } from '../learners/tfjs.js';
import type { InnerOptions, Learner } from '../learners/learner.js';
import { FewShotTaskSource, type LabeledDataset } from '../tasks/labeled.js';
import { hasCheckpoint, readCheckpoint } from '../train/checkpoint.js';
import { evaluate, evaluateMany, type EvaluateResult } from '../train/evaluate.js';
import { metaTrain, type MetaCallbacks, type MetaTrainResult } from '../train/meta-train.js';
import { resolveMetaConfig, type MetaConfig } from '../train/config.js';
import { FEW_SHOT_DEFAULTS, getPreset, type FewShotDefaults, type FewShotLoss } from './presets.js';
import { readProgress, trimProgress, writeLearningCurve, type ProgressLine } from './learning-curve.js';

/** The paper's two few-shot networks. */
export type FewShotModelKind = 'omniglot' | 'miniimagenet';

/** The few-shot protocol's settings (supervised-reptile's flag names). */
export interface FewShotSettings {
  /** N: classes per task. */
  classes: number;
  /** K: support examples per class at evaluation. */
  shots: number;
  /** Support examples per class in training tasks (0 or undefined: same as `shots`). */
  trainShots?: number;
  /** Inner minibatch size when adapting to a test task. */
  evalBatch: number;
  /** Inner steps when adapting to a test task. */
  evalIters: number;
  /** Classify all queries of a test task in one batch. */
  transductive: boolean;
  /** Kernel initialisation of the network (default `fan-in`). */
  init?: ConvInit;
  /**
   * How the inner loop combines a minibatch's per-example losses (default `sum`, as
   * supervised-reptile; checkpoints that do not record it were trained identically under both).
   */
  loss?: FewShotLoss;
}

/** The network suited to a dataset: Mini-ImageNet's for large colour images, Omniglot's otherwise. */
export function modelKindFor(inputShape: readonly number[]): FewShotModelKind {
  return (inputShape[0] ?? 0) > 32 ? 'miniimagenet' : 'omniglot';
}

/** Builds the paper's network of `kind` for `inputShape` and `classes` outputs. */
export function createFewShotModel(options: { kind: FewShotModelKind; inputShape: readonly number[]; classes: number; seed: number; init?: ConvInit }): tf.Sequential {
  const [size, , channels] = options.inputShape;
  const common = { classes: options.classes, seed: options.seed, size: size ?? 28, channels: channels ?? 1, init: options.init ?? DEFAULT_CONV_INIT };
  return options.kind === 'miniimagenet' ? createMiniImageNetModel(common) : createOmniglotModel(common);
}

/** What {@link resolveFewShotRun} returns: everything a few-shot run needs, every value decided. */
export interface FewShotRun {
  /** The preset's dataset, when a preset was named. */
  dataset?: 'omniglot' | 'miniimagenet';
  settings: Required<FewShotSettings>;
  config: Partial<MetaConfig> & { seed: number };
  evalSamples: number;
  evalInterval: number;
}

/**
 * Composes a few-shot run's settings in one order: supervised-reptile's defaults
 * (`FEW_SHOT_DEFAULTS` and `DEFAULT_META_CONFIG`), then the named preset, then the caller's
 * overrides (e.g. the flags given on the command line). `trainShots` 0 becomes `shots`.
 */
export function resolveFewShotRun(options: { preset?: string; meta?: Partial<MetaConfig>; fewShot?: Partial<FewShotDefaults>; seed: number }): FewShotRun {
  const preset = options.preset === undefined ? undefined : getPreset(options.preset);
  if (preset !== undefined && preset.task !== 'few-shot') {
    throw new ReptileError(`preset '${preset.name}' is not a few-shot setting: use it with --task sine, or name a few-shot preset`, { exitCode: 2 });
  }
  const f: FewShotDefaults = { ...FEW_SHOT_DEFAULTS, ...(preset?.fewShot ?? {}), ...definedOnly(options.fewShot ?? {}) };
  const meta: Partial<MetaConfig> = { ...(preset?.meta ?? {}), ...definedOnly(options.meta ?? {}) };
  return {
    ...(preset !== undefined ? { dataset: preset.dataset } : {}),
    settings: { classes: f.classes, shots: f.shots, trainShots: f.trainShots > 0 ? f.trainShots : f.shots, evalBatch: f.evalBatch, evalIters: f.evalIters, transductive: f.transductive, init: f.init, loss: f.loss },
    config: { ...meta, seed: options.seed },
    evalSamples: f.evalSamples,
    evalInterval: f.evalInterval,
  };
}

/** Checks that every task the settings ask for can be drawn from `dataset`; one clear line if not. */
export function checkTaskFits(dataset: LabeledDataset, what: string, classes: number, perClass: number, perClassFlag: string): void {
  if (dataset.numClasses < classes) {
    throw new ReptileError(`the ${what} has ${dataset.numClasses} classes, fewer than --classes ${classes}: lower --classes or add classes to the dataset`, { exitCode: 2 });
  }
  for (let c = 0; c < dataset.numClasses; c++) {
    const n = dataset.countOf(c);
    if (n < perClass) {
      throw new ReptileError(`class '${dataset.className(c)}' of the ${what} has ${n} examples, fewer than the ${perClass} a task needs (${perClassFlag}): lower it or remove that class`, { exitCode: 2 });
    }
  }
}

/**
 * Adapting to a test task: `evalIters` Adam (or SGD) steps of `evalBatch` at the training learning
 * rate, the losses combined as `settings.loss` says (the sum: divided by the training `innerBatch`,
 * as every training minibatch is).
 */
export function evalInnerOptions(settings: FewShotSettings, config: Pick<MetaConfig, 'optimizer' | 'learningRate' | 'beta1' | 'beta2' | 'innerBatch'>): InnerOptions {
  const sum = (settings.loss ?? FEW_SHOT_DEFAULTS.loss) === 'sum';
  return { optimizer: config.optimizer, learningRate: config.learningRate, innerIters: settings.evalIters, innerBatch: settings.evalBatch, beta1: config.beta1, beta2: config.beta2, ...(sum ? { lossDivisor: config.innerBatch } : {}) };
}

/** One line of progress every `evalInterval` meta-iterations. */
export interface FewShotProgress {
  iteration: number;
  trainAccuracy: number;
  testAccuracy: number;
  loss: number;
  epsilon: number;
  /** Seconds since training began (this process). */
  seconds: number;
  /** Images per second through the inner loop (support images × inner iterations / time). */
  imagesPerSecond: number;
}

/** The JSON form of a progress line (`progress.jsonl`, `reptile train --json`). */
export function progressLine(p: FewShotProgress): ProgressLine {
  return { iteration: p.iteration, train: p.trainAccuracy, test: p.testAccuracy, loss: p.loss, epsilon: p.epsilon, seconds: p.seconds, imagesPerSecond: p.imagesPerSecond };
}

/** Options of `fewShotTrain`. */
export interface FewShotTrainOptions {
  data: FewShotData;
  settings: FewShotSettings;
  config: Partial<MetaConfig> & { seed: number };
  /** Print train/test accuracy of sampled tasks every this many meta-iterations (0: never). */
  evalInterval: number;
  /** Tasks per side evaluated at each interval (supervised-reptile: 1). */
  intervalSamples?: number;
  /** Called at each evaluation interval with the training and test accuracies so far. */
  onProgress?: (p: FewShotProgress) => void;
  checkpointDir?: string;
  checkpointEvery?: number;
  logFile?: string;
  signal?: AbortSignal;
  callbacks?: MetaCallbacks[];
  /** Stored in the checkpoint so `reptile eval` and `reptile export` can rebuild everything. */
  checkpointMeta?: Record<string, unknown>;
  /** Inner-loop engine: `auto` (default) takes the native engine when it is built. */
  learner?: LearnerChoice;
  /** Runs each meta-batch's adaptations (default inline); a parallel one defaults the inner state to `shared`. */
  executor?: Executor;
  /** Where `auto` says why it fell back to tfjs. */
  log?: (line: string) => void;
}

/**
 * Meta-trains the paper's network on a few-shot dataset (paper §5): training tasks are N-way with
 * `trainShots` support examples per class from the training classes; every `evalInterval`
 * meta-iterations one sampled training task and one test task are adapted to (non-transductive
 * unless `transductive`) and their accuracies reported, as supervised-reptile prints them.
 */
export async function fewShotTrain(options: FewShotTrainOptions): Promise<{ result: MetaTrainResult; learner: Learner; model: tf.Sequential; kind: FewShotModelKind }> {
  const { data, settings } = options;
  const trainShots = settings.trainShots !== undefined && settings.trainShots > 0 ? settings.trainShots : settings.shots;
  const init = settings.init ?? DEFAULT_CONV_INIT;
  const config = resolveMetaConfig({ ...definedOnly(options.config ?? {}), ...definedOnly({ innerState: innerStateFor(options.executor, options.config?.innerState) }) });
  checkTaskFits(data.train, 'training split', settings.classes, trainShots, '--train-shots');
  checkTaskFits(data.train, 'training split', settings.classes, settings.shots + 1, '--shots + 1');
  checkTaskFits(data.test, 'test split', settings.classes, settings.shots + 1, '--shots + 1');
  if (options.checkpointDir !== undefined) checkResumable(options.checkpointDir, { ...settings, trainShots }, data.describe);
  const kind = modelKindFor(data.train.inputShape);
  const model = createFewShotModel({ kind, inputShape: data.train.inputShape, classes: settings.classes, seed: config.seed, init });
  const learner = createLearner({ model, learner: options.learner ?? 'auto', innerState: config.innerState, ...(options.log ? { log: options.log } : {}) });
  const source = new FewShotTaskSource({ dataset: data.train, classes: settings.classes, shots: settings.shots, trainShots, origin: dataOrigin(data.describe, 'train', config.seed) });
  const trainEval = new FewShotTaskSource({ dataset: data.train, classes: settings.classes, shots: settings.shots });
  const testEval = new FewShotTaskSource({ dataset: data.test, classes: settings.classes, shots: settings.shots });
  const began = performance.now();
  let images = 0;
  let innerSeconds = 0;
  const intervalSamples = options.intervalSamples ?? 1;
  const inner = evalInnerOptions(settings, config);
  // Beside a checkpoint: every progress line in progress.jsonl, drawn as learning-curve.svg.
  const progressFile = options.checkpointDir !== undefined ? path.join(options.checkpointDir, 'progress.jsonl') : undefined;
  let sinceCurve = 0;
  const drawCurve = async (): Promise<void> => {
    if (progressFile === undefined) return;
    sinceCurve = 0;
    const name = String(data.describe['dataset'] ?? 'few-shot');
    await writeLearningCurve(options.checkpointDir!, readProgress(progressFile), `${name} ${settings.classes}-way: accuracy of sampled ${settings.shots}-shot tasks`);
  };
  const intervalCallback: MetaCallbacks = {
    onTrainBegin: ({ startIteration }) => {
      if (progressFile !== undefined) trimProgress(progressFile, startIteration);
    },
    onTrainEnd: drawCurve,
    onMetaIterEnd: async (iteration, logs) => {
      images += config.metaBatch * config.innerIters * config.innerBatch;
      innerSeconds += logs.seconds;
      const done = iteration + 1;
      if (options.evalInterval <= 0 || done % options.evalInterval !== 0) return;
      // Both sampled tasks at once: a learner that runs tasks side by side puts one on each core.
      const [train, test] = (await evaluateMany({
        learner,
        inner,
        transductive: settings.transductive,
        sets: [
          { source: trainEval, seed: (config.seed * 7919 + done * 2) >>> 0, samples: intervalSamples },
          { source: testEval, seed: (config.seed * 7919 + done * 2 + 1) >>> 0, samples: intervalSamples },
        ],
      })) as [EvaluateResult, EvaluateResult];
      const progress: FewShotProgress = {
        iteration: done,
        trainAccuracy: train.mean,
        testAccuracy: test.mean,
        loss: logs.loss,
        epsilon: logs.epsilon,
        seconds: (performance.now() - began) / 1000,
        imagesPerSecond: images / innerSeconds,
      };
      if (progressFile !== undefined) {
        fs.appendFileSync(progressFile, `${JSON.stringify(progressLine(progress))}\n`);
        if (++sinceCurve >= 100) await drawCurve();
      }
      options.onProgress?.(progress);
    },
  };
  const result = await metaTrain({
    learner,
    source,
    config,
    callbacks: [...(options.callbacks ?? []), intervalCallback],
    ...(options.executor !== undefined ? { executor: options.executor } : {}),
    ...(options.checkpointDir !== undefined ? { checkpointDir: options.checkpointDir } : {}),
    ...(options.checkpointEvery !== undefined ? { checkpointEvery: options.checkpointEvery } : {}),
    ...(options.logFile !== undefined ? { logFile: options.logFile } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
    checkpointMeta: {
      fewShot: { ...settings, trainShots, init },
      data: data.describe,
      modelKind: kind,
      inputShape: data.train.inputShape,
      modelTopology: model.toJSON(null, false),
      // Which engine trained the run (the last session's, for a resumed one).
      engine: { learner: learnerKind(learner), threads: (learner as { threads?: number }).threads ?? 1, executor: options.executor?.name ?? 'inline' },
      ...options.checkpointMeta,
    },
  });
  return { result, learner, model, kind };
}

// A resumed run must draw the same tasks from the same data, so the task shape and the data set
// have to match what the checkpoint was written with (metaTrain checks the meta settings).
function checkResumable(dir: string, settings: FewShotSettings & { trainShots: number }, data: Record<string, unknown>): void {
  if (!hasCheckpoint(dir)) return;
  const meta = readCheckpoint(dir).meta;
  const saved = meta['fewShot'] as Partial<FewShotSettings> | undefined;
  const savedData = meta['data'] as Record<string, unknown> | undefined;
  if (saved === undefined || savedData === undefined) {
    throw new ReptileError(`checkpoint in '${dir}' is not from a few-shot run: use a new --checkpoint directory`);
  }
  const pairs: [string, unknown, unknown][] = [
    ['--classes', saved.classes, settings.classes],
    ['--shots', saved.shots, settings.shots],
    ['--train-shots', saved.trainShots, settings.trainShots],
    ['--init', saved.init ?? DEFAULT_CONV_INIT, settings.init ?? DEFAULT_CONV_INIT],
    ['--dataset', savedData['dataset'], data['dataset']],
    ['--class-split', savedData['classSplit'] ?? 'seeded', data['classSplit'] ?? 'seeded'],
  ];
  // Checkpoints written before fingerprints existed are resumed on the dataset name alone.
  if (savedData['fingerprint'] !== undefined) pairs.push(['the data (fingerprint)', savedData['fingerprint'], data['fingerprint']]);
  for (const [what, was, now] of pairs) {
    if (was !== now) {
      throw new ReptileError(`checkpoint in '${dir}' was trained with ${what} ${String(was)}, not ${String(now)}: resume with the same settings and data, or use a new --checkpoint directory`, { exitCode: 2 });
    }
  }
}

/** What a few-shot checkpoint records about its run (see `fewShotTrain`). */
export interface FewShotCheckpointInfo {
  settings: FewShotSettings & { trainShots: number };
  data: Record<string, unknown> & { dataset: string; dataDir: string };
  kind: FewShotModelKind;
  inputShape: number[];
  config: MetaConfig;
}

/**
 * Reads a few-shot checkpoint's description and rebuilds its learner with φ and the inner
 * optimizer's state; φ is also written into the returned tfjs model (for export).
 */
export function loadFewShotCheckpoint(
  dir: string,
  options: { learner?: LearnerChoice; log?: (line: string) => void } = {},
): { info: FewShotCheckpointInfo; learner: Learner; model: tf.Sequential; iteration: number } {
  const ckpt = readCheckpoint(dir);
  const meta = ckpt.meta;
  if (meta['fewShot'] === undefined || meta['data'] === undefined || meta['modelKind'] === undefined) {
    throw new ReptileError(`checkpoint in '${dir}' is not from a few-shot run ('reptile train --dataset ...'): pass the --checkpoint directory of a few-shot training run`);
  }
  const info: FewShotCheckpointInfo = {
    settings: meta['fewShot'] as FewShotCheckpointInfo['settings'],
    data: meta['data'] as FewShotCheckpointInfo['data'],
    kind: meta['modelKind'] as FewShotModelKind,
    inputShape: meta['inputShape'] as number[],
    config: meta['config'] as MetaConfig,
  };
  const model = createFewShotModel({ kind: info.kind, inputShape: info.inputShape, classes: info.settings.classes, seed: info.config.seed, ...(info.settings.init !== undefined ? { init: info.settings.init } : {}) });
  const learner = createLearner({ model, learner: options.learner ?? 'auto', innerState: info.config.innerState, ...(options.log ? { log: options.log } : {}) });
  if (ckpt.params.layout.hash !== learner.layout.hash) {
    throw new ReptileError(`checkpoint in '${dir}' does not fit the ${info.kind} network it names (layout ${ckpt.params.layout.hash} vs ${learner.layout.hash}): the checkpoint is damaged or from another version`);
  }
  const params = new Params(learner.layout, ckpt.params.data);
  learner.setParams(params);
  learner.setOptimizerState(ckpt.optimizer);
  // The tfjs model holds φ too, whichever engine runs the inner loops, so that export sees it.
  new TfjsLearner({ model }).setParams(params);
  return { info, learner, model, iteration: ckpt.iteration };
}

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
  checkTaskFits(options.dataset, 'test split', settings.classes, settings.shots + 1, '--shots + 1');
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

/**
 * Where a split of a few-shot dataset came from, as plain data for `FewShotOptions.origin`: the
 * dataset's name and directory, the split and its seed, and the data's fingerprint.
 */
export function dataOrigin(describe: Record<string, unknown>, split: 'train' | 'test' | 'val', seed: number): Record<string, unknown> {
  return {
    dataset: describe['dataset'],
    dataDir: describe['dataDir'],
    split,
    splitSeed: typeof describe['splitSeed'] === 'number' ? describe['splitSeed'] : seed,
    ...(describe['classSplit'] !== undefined ? { classSplit: describe['classSplit'] } : {}),
    fingerprint: describe['fingerprint'],
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
  /** Where progress and fallback notices go, one line at a time (default: nowhere). */
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
    if (dataset === undefined) throw new ReptileError(`the ${ck.data.dataset} dataset has no '${split}' split: use --split test or train`, { exitCode: 2 });
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

/**
 * Writes `model` as a TensorFlow.js LayersModel — `model.json` (topology and weights manifest)
 * and `weights.bin` — into `outDir`, which `tf.loadLayersModel` loads. The batch-norm layers
 * must be applied in training mode (`model.apply(x, { training: true })`) to reproduce the
 * paper's batch-statistics behaviour; their moving averages are never trained.
 */
export async function exportLayersModel(model: tf.LayersModel, outDir: string): Promise<string[]> {
  try {
    fs.mkdirSync(outDir, { recursive: true });
  } catch (e) {
    throw new ReptileError(`cannot create the export directory '${outDir}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable --out directory`);
  }
  const files = [path.join(outDir, 'model.json'), path.join(outDir, 'weights.bin')];
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData;
      const bytes = weightData === undefined ? new Uint8Array(0) : new Uint8Array(Array.isArray(weightData) ? tf.io.concatenateArrayBuffers(weightData) : weightData);
      const json = {
        modelTopology: artifacts.modelTopology,
        format: 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: null,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
      };
      // Weights first, then model.json: a reader never sees a manifest without its weights.
      writeAtomic(files[1]!, bytes);
      writeAtomic(files[0]!, Buffer.from(JSON.stringify(json)));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: bytes.byteLength } };
    }),
  );
  return files;
}

function writeAtomic(file: string, bytes: Uint8Array): void {
  try {
    writeFileAtomicSync(file, bytes);
  } catch (e) {
    throw new ReptileError(`cannot write '${file}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable --out directory`);
  }
}
