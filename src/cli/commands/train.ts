import { Command, Option } from 'commander';
import { selectBackend, type BackendChoice } from '../../engine/backend.js';
import { createSineModel } from '../../learners/models.js';
import { TfjsLearner } from '../../learners/tfjs.js';
import { SineTaskSource } from '../../tasks/sine.js';
import { evaluate } from '../../train/evaluate.js';
import { metaTrain } from '../../train/meta-train.js';
import type { MetaConfig } from '../../train/config.js';
import { UsageError } from '../../_utils/errors.js';
import { addFewShotOptions, isFewShot, runFewShotTrain } from './few-shot.js';
import { intAtLeast, numberIn, oneOf, positiveNumber } from '../parse.js';
import { progressCallbacks } from '../progress.js';
import { interruptSignal, printResult } from '../run.js';

interface TrainFlags {
  task?: string;
  metaIters?: number;
  metaStep?: number;
  metaStepFinal?: number;
  metaBatch?: number;
  innerIters?: number;
  innerBatch?: number;
  learningRate?: number;
  optimizer?: 'sgd' | 'adam';
  foml?: boolean;
  innerState?: 'carry' | 'reset';
  seed: number;
  shots: number;
  hidden: string;
  checkpoint?: string;
  checkpointEvery: number;
  log?: string;
  evalSamples: number;
  evalIters: number;
  backend: BackendChoice;
  json?: boolean;
}

/** Defaults of `reptile train --task sine`: the authors' sine demo (SGD inner loop, ε 0.1 → 0). */
const SINE_DEFAULTS: Partial<MetaConfig> = {
  metaIters: 30_000,
  metaStep: 0.1,
  metaStepFinal: 0,
  metaBatch: 1,
  innerIters: 5,
  innerBatch: 10,
  learningRate: 0.02,
  optimizer: 'sgd',
};

