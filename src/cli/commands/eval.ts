import { Command, Option } from 'commander';
import { selectBackend, type BackendChoice } from '../../engine/backend.js';
import type { LearnerChoice } from '../../learners/create-learner.js';
import { evalProgress, evaluateFewShotCheckpoint, type CheckpointEvaluationOptions } from '../../recipes/few-shot/evaluate.js';
import { UsageError } from '../../_utils/errors.js';
import { definedOnly } from '../../_utils/objects.js';
import { intAtLeast, LIMITS } from '../parse.js';
import { printResult, verboseLog } from '../run.js';
import { checkCacheDir, checkInputDir } from '../paths.js';
import { addExecutorOptions, openExecutor, type ExecutorFlags } from '../executor-flags.js';

const info = (line: string) => process.stderr.write(`${line}\n`);

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
    .option('--samples <n>', 'test tasks (supervised-reptile: 10000)', intAtLeast(1, LIMITS.samples), 10_000)
    .option('--seed <n>', 'seed of the sampled tasks', intAtLeast(0, LIMITS.seed), 0)
    .option('--shots <n>', 'support examples per class of the test tasks (default: as trained)', intAtLeast(1, LIMITS.shots))
    .option('--eval-iters <n>', 'adaptation steps on each test task (default: as trained)', intAtLeast(1, LIMITS.evalIters))
    .option('--eval-batch <n>', 'inner minibatch when adapting to a test task (default: as trained)', intAtLeast(1, LIMITS.innerBatch))
    .option('--transductive', 'classify all queries of a task in one batch (default: as trained)')
    .option('--no-transductive', 'classify each query with the support set alone, as supervised-reptile does by default')
    .addOption(new Option('--loss <how>', "how adapting combines a minibatch's losses: sum (supervised-reptile's) or mean (default: as trained; sum for checkpoints that do not record it)").choices(['sum', 'mean']))
    .addOption(new Option('--split <name>', 'classes to evaluate on').choices(['test', 'train', 'val']).default('test'))
    .option('--cache-dir <dir>', 'cache of decoded images')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'))
    .addOption(new Option('--learner <name>', 'inner-loop engine: auto (native when built, else wasm, else tfjs), native, wasm or tfjs').choices(['auto', 'native', 'wasm', 'tfjs']).default('auto'))
    .option('--json', 'print the result as JSON on stdout')
    .option('--verbose', 'say which tfjs backend and engine run')
    .action(async (flags: EvalFlags) => {
      if (flags.checkpoint === undefined) throw new UsageError('missing --checkpoint: name the directory a few-shot training run wrote');
      checkInputDir(flags.checkpoint, '--checkpoint', 'the folder a few-shot training run wrote');
      checkInputDir(flags.dataDir, '--data-dir');
      checkCacheDir(flags.cacheDir);
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
