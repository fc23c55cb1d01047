import { Command } from 'commander';
import { selectBackend } from '../../engine/backend.js';
import { exportLayersModel } from '../../recipes/few-shot/export.js';
import { loadFewShotCheckpoint } from '../../recipes/few-shot/checkpoint.js';
import { writeFewShotDemoTasks } from '../../recipes/web-demo.js';
import { UsageError } from '../../_utils/errors.js';
import { intAtLeast } from '../parse.js';

const info = (line: string) => process.stderr.write(`${line}\n`);

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
