import * as fs from 'node:fs';
import { Command } from 'commander';
import { downloadOmniglot } from '../../data/download.js';
import { loadOmniglot } from '../../data/omniglot.js';
import { ReptileError, UsageError } from '../../_utils/errors.js';
import { checkOutputDir } from '../../_utils/output-dir.js';
import { checkCacheDir, checkInputDir } from '../paths.js';

const info = (line: string) => process.stderr.write(`${line}\n`);

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
      checkCacheDir(flags.cacheDir);
      if (flags.download === true) checkOutputDir(flags.dir, { name: '--dir' });
      else if (!fs.existsSync(flags.dir)) throw new ReptileError(`--dir '${flags.dir}' does not exist: fetch the archives into it with 'reptile data omniglot --download --dir ${flags.dir}', or name the folder that holds them`);
      else checkInputDir(flags.dir, '--dir', 'the folder that holds images_background.zip and images_evaluation.zip');
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
