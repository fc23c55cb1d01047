import * as path from 'node:path';
import { Command } from 'commander';
import { selectBackend } from '../../engine/backend.js';
import { runSineDemo, SINE_DEMO_EXPORT_FILES, SINE_DEMO_FILES } from '../../recipes/sine-demo.js';
import { UsageError } from '../../_utils/errors.js';
import type { LearnerChoice } from '../../learners/create-learner.js';
import { intAtLeast, LIMITS, oneOf } from '../parse.js';
import { progressCallbacks } from '../progress.js';
import { checkOutDir } from '../paths.js';
import { printResult, verboseLog } from '../run.js';

interface DemoFlags {
  metaIters: number;
  seed: number;
  evalTasks: number;
  out?: string;
  learner: LearnerChoice;
  export?: string;
  force?: boolean;
  json?: boolean;
  verbose?: boolean;
}

const DEFAULT_OUT = path.join('runs', 'sine-demo');

/** `reptile demo sine`: the paper's sine-wave experiment with plots. */
export function demoCommand(): Command {
  return new Command('demo')
    .description('run a self-contained demonstration (no data or service needed)')
    .argument('<name>', 'which demo: sine')
    .option('--meta-iters <n>', 'meta-iterations of Reptile (and of joint training)', intAtLeast(1, LIMITS.metaIters), 4000)
    .option('--seed <n>', 'random seed', intAtLeast(0, LIMITS.seed), 0)
    .option('--eval-tasks <n>', 'held-out tasks to evaluate each start on', intAtLeast(1, LIMITS.samples), 100)
    .option('--out <dir>', `directory for plots and result.json (default ${DEFAULT_OUT}, the demo's own, replaced on each run; a folder you name is never overwritten without --force)`)
    .option('--learner <name>', 'inner-loop engine: auto (native when built, else wasm, else tfjs), native, wasm or tfjs', oneOf('auto', 'native', 'wasm', 'tfjs'), 'auto')
    .option('--export <dir>', 'also write the meta-learned init as a TF.js LayersModel (model.json, weights.bin, sine-demo.json), as the web demo loads it')
    .option('--force', 'replace the files of an earlier run in --out (and --export)')
    .option('--json', 'print the result as JSON on stdout')
    .option('--verbose', 'say which tfjs backend runs')
    .action(async (name: string, flags: DemoFlags) => {
      const out = flags.out ?? DEFAULT_OUT;
      if (name !== 'sine') throw new UsageError(`unknown demo '${name}': the available demo is 'sine' (reptile demo sine)`);
      // Both folders are checked before the training, so a bad one fails now, not in a minute.
      checkOutDir(out, '--out', flags.out === undefined ? [] : SINE_DEMO_FILES, flags.force);
      if (flags.export !== undefined) checkOutDir(flags.export, '--export', SINE_DEMO_EXPORT_FILES, flags.force);
      const info = (line: string): void => void process.stderr.write(`${line}\n`);
      await selectBackend('cpu', verboseLog(flags.verbose));
      const result = await runSineDemo({
        metaIters: flags.metaIters,
        seed: flags.seed,
        evalTasks: flags.evalTasks,
        outDir: out,
        callbacks: [progressCallbacks('reptile')],
        log: info,
        learner: flags.learner,
        ...(flags.export !== undefined ? { exportDir: flags.export } : {}),
      });
      printResult(flags.json === true, result, () => {
        const f = (k: keyof typeof result.mse) => `${result.mse[k].toFixed(4)} ± ${result.ci95[k].toFixed(4)}`;
        return [
          `Sine-wave regression: mean MSE on ${result.evalTasks} held-out tasks after ${result.evalSteps} SGD steps on 10 points`,
          `  meta-learned init (Reptile): ${f('metaLearned')}`,
          `  random init:                 ${f('random')}`,
          `  joint training:              ${f('joint')}`,
          `  (before adaptation: meta-learned ${result.mseBeforeAdaptation.metaLearned.toFixed(3)}, random ${result.mseBeforeAdaptation.random.toFixed(3)}, joint ${result.mseBeforeAdaptation.joint.toFixed(3)})`,
          `plots: ${result.files.filter((p) => p.endsWith('.svg')).join(', ')}`,
          `done in ${result.seconds.toFixed(1)} s (${result.learner} learner)`,
        ];
      });
    });
}