/** `reptile train`: meta-trains on a task family and reports held-out performance. */
export function trainCommand(): Command {
  const cmd: Command = new Command('train')
    .description('meta-train an initialisation with Reptile (or FOMAML with --foml)')
    .addOption(new Option('--task <name>', 'task family').choices(['sine']))
    .option('--meta-iters <n>', 'meta-iterations (sine: 30000)', intAtLeast(1))
    .option('--meta-step <eps>', 'initial meta step size ε in [0, 1] (sine: 0.1)', numberIn(0, 1))
    .option('--meta-step-final <eps>', 'final meta step size, annealed linearly (sine: 0)', numberIn(0, 1))
    .option('--meta-batch <n>', 'tasks per meta-iteration (sine: 1)', intAtLeast(1))
    .option('--inner-iters <n>', 'inner optimizer steps per task (sine: 5)', intAtLeast(1))
    .option('--inner-batch <n>', 'inner minibatch size (sine: 10)', intAtLeast(1))
    .option('--learning-rate <lr>', 'inner learning rate (sine: 0.02)', positiveNumber)
    .option('--optimizer <name>', 'inner optimizer: sgd or adam (β1 = 0) (sine: sgd)', oneOf('sgd', 'adam'))
    .option('--foml', 'first-order MAML instead of Reptile')
    .option('--inner-state <policy>', 'inner optimizer state between tasks: carry (supervised-reptile) or reset', oneOf('carry', 'reset'))
    .option('--seed <n>', 'random seed', intAtLeast(0), 0)
    .option('--shots <n>', 'sine: support points per task', intAtLeast(1), 10)
    .option('--hidden <sizes>', 'sine: hidden layer sizes, comma-separated', '64,64')
    .option('--checkpoint <dir>', 'checkpoint directory; an existing checkpoint there is resumed')
    .option('--checkpoint-every <n>', 'meta-iterations between checkpoints', intAtLeast(1), 100)
    .option('--log <file>', 'append one JSON line per meta-iteration (default: <checkpoint>/log.jsonl)')
    .option('--eval-samples <n>', 'held-out tasks evaluated after training', intAtLeast(1), 100)
    .option('--eval-iters <n>', 'adaptation steps on each held-out task', intAtLeast(1), 32)
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'))
    .option('--json', 'print the result as JSON on stdout')
    .action(async (flags: TrainFlags) => {
      if (isFewShot(cmd)) return runFewShotTrain(cmd);
      if (flags.task === undefined) throw new UsageError("missing --task or --dataset: say what to train on, e.g. 'reptile train --task sine' or 'reptile train --dataset omniglot --data-dir D'");
      const hidden = parseHidden(flags.hidden);
      const info = (line: string): void => void process.stderr.write(`${line}\n`);
      const backend = await selectBackend(flags.backend);
      const source = new SineTaskSource({ shots: flags.shots });
      const model = createSineModel({ hidden, seed: flags.seed });
      const learner = new TfjsLearner({ model, innerState: flags.innerState ?? 'carry' });
      const config: Partial<MetaConfig> = { ...SINE_DEFAULTS, ...pickDefined(flags), seed: flags.seed };
      const { signal, release } = interruptSignal();
      try {
        const result = await metaTrain({
          learner,
          source,
          config,
          signal,
          callbacks: [{ onTrainBegin: () => void info(`tfjs backend: ${backend}`) }, progressCallbacks('train sine')],
          checkpointEvery: flags.checkpointEvery,
          ...(flags.checkpoint !== undefined ? { checkpointDir: flags.checkpoint } : {}),
          ...(flags.log !== undefined ? { logFile: flags.log } : flags.checkpoint !== undefined ? { logFile: `${flags.checkpoint}/log.jsonl` } : {}),
          checkpointMeta: { task: 'sine', modelTopology: model.toJSON(null, false), hidden },
        });
        if (result.stopped) {
          info(`interrupted after meta-iteration ${result.iterations}${result.checkpoint ? `; checkpoint saved to ${result.checkpoint}: run the same command to resume` : ''}`);
          process.exitCode = 130;
          return;
        }
        const evaluation = await evaluate({
          learner,
          source,
          inner: { optimizer: 'sgd', learningRate: result.config.learningRate, innerIters: flags.evalIters, innerBatch: flags.shots },
          samples: flags.evalSamples,
          seed: flags.seed + 1_000_000,
        });
        printResult(flags.json === true, {
          task: 'sine',
          iterations: result.iterations,
          heldOut: { mse: evaluation.mean, ci95: evaluation.ci95, samples: evaluation.samples, evalIters: flags.evalIters },
          config: result.config,
          checkpoint: result.checkpoint ?? null,
        }, () => [
          `meta-trained ${result.iterations} iterations${result.startIteration > 0 ? ` (resumed at ${result.startIteration})` : ''}`,
          `held-out MSE after ${flags.evalIters} steps on ${flags.shots} points: ${evaluation.mean.toFixed(4)} ± ${evaluation.ci95.toFixed(4)} (${evaluation.samples} tasks)`,
          ...(result.checkpoint ? [`checkpoint: ${result.checkpoint}`] : []),
        ]);
      } finally {
        release();
        learner.dispose();
        model.dispose();
      }
    });
  return addFewShotOptions(cmd);
}

function parseHidden(text: string): number[] {
  const sizes = text.split(',').map((s) => Number(s.trim()));
  if (sizes.length === 0 || sizes.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new UsageError(`--hidden '${text}' is not a list of layer sizes: use positive whole numbers separated by commas, e.g. --hidden 64,64`);
  }
  return sizes;
}

function pickDefined(flags: TrainFlags): Partial<MetaConfig> {
  const keys = ['metaIters', 'metaStep', 'metaStepFinal', 'metaBatch', 'innerIters', 'innerBatch', 'learningRate', 'optimizer', 'foml', 'innerState'] as const;
  const out: Record<string, unknown> = {};
  for (const k of keys) if (flags[k] !== undefined) out[k] = flags[k];
  return out as Partial<MetaConfig>;
}
