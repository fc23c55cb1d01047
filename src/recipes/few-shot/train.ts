import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { CheckpointError, InvalidOptionsError } from '../../_utils/errors.js';
import { definedOnly } from '../../_utils/objects.js';
import type { Executor } from '../../exec/executor.js';
import { innerStateFor } from '../../exec/create-executor.js';
import type { FewShotData } from '../../data/open.js';
import { DEFAULT_CONV_INIT } from '../../learners/models.js';
import { createLearner, learnerKind, type LearnerChoice } from '../../learners/create-learner.js';
import type { Learner } from '../../learners/learner.js';
import { FewShotTaskSource } from '../../tasks/labeled.js';
import { hasCheckpoint, readCheckpoint } from '../../train/checkpoint.js';
import { evaluateMany, type EvaluateResult } from '../../train/evaluate.js';
import { metaTrain, type MetaCallbacks, type MetaTrainResult } from '../../train/meta-train.js';
import { resolveMetaConfig, type MetaConfig } from '../../train/config.js';
import { readProgress, trimProgress, writeLearningCurve, type ProgressLine } from '../learning-curve.js';
import { createFewShotModel, modelKindFor, type FewShotModelKind } from './model.js';
import { checkTaskFits, dataOrigin, evalInnerOptions, type FewShotSettings } from './settings.js';

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
  /** The network; default the paper's for the dataset's image size (see modelKindFor). */
  model?: FewShotModelKind;
}

/**
 * Meta-trains the paper's network on a few-shot dataset (paper §5): training tasks are N-way with
 * `trainShots` support examples per class from the training classes; every `evalInterval`
 * meta-iterations one sampled training task and one test task are adapted to (non-transductive
 * unless `transductive`) and their accuracies reported, as supervised-reptile prints them.
 */
export async function fewShotTrain(options: FewShotTrainOptions): Promise<{ result: MetaTrainResult; learner: Learner; model: tf.LayersModel; kind: FewShotModelKind }> {
  const { data, settings } = options;
  const trainShots = settings.trainShots !== undefined && settings.trainShots > 0 ? settings.trainShots : settings.shots;
  const init = settings.init ?? DEFAULT_CONV_INIT;
  const config = resolveMetaConfig({ ...definedOnly(options.config ?? {}), ...definedOnly({ innerState: innerStateFor(options.executor, options.config?.innerState) }) });
  checkTaskFits(data.train, 'training split', settings.classes, trainShots, '`trainShots`');
  checkTaskFits(data.train, 'training split', settings.classes, settings.shots + 1, '`shots` + 1');
  checkTaskFits(data.test, 'test split', settings.classes, settings.shots + 1, '`shots` + 1');
  const kind = options.model ?? modelKindFor(data.train.inputShape);
  if (options.checkpointDir !== undefined) checkResumable(options.checkpointDir, { ...settings, trainShots }, data.describe, kind);
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
function checkResumable(dir: string, settings: FewShotSettings & { trainShots: number }, data: Record<string, unknown>, kind: FewShotModelKind): void {
  if (!hasCheckpoint(dir)) return;
  const meta = readCheckpoint(dir).meta;
  const saved = meta['fewShot'] as Partial<FewShotSettings> | undefined;
  const savedData = meta['data'] as Record<string, unknown> | undefined;
  if (saved === undefined || savedData === undefined) {
    throw new CheckpointError(`checkpoint in '${dir}' is not from a few-shot run: use a new \`checkpointDir\``);
  }
  const pairs: [string, unknown, unknown][] = [
    ['classes', saved.classes, settings.classes],
    ['shots', saved.shots, settings.shots],
    ['trainShots', saved.trainShots, settings.trainShots],
    ['init', saved.init ?? DEFAULT_CONV_INIT, settings.init ?? DEFAULT_CONV_INIT],
    ['dataset', savedData['dataset'], data['dataset']],
    ['classSplit', savedData['classSplit'] ?? 'seeded', data['classSplit'] ?? 'seeded'],
    ['model', meta['modelKind'] ?? kind, kind],
  ];
  // Checkpoints written before fingerprints existed are resumed on the dataset name alone.
  if (savedData['fingerprint'] !== undefined) pairs.push(['dataDir', savedData['fingerprint'], data['fingerprint']]);
  for (const [what, was, now] of pairs) {
    if (was !== now) {
      const said = what === 'dataDir' ? `on other data (fingerprint ${String(was)}, not ${String(now)})` : `with \`${what}\` ${String(was)}, not ${String(now)}`;
      throw new InvalidOptionsError(`checkpoint in '${dir}' was trained ${said}: resume with the same settings and data, or use a new \`checkpointDir\``, { option: what });
    }
  }
}
