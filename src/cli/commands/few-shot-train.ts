import * as path from 'node:path';
import { Option, type Command } from 'commander';
import { selectBackend, type BackendChoice } from '../../engine/backend.js';
import { openFewShotData, type FewShotDatasetName } from '../../data/open.js';
import { OMNIGLOT_CLASS_SPLITS, type OmniglotClassSplit } from '../../data/omniglot.js';
import { mnistPackageDir } from '../../data/mnist.js';
import { FEW_SHOT_DEFAULTS, getPreset } from '../../recipes/presets.js';
import { DEFAULT_META_CONFIG } from '../../train/config.js';
import type { LearnerChoice } from '../../learners/create-learner.js';
import { fewShotEvaluate } from '../../recipes/few-shot/evaluate.js';
import { dataOrigin, resolveFewShotRun } from '../../recipes/few-shot/settings.js';
import { fewShotTrain, progressLine } from '../../recipes/few-shot/train.js';
import type { FewShotModelKind } from '../../recipes/few-shot/model.js';
import { UsageError } from '../../_utils/errors.js';
import { intAtLeast, LIMITS, pickDefined } from '../parse.js';
import { interruptSignal, printResult, verboseLog } from '../run.js';
import { asyncSummary, openExecutor, type ExecutorFlags } from '../executor-flags.js';
import { checkCacheDir, checkInputDir, checkTrainingOutputs } from '../paths.js';

// `reptile train`'s few-shot path (`--dataset`, or a few-shot `--preset`); train.ts holds the command.
const info = (line: string) => process.stderr.write(`${line}\n`);

/**
 * Adds the few-shot flags (`--dataset`, `--data-dir`, `--classes`, `--train-shots`, `--eval-batch`,
 * `--eval-interval`, `--transductive`, `--sgd`, `--cache-dir`) to `reptile train`; the flags the
 * sine path already has keep their names and take supervised-reptile's defaults here.
 */
export function addFewShotOptions(cmd: Command): Command {
  const d = FEW_SHOT_DEFAULTS;
  return cmd
    .addOption(new Option('--dataset <name>', 'few-shot dataset (a few-shot --preset names its own)').choices(['omniglot', 'miniimagenet', 'mnist', 'folder']))
    .option('--data-dir <dir>', 'few-shot: the dataset directory (mnist: the package\'s own files when not given)')
    .option('--classes <n>', `few-shot: classes per task (${d.classes}; at least 2)`, intAtLeast(2, LIMITS.classes))
    .option('--train-shots <n>', `few-shot: examples per class in training tasks, 0 = --shots (${d.trainShots})`, intAtLeast(0, LIMITS.shots))
    .option('--eval-batch <n>', `few-shot: inner minibatch when adapting to a test task (${d.evalBatch})`, intAtLeast(1, LIMITS.innerBatch))
    .option('--eval-interval <n>', `few-shot: print train/test accuracy every n meta-iterations (${d.evalInterval})`, intAtLeast(1, LIMITS.every))
    .option('--transductive', 'few-shot: classify all queries of a test task in one batch')
    .option('--sgd', 'few-shot: plain SGD inner loop instead of Adam (β1 = 0)')
    .addOption(new Option('--init <scheme>', `few-shot: kernel initialisation, fan-in (PyTorch's default) or glorot (TensorFlow's, as supervised-reptile) (${d.init}; the omniglot presets: glorot)`).choices(['fan-in', 'glorot']))
    .addOption(new Option('--loss <how>', `few-shot: how the inner loop combines a minibatch's losses, sum (supervised-reptile's: a test task adapts with steps evalBatch/innerBatch the mean's, Adam's state carried from training) or mean; training is the same under both (${d.loss})`).choices(['sum', 'mean']))
    .addOption(new Option('--class-split <how>', "few-shot, Omniglot: how --seed picks the 1,200 training characters: seeded (the library's generator) or supervised-reptile (Python's random.shuffle, so seed 0 gives the paper's exact characters) (seeded)").choices([...OMNIGLOT_CLASS_SPLITS]))
    .addOption(new Option('--model <name>', 'few-shot: the network, omniglot or miniimagenet (the paper\'s) or resnet12 (MetaOptNet\'s) (the paper\'s for the image size; a preset may name one)').choices(['omniglot', 'miniimagenet', 'resnet12']))
    .option('--cache-dir <dir>', 'few-shot: cache of decoded images (default $REPTILE_CACHE or ~/.cache/reptile-ml)');
}

