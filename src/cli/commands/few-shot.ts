import * as path from 'node:path';
import { Command, Option } from 'commander';
import { selectBackend, type BackendChoice } from '../../engine/backend.js';
import { openFewShotData, type FewShotDatasetName } from '../../data/open.js';
import { downloadOmniglot } from '../../data/download.js';
import { loadOmniglot, OMNIGLOT_CLASS_SPLITS, type OmniglotClassSplit } from '../../data/omniglot.js';
import { mnistPackageDir } from '../../data/mnist.js';
import { FEW_SHOT_DEFAULTS, getPreset } from '../../recipes/presets.js';
import { DEFAULT_META_CONFIG } from '../../train/config.js';
import type { LearnerChoice } from '../../learners/create-learner.js';
import { evalProgress, evaluateFewShotCheckpoint, type CheckpointEvaluationOptions, exportLayersModel, dataOrigin, fewShotEvaluate, fewShotTrain, loadFewShotCheckpoint, progressLine, resolveFewShotRun } from '../../recipes/few-shot.js';
import { writeFewShotDemoTasks } from '../../recipes/web-demo.js';
import { UsageError } from '../../_utils/errors.js';
import { definedOnly } from '../../_utils/objects.js';
import { intAtLeast, pickDefined } from '../parse.js';
import { interruptSignal, printResult, verboseLog } from '../run.js';
import { addExecutorOptions, openExecutor, type ExecutorFlags } from '../executor-flags.js';

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
    .option('--classes <n>', `few-shot: classes per task (${d.classes})`, intAtLeast(1))
    .option('--train-shots <n>', `few-shot: examples per class in training tasks, 0 = --shots (${d.trainShots})`, intAtLeast(0))
    .option('--eval-batch <n>', `few-shot: inner minibatch when adapting to a test task (${d.evalBatch})`, intAtLeast(1))
    .option('--eval-interval <n>', `few-shot: print train/test accuracy every n meta-iterations (${d.evalInterval})`, intAtLeast(1))
    .option('--transductive', 'few-shot: classify all queries of a test task in one batch')
    .option('--sgd', 'few-shot: plain SGD inner loop instead of Adam (β1 = 0)')
    .addOption(new Option('--init <scheme>', `few-shot: kernel initialisation, fan-in (PyTorch's default) or glorot (TensorFlow's, as supervised-reptile) (${d.init}; the omniglot presets: glorot)`).choices(['fan-in', 'glorot']))
    .addOption(new Option('--loss <how>', `few-shot: how the inner loop combines a minibatch's losses, sum (supervised-reptile's: a test task adapts with steps evalBatch/innerBatch the mean's, Adam's state carried from training) or mean; training is the same under both (${d.loss})`).choices(['sum', 'mean']))
    .addOption(new Option('--class-split <how>', "few-shot, Omniglot: how --seed picks the 1,200 training characters: seeded (the library's generator) or supervised-reptile (Python's random.shuffle, so seed 0 gives the paper's exact characters) (seeded)").choices([...OMNIGLOT_CLASS_SPLITS]))
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
  if (dataDir === undefined) throw new UsageError(`missing --data-dir: say where the ${dataset} data is, e.g. --data-dir ../shared/data/omniglot`);
  const { settings, config } = run;
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
  const checkpoint = o['checkpoint'] as string | undefined;
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
    const images = (result.iterations - result.startIteration) * result.config.metaBatch * result.config.innerIters * result.config.innerBatch;
    let evaluation: { accuracy: number; ci95: number; samples: number } | null = null;
    if (given(cmd, 'evalSamples')) {
      const r = await fewShotEvaluate({ learner, dataset: data.test, settings, config: result.config, samples: o['evalSamples'] as number, seed: seed + 1_000_000, executor, origin: dataOrigin(data.describe, 'test', seed) });
      evaluation = { accuracy: r.mean, ci95: r.ci95, samples: r.samples };
    }
    printResult(json, { dataset, iterations: result.iterations, seconds, imagesPerSecond: images / seconds, backend, test: evaluation, settings, config: result.config, checkpoint: result.checkpoint ?? null }, () => [
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

// The evaluation's own options, as flags (a missing --checkpoint is reported by the command).
type EvalFlags = Omit<CheckpointEvaluationOptions, 'checkpoint' | 'log' | 'onTask' | 'split' | 'learner' | 'executor'> & ExecutorFlags & {
  checkpoint?: string;
  split: 'test' | 'train' | 'val';
  backend: BackendChoice;
  learner: LearnerChoice;
  json?: boolean;
  verbose?: boolean;
};

/** `reptile eval`: few-shot accuracy of a checkpoint on sampled test tasks, with a 95% interval. */
export function evalCommand(): Command {
  const cmd = new Command('eval')
    .description('evaluate a few-shot checkpoint: adapt to sampled test tasks and classify held-out queries')
    .option('--checkpoint <dir>', 'checkpoint directory of a few-shot training run')
    .option('--data-dir <dir>', 'dataset directory (default: the one recorded in the checkpoint)')
    .option('--samples <n>', 'test tasks (supervised-reptile: 10000)', intAtLeast(1), 10_000)
    .option('--seed <n>', 'seed of the sampled tasks', intAtLeast(0), 0)
    .option('--shots <n>', 'support examples per class of the test tasks (default: as trained)', intAtLeast(1))
    .option('--eval-iters <n>', 'adaptation steps on each test task (default: as trained)', intAtLeast(1))
    .option('--eval-batch <n>', 'inner minibatch when adapting to a test task (default: as trained)', intAtLeast(1))
    .option('--transductive', 'classify all queries of a task in one batch (default: as trained)')
    .option('--no-transductive', 'classify each query with the support set alone, as supervised-reptile does by default')
    .addOption(new Option('--loss <how>', "how adapting combines a minibatch's losses: sum (supervised-reptile's) or mean (default: as trained; sum for checkpoints that do not record it)").choices(['sum', 'mean']))
    .addOption(new Option('--split <name>', 'classes to evaluate on').choices(['test', 'train', 'val']).default('test'))
    .option('--cache-dir <dir>', 'cache of decoded images')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'))
    .addOption(new Option('--learner <name>', 'inner-loop engine: auto (native when built), native or tfjs').choices(['auto', 'native', 'tfjs']).default('auto'))
    .option('--json', 'print the result as JSON on stdout')
    .option('--verbose', 'say which tfjs backend and engine run')
    .action(async (flags: EvalFlags) => {
      if (flags.checkpoint === undefined) throw new UsageError('missing --checkpoint: name the directory a few-shot training run wrote');
      const backend = await selectBackend(flags.backend, verboseLog(flags.verbose));
      const executor = await openExecutor(flags, info);
      const r = await evaluateFewShotCheckpoint({
        executor,
        checkpoint: flags.checkpoint,
        samples: flags.samples,
        seed: flags.seed,
        split: flags.split,
        learner: flags.learner,
        log: info,
        ...definedOnly({ dataDir: flags.dataDir, shots: flags.shots, evalIters: flags.evalIters, evalBatch: flags.evalBatch, transductive: flags.transductive, loss: flags.loss, cacheDir: flags.cacheDir }),
        onTask: evalProgress(info),
      }).finally(() => executor.close());
      const { loadSeconds, ...rest } = r;
      printResult(flags.json === true, { ...rest, backend, loadSeconds }, () => [
        `${r.split} accuracy: ${r.accuracy.toFixed(4)} ± ${r.ci95.toFixed(4)} (${r.samples} ${r.classes}-way ${r.shots}-shot tasks, ${r.transductive ? 'transductive' : 'non-transductive'}, ${r.seconds.toFixed(1)} s)`,
      ]);
    });
  return addExecutorOptions(cmd);
}

/** `reptile export`: writes a few-shot checkpoint's φ as a TF.js LayersModel. */
export function exportCommand(): Command {
  return new Command('export')
    .description('write a few-shot checkpoint as a TF.js LayersModel (model.json + weights.bin)')
    .option('--checkpoint <dir>', 'checkpoint directory of a few-shot training run')
    .option('--out <dir>', 'output directory')
    .option('--demo-tasks <n>', 'also write tasks.json: n held-out 1-shot tasks with Node\'s predictions, for the web drawing page', intAtLeast(1))
    .option('--data-dir <dir>', 'dataset directory for --demo-tasks (default: the one the checkpoint was trained on)')
    .action(async (flags: { checkpoint?: string; out?: string; demoTasks?: number; dataDir?: string }) => {
      if (flags.checkpoint === undefined) throw new UsageError('missing --checkpoint: name the directory a few-shot training run wrote');
      if (flags.out === undefined) throw new UsageError('missing --out: name the directory to write model.json and weights.bin into');
      await selectBackend('cpu');
      const { learner, model } = loadFewShotCheckpoint(flags.checkpoint, { learner: 'tfjs' });
      try {
        const files = await exportLayersModel(model, flags.out);
        if (flags.demoTasks !== undefined) {
          files.push(await writeFewShotDemoTasks({ checkpointDir: flags.checkpoint, outDir: flags.out, tasks: flags.demoTasks, ...(flags.dataDir !== undefined ? { dataDir: flags.dataDir } : {}), log: info }));
        }
        process.stdout.write(`${files.join('\n')}\n`);
      } finally {
        learner.dispose();
        model.dispose();
      }
    });
}

/** `reptile data omniglot`: downloads (with --download) and decodes Omniglot, filling the cache. */
export function dataCommand(): Command {
  return new Command('data')
    .description('fetch and prepare a dataset')
    .argument('<name>', 'dataset: omniglot')
    .option('--dir <dir>', 'dataset directory')
    .option('--download', 'download the official archives first (needs network access)')
    .option('--cache-dir <dir>', 'cache of decoded images')
    .action(async (name: string, flags: { dir?: string; download?: boolean; cacheDir?: string }) => {
      if (name !== 'omniglot') throw new UsageError(`unknown dataset '${name}' for 'reptile data': only omniglot can be fetched; put other datasets in a folder yourself`);
      if (flags.dir === undefined) throw new UsageError('missing --dir: name the folder for images_background.zip and images_evaluation.zip');
      if (flags.download === true) for (const file of await downloadOmniglot({ dir: flags.dir, log: info })) info(`have ${file}`);
      for (let pass = 0; pass < 2; pass++) {
        const began = performance.now();
        const d = loadOmniglot({ dir: flags.dir, ...(flags.cacheDir !== undefined ? { cacheDir: flags.cacheDir } : {}), log: info });
        const seconds = (performance.now() - began) / 1000;
        process.stdout.write(`omniglot: ${d.dataset.numClasses} characters, ${d.names.length > 0 ? d.dataset.countOf(0) : 0} drawings each, loaded in ${seconds.toFixed(2)} s ${d.fromCache ? `from the cache ${d.cacheFile}` : 'from the archives'}\n`);
        if (d.fromCache || d.cacheFile === undefined || d.cacheProblem !== undefined) break;
      }
    });
}
