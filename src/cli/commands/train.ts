import { Command, Option } from 'commander';
import { selectBackend, type BackendChoice } from '../../engine/backend.js';
import type { LearnerChoice } from '../../learners/create-learner.js';
import type { InnerStatePolicy } from '../../learners/learner.js';
import { DEFAULT_META_CONFIG } from '../../train/config.js';
import { getPreset, PRESET_NAMES } from '../../recipes/presets.js';
import { trainSine } from '../../recipes/sine-train.js';
import { UsageError } from '../../_utils/errors.js';
import { addFewShotOptions, isFewShot, runFewShotTrain } from './few-shot-train.js';
import { intAtLeast, LIMITS, numberIn, oneOf, pickDefined, positiveNumber } from '../parse.js';
import { progressCallbacks } from '../progress.js';
import { checkTrainingOutputs } from '../paths.js';
import { addExecutorOptions, addSyncOptions, asyncSummary, checkSyncFlags, openExecutor, type ExecutorFlags } from '../executor-flags.js';
import { interruptSignal, printResult, verboseLog } from '../run.js';

interface TrainFlags extends ExecutorFlags {
  task?: string;
  preset?: string;
  metaIters?: number;
  metaStep?: number;
  metaStepFinal?: number;
  metaBatch?: number;
  innerIters?: number;
  innerBatch?: number;
  learningRate?: number;
  optimizer?: 'sgd' | 'adam';
  foml?: boolean;
  innerState?: InnerStatePolicy;
  seed?: number;
  shots?: number;
  hidden?: string;
  checkpoint?: string;
  checkpointEvery?: number;
  log?: string;
  evalSamples?: number;
  evalIters?: number;
  backend: BackendChoice;
  learner: LearnerChoice;
  json?: boolean;
  verbose?: boolean;
}

