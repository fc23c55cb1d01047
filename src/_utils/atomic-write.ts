import * as fs from 'node:fs';
import * as path from 'node:path';
import writeFileAtomic from 'write-file-atomic';

/**
 * Writes `data` to `file` so that a reader or a crash never sees half of it: a temporary file in
 * the same directory, fsynced, renamed over `file`, then the directory fsynced so the rename
 * itself survives a power cut. On failure the temporary file is removed and `file` is left as it
 * was; the error is rethrown for the caller to word.
 */
export function writeFileAtomicSync(file: string, data: Uint8Array | string): void {
  writeFileAtomic.sync(file, typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength), { fsync: true });
  syncDir(path.dirname(file));
}

function syncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Some file systems cannot fsync a directory; the rename itself is still atomic.
  }
}
