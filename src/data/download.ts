import * as fs from 'node:fs';
import * as path from 'node:path';
import { ReptileError } from '../_utils/errors.js';
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
  try {
    fs.mkdirSync(options.dir, { recursive: true });
  } catch (e) {
    throw new ReptileError(`cannot create '${options.dir}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable --dir`);
  }
  const out: string[] = [];
  for (const name of OMNIGLOT_ARCHIVES) {
    const file = path.join(options.dir, name);
    out.push(file);
    if (fs.existsSync(file)) continue;
    const url = `${base}/${name}`;
    options.log?.(`downloading ${url}`);
    let bytes: Uint8Array;
    try {
      const res = await doFetch(url);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      throw new ReptileError(`cannot download ${url} (${cause}): this machine seems to be offline; copy ${OMNIGLOT_ARCHIVES.join(' and ')} into '${options.dir}' by hand`);
    }
    const tmp = `${file}.part-${process.pid}`;
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, file);
  }
  return out;
}
