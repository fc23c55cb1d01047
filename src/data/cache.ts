import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../_utils/atomic-write.js';

/**
 * Where decoded datasets are cached: `$REPTILE_CACHE` when set, else `~/.cache/reptile-ml`
 * (`$XDG_CACHE_HOME/reptile-ml` when that is set).
 */
export function defaultCacheDir(): string {
  const fromEnv = process.env['REPTILE_CACHE'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const xdg = process.env['XDG_CACHE_HOME'];
  return path.join(xdg !== undefined && xdg !== '' ? xdg : path.join(os.homedir(), '.cache'), 'reptile-ml');
}

const MAGIC = Buffer.from('RPTLDATA');

/**
 * Reads a cache file written by `writeCache`: a JSON header and a byte payload, checked against
 * the SHA-256 stored at the end. Returns undefined when the file is missing, truncated or does
 * not match, so a bad cache is rebuilt rather than trusted.
 */
export function readCache(file: string): { header: Record<string, unknown>; payload: Uint8Array } | undefined {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return undefined;
  }
  if (buf.length < MAGIC.length + 4 + 32 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const digest = createHash('sha256').update(buf.subarray(0, buf.length - 32)).digest();
  if (!digest.equals(buf.subarray(buf.length - 32))) return undefined;
  const headerLen = buf.readUInt32LE(MAGIC.length);
  const headerStart = MAGIC.length + 4;
  try {
    const header = JSON.parse(buf.subarray(headerStart, headerStart + headerLen).toString('utf8')) as Record<string, unknown>;
    const payload = new Uint8Array(buf.buffer, buf.byteOffset + headerStart + headerLen, buf.length - 32 - headerStart - headerLen);
    return { header, payload };
  } catch {
    return undefined;
  }
}

/**
 * Writes a cache file atomically (temporary file, then rename) so that an interrupted write never
 * leaves a half file under the final name. Failing to write the cache is not an error for the
 * caller: the data was decoded anyway; the returned string says why it was not cached.
 */
export function writeCache(file: string, header: Record<string, unknown>, payload: Uint8Array): string | undefined {
  const head = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(head.length);
  const hash = createHash('sha256').update(MAGIC).update(len).update(head).update(payload).digest();
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomicSync(file, Buffer.concat([MAGIC, len, head, payload, hash]));
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }
}
