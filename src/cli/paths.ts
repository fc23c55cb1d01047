import * as fs from 'node:fs';
import { ReptileError } from '../_utils/errors.js';
import { checkOutputDir, checkOutputFile } from '../_utils/output-dir.js';

/**
 * The checks every command makes on the paths it is given before it does any work: an input
 * folder that is a file, an output folder it cannot write or that would be overwritten. See
 * `_utils/output-dir.ts`; these word the problems with the command's flags.
 */

/** Refuses an input folder that is a file (a missing one is left to the loader, which says how to get the data). */
export function checkInputDir(dir: string | undefined, flag: string, what = 'the folder that holds the data'): void {
  if (dir === undefined) return;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    return;
  }
  if (!stat.isDirectory()) throw new ReptileError(`${flag} '${dir}' is a file, not a folder: name ${what}`);
}

/** Refuses a cache folder that is a file or cannot be written (the cache is optional, but a wrong one is a mistake). */
export function checkCacheDir(dir: string | undefined): void {
  if (dir !== undefined) checkOutputDir(dir, { name: '--cache-dir' });
}

/** The checkpoint folder (resumed when it holds a checkpoint, so nothing in it is refused) and the log file. */
export function checkTrainingOutputs(flags: { checkpoint?: string | undefined; log?: string | undefined }): void {
  if (flags.checkpoint !== undefined) checkOutputDir(flags.checkpoint, { name: '--checkpoint' });
  if (flags.log !== undefined) checkOutputFile(flags.log, { name: '--log', ...(flags.checkpoint !== undefined ? { madeBy: flags.checkpoint } : {}) });
}

/** An output folder that the command fills with `files`: refused when one exists, unless `--force`. */
export function checkOutDir(dir: string, flag: string, files: readonly string[], force: boolean | undefined): void {
  checkOutputDir(dir, { name: flag, files, force: force === true, forceName: '--force' });
}
