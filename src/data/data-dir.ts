import * as fs from 'node:fs';
import { describeValue } from '../_utils/checks.js';
import { DataError, InvalidOptionsError } from '../_utils/errors.js';

/**
 * Checks a data folder before a loader reads it: `dir` (the loader's option) must be a path, the
 * path must exist, and it must be a folder, not a file. `what` names the data ("Omniglot
 * directory") and `layout` says what the folder should hold ("a folder with ..."); a file gets its
 * own words, since downloading into it or creating it would not help.
 */
export function requireDataFolder(dir: unknown, what: string, layout: string, option = 'dir'): string {
  if (typeof dir !== 'string' || dir === '') throw new InvalidOptionsError(`\`${option}\` must be the path of the ${what}, got ${describeValue(dir)}`, { option });
  if (!fs.existsSync(dir)) throw new DataError(`${what} '${dir}' does not exist: point \`${option}\` at ${layout}`);
  if (!fs.statSync(dir).isDirectory()) throw new DataError(`${what} '${dir}' is a file, not a folder: point \`${option}\` at ${layout}`);
  return dir;
}
