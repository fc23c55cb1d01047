import { Argument, Command, Option } from 'commander';
import { selectBackend, type BackendChoice } from '../../engine/backend.js';
import type { LearnerChoice } from '../../learners/create-learner.js';
import { progressLine } from '../../recipes/few-shot/train.js';
import { REPRODUCTION_NAMES, reproduce } from '../../recipes/reproduce.js';
import { OMNIGLOT_CLASS_SPLITS, type OmniglotClassSplit } from '../../data/omniglot.js';
import { UsageError } from '../../_utils/errors.js';
import { intAtLeast, LIMITS } from '../parse.js';
import { checkCacheDir, checkInputDir } from '../paths.js';
import { checkOutputDir } from '../../_utils/output-dir.js';
import { openExecutor } from '../executor-flags.js';
import { EXECUTOR_NAMES, type ExecutorName } from '../../exec/create-executor.js';
import { interruptSignal, printResult, verboseLog } from '../run.js';

const info = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

const pct = (x: number): string => (100 * x).toFixed(2);

/** `reptile reproduce`: one training run of the paper's Omniglot table, then its four cells. */
export function reproduceCommand(): Command {
  return new Command('reproduce')
    .description("reproduce the paper's Omniglot table: train (resuming the run in --out), then evaluate 1-shot and 5-shot, non-transductive and transductive")
    .addArgument(new Argument('<setting>', 'omniglot-5w or omniglot-20w').choices(REPRODUCTION_NAMES))
    .option('--data-dir <dir>', 'Omniglot directory (images_background.zip and images_evaluation.zip)')
    .option('--out <dir>', 'results directory: the run goes to <out>/<setting>/, the columns to <out>/<column>.json', 'docs/results')
    .option('--samples <n>', 'test tasks per cell (the paper: 10000)', intAtLeast(1, LIMITS.samples), 10_000)
    .option('--eval-seed <n>', 'seed of the test tasks', intAtLeast(0, LIMITS.seed), 0)
    .option('--checkpoint-every <n>', 'meta-iterations between checkpoints', intAtLeast(1, LIMITS.every), 1000)
    .addOption(new Option('--class-split <how>', "how seed 0 picks the 1,200 training characters: seeded (the library's generator, as the committed runs) or supervised-reptile (Python's random.shuffle: the paper's exact characters)").choices([...OMNIGLOT_CLASS_SPLITS]).default('seeded'))
    .option('--cache-dir <dir>', 'cache of decoded images')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'))
    .addOption(new Option('--learner <name>', 'inner-loop engine: auto (native when built, else wasm, else tfjs), native, wasm or tfjs').choices(['auto', 'native', 'wasm', 'tfjs']).default('auto'))
    .addOption(new Option('--eval-executor <name>', 'where the cells\' test tasks run: inline, threads or redis (training always runs inline, with the paper\'s carry policy)').choices([...EXECUTOR_NAMES]).default('inline'))
    .option('--workers <n>', 'threads: worker threads for the evaluations (default: the number of cores)', intAtLeast(1, LIMITS.concurrency))
    .option('--redis <url>', 'redis: the Redis of the evaluation workers')
    .option('--json', 'print the columns as JSON on stdout, progress as JSON lines on stderr')
    .option('--verbose', 'say which tfjs backend and engine run')
    .action(async (setting: string, flags: { dataDir?: string; out: string; samples: number; evalSeed: number; checkpointEvery: number; classSplit: OmniglotClassSplit; cacheDir?: string; backend: BackendChoice; learner: LearnerChoice; evalExecutor: ExecutorName; workers?: number; redis?: string; json?: boolean; verbose?: boolean }) => {
      if (!(REPRODUCTION_NAMES as string[]).includes(setting)) throw new UsageError(`unknown setting '${setting}': choose ${REPRODUCTION_NAMES.join(' or ')}`);
      if (flags.dataDir === undefined) throw new UsageError("missing --data-dir: say where the Omniglot archives are, e.g. --data-dir data/omniglot (fetch them with 'reptile data omniglot --download --dir data/omniglot')");
      checkInputDir(flags.dataDir, '--data-dir', 'the folder that holds images_background.zip and images_evaluation.zip');
      checkCacheDir(flags.cacheDir);
      // The run in <out>/<setting>/ is resumed, so nothing there is refused; the folder must be writable.
      checkOutputDir(flags.out, { name: '--out' });
      await selectBackend(flags.backend, verboseLog(flags.verbose));
      const json = flags.json === true;
      const evalExecutor = await openExecutor({ executor: flags.evalExecutor, ...(flags.workers !== undefined ? { workers: flags.workers } : {}), ...(flags.redis !== undefined ? { redis: flags.redis } : {}) }, info);
      const { signal, release } = interruptSignal();
      try {
        const r = await reproduce({
          evalExecutor,
          name: setting,
          dataDir: flags.dataDir,
          outDir: flags.out,
          samples: flags.samples,
          evalSeed: flags.evalSeed,
          checkpointEvery: flags.checkpointEvery,
          classSplit: flags.classSplit,
          learner: flags.learner,
          command: `reptile ${process.argv.slice(2).join(' ')}`,
          log: info,
          signal,
          ...(flags.cacheDir !== undefined ? { cacheDir: flags.cacheDir } : {}),
          onProgress: (p) =>
            info(json ? JSON.stringify(progressLine(p)) : `batch ${p.iteration}: train=${p.trainAccuracy.toFixed(3)} test=${p.testAccuracy.toFixed(3)} loss=${p.loss.toFixed(4)} ε=${p.epsilon.toFixed(4)} ${p.seconds.toFixed(0)} s`),
        });
        if (r.stopped) {
          info(`interrupted after meta-iteration ${r.iteration}; checkpoint saved to ${r.checkpoint}: run the same command to resume`);
          process.exitCode = 130;
          return;
        }
        printResult(json, r.columns.map((c) => c.result), () => [
          ...r.columns.flatMap(({ file, result: c }) => [
            `${c.setting} after ${c.metaIters} meta-iterations (${file}):`,
            `  non-transductive ${pct(c.nonTransductive.accuracy)} ± ${pct(c.nonTransductive.ci95)}  (paper ${pct(c.paper.nonTransductive.accuracy)} ± ${pct(c.paper.nonTransductive.ci95)})`,
            `  transductive     ${pct(c.transductive.accuracy)} ± ${pct(c.transductive.ci95)}  (paper ${pct(c.paper.transductive.accuracy)} ± ${pct(c.paper.transductive.ci95)})`,
          ]),
          ...(r.curve !== undefined ? [`learning curve: ${r.curve}`] : []),
        ]);
      } finally {
        release();
        await evalExecutor.close();
      }
    });
}
