import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../_utils/atomic-write.js';
import { DataError, InvalidOptionsError } from '../_utils/errors.js';
import { makeDirectory } from '../_utils/make-dir.js';
import { OMNIGLOT_ARCHIVES } from './omniglot.js';

/** Where the official Omniglot archives are published (Lake et al., github.com/brendenlake/omniglot). */
export const OMNIGLOT_URL = 'https://raw.githubusercontent.com/brendenlake/omniglot/master/python';

/**
 * Downloads the two official Omniglot archives into `dir` (skipping those already there), each
 * to a temporary file renamed when complete. Offline, it stops with one line saying so and what
 * to do instead; nothing already in `dir` is touched.
 */
export async function downloadOmniglot(options: { dir: string; baseUrl?: string; log?: (line: string) => void; fetchImpl?: typeof fetch }): Promise<string[]> {
  const base = options.baseUrl ?? OMNIGLOT_URL;
  const doFetch = options.fetchImpl ?? fetch;
  if (typeof options.dir !== 'string' || options.dir === '') throw new InvalidOptionsError('`dir` must be the folder to download into', { option: 'dir' });
  try {
    makeDirectory(options.dir);
  } catch (e) {
    // Like an unwritable checkpoint folder, a failure at run time (exit code 1), not a usage mistake.
    throw new DataError(`cannot create '${options.dir}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable \`dir\``, { cause: e });
  }
  const out: string[] = [];
  for (const name of OMNIGLOT_ARCHIVES) {
    const file = path.join(options.dir, name);
    out.push(file);
    if (fs.existsSync(file)) continue;
    const url = `${base}/${name}`;
    options.log?.(`downloading ${url}`);
    let bytes: Uint8Array;
    let res: Response;
    try {
      res = await doFetch(url);
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      throw new DataError(`cannot download ${url} (${cause}): this machine seems to be offline; copy ${OMNIGLOT_ARCHIVES.join(' and ')} into '${options.dir}' by hand`);
    }
    // The server answered: an HTTP error is the server's or the address's problem, not the network's.
    if (!res.ok) {
      throw new DataError(`cannot download ${url}: the server answered HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}; check the address, or copy ${OMNIGLOT_ARCHIVES.join(' and ')} into '${options.dir}' by hand`);
    }
    try {
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      throw new DataError(`the download of ${url} broke off (${(e as Error).message}): try again, or copy ${OMNIGLOT_ARCHIVES.join(' and ')} into '${options.dir}' by hand`);
    }
    try {
      writeFileAtomicSync(file, bytes);
    } catch (e) {
      throw new DataError(`cannot write '${file}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable \`dir\``, { cause: e });
    }
  }
  return out;
}