/** `reptile train`: meta-trains on a task family and reports held-out performance. */
export function trainCommand(): Command {
  const cmd: Command = new Command('train')
    .description('meta-train an initialisation with Reptile (or FOMAML with --foml)')
    .addOption(new Option('--preset <name>', "the paper's settings by name (flags given beside it override them)").choices([...PRESET_NAMES]))
    .addOption(new Option('--task <name>', 'task family').choices(['sine']))
    .option('--meta-iters <n>', 'meta-iterations', intAtLeast(1, LIMITS.metaIters))
    .option('--meta-step <eps>', 'initial meta step size ε in [0, 1]', numberIn(0, 1))
    .option('--meta-step-final <eps>', 'final meta step size, annealed linearly', numberIn(0, 1))
    .option('--meta-batch <n>', 'tasks per meta-iteration', intAtLeast(1, LIMITS.metaBatch))
    .option('--inner-iters <n>', 'inner optimizer steps per task', intAtLeast(1, LIMITS.innerIters))
    .option('--inner-batch <n>', 'inner minibatch size', intAtLeast(1, LIMITS.innerBatch))
    .option('--learning-rate <lr>', 'inner learning rate', positiveNumber)
    .option('--optimizer <name>', 'inner optimizer: sgd or adam (β1 = 0)', oneOf('sgd', 'adam'))
    .option('--foml', 'first-order MAML instead of Reptile')
    .option('--inner-state <policy>', 'inner optimizer state between tasks: carry (supervised-reptile), shared (every task of a meta-batch from the same state, then their mean) or reset', oneOf('carry', 'shared', 'reset'))
    .option('--seed <n>', `random seed (${DEFAULT_META_CONFIG.seed})`, intAtLeast(0, LIMITS.seed))
    .option('--shots <n>', 'support examples per task (sine: points) or per class (few-shot)', intAtLeast(1, LIMITS.shots))
    .option('--hidden <sizes>', 'sine: hidden layer sizes, comma-separated (64,64)')
    .option('--checkpoint <dir>', 'checkpoint directory; an existing checkpoint there is resumed')
    .option('--checkpoint-every <n>', 'meta-iterations between checkpoints (100)', intAtLeast(1, LIMITS.every))
    .option('--log <file>', 'append one JSON line per meta-iteration (default: <checkpoint>/log.jsonl)')
    .option('--eval-samples <n>', 'held-out tasks evaluated after training', intAtLeast(1, LIMITS.samples))
    .option('--eval-iters <n>', 'adaptation steps on each held-out task', intAtLeast(1, LIMITS.evalIters))
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'))
    .addOption(new Option('--learner <name>', 'inner-loop engine: auto (native when built and the model is supported, else wasm, else tfjs), native, wasm or tfjs').choices(['auto', 'native', 'wasm', 'tfjs']).default('auto'))
    .option('--json', 'print the result as JSON on stdout')
    .option('--verbose', 'say which tfjs backend and engine run')
    .action(async (flags: TrainFlags) => {
      checkSyncFlags(flags);
      if (isFewShot(cmd)) return runFewShotTrain(cmd);
      if (flags.task === undefined && flags.preset === undefined) {
        throw new UsageError("missing --task, --dataset or --preset: say what to train on, e.g. 'reptile train --task sine' or 'reptile train --preset omniglot-5w5s --data-dir D'");
      }
      if (flags.preset !== undefined && getPreset(flags.preset).task !== 'sine') throw new UsageError(`--preset ${flags.preset} is a few-shot setting: give it --data-dir D`);
      const fewShotOnly = FEW_SHOT_FLAGS.find((f) => cmd.getOptionValueSource(f.key) === 'cli');
      if (fewShotOnly !== undefined) throw new UsageError(`${fewShotOnly.flag} is a few-shot flag, and --task sine is regression: drop it, or train few-shot with --dataset`);
      const hidden = flags.hidden === undefined ? undefined : parseHidden(flags.hidden);
      checkTrainingOutputs({ checkpoint: flags.checkpoint, log: flags.log });
      const info = (line: string): void => void process.stderr.write(`${line}\n`);
      await selectBackend(flags.backend, verboseLog(flags.verbose));
      const executor = await openExecutor(flags, info, flags.checkpoint);
      const { signal, release } = interruptSignal();
      try {
        const { result, evaluation, shots, evalIters } = await trainSine({
          executor,
          config: pickDefined(flags),
          seed: flags.seed ?? DEFAULT_META_CONFIG.seed,
          ...(flags.shots !== undefined ? { shots: flags.shots } : {}),
          ...(hidden !== undefined ? { hidden } : {}),
          ...(flags.evalSamples !== undefined ? { evalSamples: flags.evalSamples } : {}),
          ...(flags.evalIters !== undefined ? { evalIters: flags.evalIters } : {}),
          ...(flags.innerState !== undefined ? { innerState: flags.innerState } : {}),
          learner: flags.learner,
          signal,
          callbacks: [progressCallbacks('train sine')],
          ...(flags.checkpointEvery !== undefined ? { checkpointEvery: flags.checkpointEvery } : {}),
          ...(flags.checkpoint !== undefined ? { checkpointDir: flags.checkpoint } : {}),
          ...(flags.log !== undefined ? { logFile: flags.log } : flags.checkpoint !== undefined ? { logFile: `${flags.checkpoint}/log.jsonl` } : {}),
          log: info,
        });
        if (result.stopped || evaluation === undefined) {
          info(`interrupted after meta-iteration ${result.iterations}${result.checkpoint ? `; checkpoint saved to ${result.checkpoint}: run the same command to resume` : ''}`);
          process.exitCode = 130;
          return;
        }
        const counters = executor.asyncCounters;
        if (counters !== undefined) info(asyncSummary(counters));
        printResult(flags.json === true, {
          task: 'sine',
          iterations: result.iterations,
          heldOut: { mse: evaluation.mean, ci95: evaluation.ci95, samples: evaluation.samples, evalIters },
          config: result.config,
          checkpoint: result.checkpoint ?? null,
          ...(counters !== undefined ? { async: counters } : {}),
        }, () => [
          `meta-trained ${result.iterations} iterations${result.startIteration > 0 ? ` (resumed at ${result.startIteration})` : ''}`,
          `held-out MSE after ${evalIters} ${result.config.optimizer} steps on ${shots} points: ${evaluation.mean.toFixed(4)} ± ${evaluation.ci95.toFixed(4)} (${evaluation.samples} tasks)`,
          ...(result.checkpoint ? [`checkpoint: ${result.checkpoint}`] : []),
        ]);
      } finally {
        release();
        await executor.close();
      }
    });
  return addSyncOptions(addExecutorOptions(addFewShotOptions(cmd)));
}

// The flags only the few-shot path reads (sine would ignore them silently).
const FEW_SHOT_FLAGS = [
  { key: 'dataDir', flag: '--data-dir' },
  { key: 'classes', flag: '--classes' },
  { key: 'trainShots', flag: '--train-shots' },
  { key: 'evalBatch', flag: '--eval-batch' },
  { key: 'evalInterval', flag: '--eval-interval' },
  { key: 'transductive', flag: '--transductive' },
  { key: 'sgd', flag: '--sgd' },
  { key: 'init', flag: '--init' },
  { key: 'loss', flag: '--loss' },
  { key: 'classSplit', flag: '--class-split' },
  { key: 'cacheDir', flag: '--cache-dir' },
] as const;

function parseHidden(text: string): number[] {
  const sizes = text.split(',').map((s) => Number(s.trim()));
  if (sizes.length === 0 || sizes.length > LIMITS.layers || sizes.some((n) => !Number.isInteger(n) || n < 1 || n > LIMITS.layerSize)) {
    throw new UsageError(`--hidden '${text}' is not a list of layer sizes: use up to ${LIMITS.layers} whole numbers from 1 to ${LIMITS.layerSize.toLocaleString('en-US')} separated by commas, e.g. --hidden 64,64`);
  }
  return sizes;
}
