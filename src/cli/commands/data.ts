import { Command } from 'commander';
import { downloadOmniglot } from '../../data/download.js';
import { loadOmniglot } from '../../data/omniglot.js';
import { UsageError } from '../../_utils/errors.js';

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
