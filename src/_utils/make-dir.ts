import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * `mkdir -p` that fails instead of spinning: Node's recursive `mkdirSync` loops for ever on some
 * pseudo-filesystems (a folder under `/proc`, whose `mkdir` answers ENOENT), so this creates the
 * missing folders one at a time below the nearest existing one, and throws the first error
 * (ENOENT, EACCES, ENOTDIR, ...) as it is.
 */
export function makeDirectory(dir: string): void {
  const missing: string[] = [];
  let at = path.resolve(dir);
  while (!fs.existsSync(at)) {
    missing.push(at);
    const up = path.dirname(at);
    if (up === at) break;
    at = up;
  }
  if (fs.existsSync(at) && !fs.statSync(at).isDirectory()) {
    throw Object.assign(new Error(`'${at}' is a file, not a folder`), { code: 'ENOTDIR' });
  }
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d);
    } catch (e) {
      // Made meanwhile by someone else: fine, as long as it is a folder.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(d).isDirectory()) throw e;
    }
  }
}
