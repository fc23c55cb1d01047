import * as path from 'node:path';
import { Command } from 'commander';
import { selectBackend } from '../../engine/backend.js';
import { exportLayersModel } from '../../recipes/few-shot/export.js';
import { loadFewShotCheckpoint } from '../../recipes/few-shot/checkpoint.js';
import { fewShotDemoTasks } from '../../recipes/web-demo.js';
import { writeFileAtomicSync } from '../../_utils/atomic-write.js';
import { checkInputDir, checkOutDir } from '../paths.js';
import { UsageError } from '../../_utils/errors.js';
import { intAtLeast, LIMITS } from '../parse.js';

const info = (line: string) => process.stderr.write(`${line}\n`);

/** `reptile export`: writes a few-shot checkpoint's φ as a TF.js LayersModel. */
export function exportCommand(): Command {
  return new Command('export')
    .description('write a few-shot checkpoint as a TF.js LayersModel (model.json + weights.bin)')
    .option('--checkpoint <dir>', 'checkpoint directory of a few-shot training run')
    .option('--out <dir>', 'output directory')
    .option('--demo-tasks <n>', 'also write tasks.json: n held-out 1-shot tasks with Node\'s predictions, for the web drawing page', intAtLeast(1, LIMITS.demoTasks))
    .option('--data-dir <dir>', 'dataset directory for --demo-tasks (default: the one the checkpoint was trained on)')
    .option('--force', 'replace model.json, weights.bin (and tasks.json) when --out already has them')
    .action(async (flags: { checkpoint?: string; out?: string; demoTasks?: number; dataDir?: string; force?: boolean }) => {
      if (flags.checkpoint === undefined) throw new UsageError('missing --checkpoint: name the directory a few-shot training run wrote');
      if (flags.out === undefined) throw new UsageError('missing --out: name the directory to write model.json and weights.bin into');
      if (flags.dataDir !== undefined && flags.demoTasks === undefined) throw new UsageError('--data-dir is read only for --demo-tasks: add --demo-tasks N, or drop --data-dir');
      // Every input is checked, and the demo tasks computed, before the first byte is written.
      checkInputDir(flags.checkpoint, '--checkpoint', 'the folder a few-shot training run wrote');
      checkInputDir(flags.dataDir, '--data-dir');
      checkOutDir(flags.out, '--out', ['model.json', 'weights.bin', ...(flags.demoTasks !== undefined ? ['tasks.json'] : [])], flags.force);
      await selectBackend('cpu');
      const { learner, model } = loadFewShotCheckpoint(flags.checkpoint, { learner: 'tfjs' });
      try {
        const tasks = flags.demoTasks === undefined ? undefined : await fewShotDemoTasks({ checkpointDir: flags.checkpoint, tasks: flags.demoTasks, ...(flags.dataDir !== undefined ? { dataDir: flags.dataDir } : {}), log: info });
        const files = await exportLayersModel(model, flags.out);
        if (tasks !== undefined) {
          const file = path.join(flags.out, 'tasks.json');
          writeFileAtomicSync(file, `${JSON.stringify(tasks)}\n`);
          files.push(file);
        }
        process.stdout.write(`${files.join('\n')}\n`);
      } finally {
        learner.dispose();
        model.dispose();
      }
    });
}