/** True when `reptile train` should run the few-shot path: `--dataset` or a few-shot `--preset` given. */
export function isFewShot(cmd: Command): boolean {
  const o = cmd.opts();
  return o['dataset'] !== undefined || (o['preset'] !== undefined && getPreset(o['preset'] as string).task === 'few-shot');
}

function given(cmd: Command, key: string): boolean {
  const source = cmd.getOptionValueSource(key);
  return source !== undefined && source !== 'default';
}

/** Runs `reptile train --dataset ...`: few-shot meta-training with supervised-reptile's flags. */
export async function runFewShotTrain(cmd: Command): Promise<void> {
  const o = cmd.opts() as Record<string, unknown>;
  const opt = <T>(key: string): T | undefined => (given(cmd, key) ? (o[key] as T) : undefined);
  if (given(cmd, 'hidden')) throw new UsageError('--hidden sets the sine network\'s layers; the few-shot network is the paper\'s: drop --hidden');
  if (o['task'] !== undefined) throw new UsageError("--task and --dataset (or a few-shot --preset) both given: use --task sine for sine regression, or --dataset for few-shot classification");
  const seed = opt<number>('seed') ?? DEFAULT_META_CONFIG.seed;
  const run = resolveFewShotRun({
    ...(o['preset'] !== undefined ? { preset: o['preset'] as string } : {}),
    seed,
    meta: { ...pickDefined(o), ...(o['sgd'] === true ? { optimizer: 'sgd' as const } : {}) },
    fewShot: {
      classes: opt('classes'),
      shots: opt('shots'),
      trainShots: opt('trainShots'),
      evalBatch: opt('evalBatch'),
      evalIters: opt('evalIters'),
      evalInterval: opt('evalInterval'),
      init: opt('init'),
      loss: opt('loss'),
      ...(o['transductive'] === true ? { transductive: true } : {}),
    },
  });
  const dataset = (o['dataset'] as FewShotDatasetName | undefined) ?? run.dataset;
  if (dataset === undefined) throw new UsageError('missing --dataset: name the few-shot dataset, e.g. --dataset omniglot');
  if (run.dataset !== undefined && o['dataset'] !== undefined && o['dataset'] !== run.dataset) {
    throw new UsageError(`--preset ${String(o['preset'])} is a ${run.dataset} setting, not ${String(o['dataset'])}: drop --dataset or choose another preset`);
  }
  const dataDir = (o['dataDir'] as string | undefined) ?? (dataset === 'mnist' ? mnistPackageDir() : undefined);
  if (dataDir === undefined) throw new UsageError(`missing --data-dir: say where the ${dataset} data is, e.g. --data-dir ${dataset === 'folder' ? 'my-images (one sub-folder of images per class)' : `data/${dataset}`}${dataset === 'omniglot' ? " (fetch it with 'reptile data omniglot --download --dir data/omniglot')" : ''}`);
  checkInputDir(dataDir, '--data-dir');
  checkCacheDir(o['cacheDir'] as string | undefined);
  const checkpoint = o['checkpoint'] as string | undefined;
  checkTrainingOutputs({ checkpoint, log: o['log'] as string | undefined });
  const { settings, config } = run;
  const network = (o['model'] as FewShotModelKind | undefined) ?? run.model;
  const backend = await selectBackend(o['backend'] as BackendChoice, verboseLog(o['verbose'] as boolean | undefined));
  const data = openFewShotData({
    dataset,
    dataDir,
    seed,
    ...(o['classSplit'] !== undefined ? { classSplit: o['classSplit'] as OmniglotClassSplit } : {}),
    ...(o['cacheDir'] !== undefined ? { cacheDir: o['cacheDir'] as string } : {}),
    log: info,
  });
  info(`${dataset}: ${data.train.numClasses} training classes, ${data.test.numClasses} test classes, loaded in ${data.seconds.toFixed(2)} s${data.fromCache === true ? ' (from cache)' : ''}`);
  const json = o['json'] === true;
  const executor = await openExecutor(o as unknown as ExecutorFlags, info, checkpoint);
  const { signal, release } = interruptSignal();
  const began = performance.now();
  const trained = await fewShotTrain({
    executor,
    data,
    settings,
    config,
    evalInterval: run.evalInterval,
    signal,
    onProgress: (p) => {
      const line = json
        ? JSON.stringify(progressLine(p))
        : `batch ${p.iteration}: train=${p.trainAccuracy.toFixed(3)} test=${p.testAccuracy.toFixed(3)} loss=${p.loss.toFixed(4)} ε=${p.epsilon.toFixed(4)} ${p.seconds.toFixed(0)} s ${p.imagesPerSecond.toFixed(0)} img/s`;
      (json ? process.stderr : process.stdout).write(`${line}\n`);
    },
    ...(checkpoint !== undefined ? { checkpointDir: checkpoint, logFile: (o['log'] as string | undefined) ?? path.join(checkpoint, 'log.jsonl') } : o['log'] !== undefined ? { logFile: o['log'] as string } : {}),
    ...(o['checkpointEvery'] !== undefined ? { checkpointEvery: o['checkpointEvery'] as number } : {}),
    checkpointMeta: { backend },
    learner: (o['learner'] as LearnerChoice | undefined) ?? 'auto',
    ...(network !== undefined ? { model: network } : {}),
    log: info,
  }).catch(async (e: unknown) => {
    await executor.close();
    throw e;
  });
  const { result, learner, model } = trained;
  try {
    const seconds = (performance.now() - began) / 1000;
    if (result.stopped) {
      info(`interrupted after meta-iteration ${result.iterations}${result.checkpoint ? `; checkpoint saved to ${result.checkpoint}: run the same command to resume` : ''}`);
      process.exitCode = 130;
      return;
    }
    // Nothing of the finished training stays in Redis should the evaluation be cut short.
    await executor.endRuns?.();
    const counters = executor.asyncCounters;
    if (counters !== undefined) info(asyncSummary(counters));
    const images = (result.iterations - result.startIteration) * result.config.metaBatch * result.config.innerIters * result.config.innerBatch;
    let evaluation: { accuracy: number; ci95: number; samples: number } | null = null;
    if (given(cmd, 'evalSamples')) {
      const r = await fewShotEvaluate({ learner, dataset: data.test, settings, config: result.config, samples: o['evalSamples'] as number, seed: seed + 1_000_000, executor, origin: dataOrigin(data.describe, 'test', seed) });
      evaluation = { accuracy: r.mean, ci95: r.ci95, samples: r.samples };
    }
    printResult(json, { dataset, iterations: result.iterations, seconds, imagesPerSecond: images / seconds, backend, test: evaluation, settings, config: result.config, checkpoint: result.checkpoint ?? null, ...(counters !== undefined ? { async: counters } : {}) }, () => [
      `meta-trained ${result.iterations} iterations in ${seconds.toFixed(1)} s (${(images / seconds).toFixed(0)} inner-loop images/s, backend ${backend})`,
      ...(evaluation ? [`test accuracy: ${evaluation.accuracy.toFixed(4)} ± ${evaluation.ci95.toFixed(4)} (${evaluation.samples} tasks)`] : []),
      ...(result.checkpoint ? [`checkpoint: ${result.checkpoint}`] : []),
    ]);
  } finally {
    release();
    learner.dispose();
    model.dispose();
    await executor.close();
  }
}
