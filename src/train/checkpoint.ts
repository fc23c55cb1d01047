import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bytesToFloats, floatsToBytes } from '../core/codec.js';
import { Params, createLayout, type Layout, type ParamSpec } from '../core/params.js';
import { writeFileAtomicSync } from '../_utils/atomic-write.js';
import { describeValue } from '../_utils/checks.js';
import { CheckpointError } from '../_utils/errors.js';
import { makeDirectory } from '../_utils/make-dir.js';
import type { OptimizerState } from '../learners/learner.js';
import type { Checkpoint } from './meta-loop.js';

export type { Checkpoint } from './meta-loop.js';

const MAGIC = 'RPTLCKPT';
const VERSION = 1;
const DIGEST_BYTES = 32;
/** The checkpoint's file name inside its directory. */
export const CHECKPOINT_FILE = 'reptile.ckpt';

interface Header {
  format: string;
  version: number;
  iteration: number;
  layout: { specs: ParamSpec[]; hash: string; size: number };
  optimizer: { kind: 'sgd' | 'adam'; step: number; moments: boolean } | null;
  meta: Record<string, unknown>;
}

/** The path of the checkpoint file in `dir`. */
export function checkpointPath(dir: string): string {
  return path.join(dir, CHECKPOINT_FILE);
}

/**
 * Makes sure checkpoints can be written to `dir` before any training starts, so that a bad
 * directory fails in the first second rather than after an hour.
 */
export function ensureWritableDir(dir: string): void {
  try {
    makeDirectory(dir);
    const probe = path.join(dir, `.write-test-${process.pid}`);
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (e) {
    throw new CheckpointError(`cannot write checkpoints to '${dir}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable \`checkpointDir\``, { cause: e });
  }
}

/**
 * Writes a checkpoint atomically: to a temporary file in the same directory, fsynced, then renamed
 * over the old one, with a SHA-256 of the contents at the end. A crash leaves the old checkpoint.
 */
export function writeCheckpoint(dir: string, ckpt: Checkpoint): string {
  const header: Header = {
    format: MAGIC,
    version: VERSION,
    iteration: ckpt.iteration,
    layout: { specs: ckpt.params.layout.specs.map((s) => ({ name: s.name, shape: [...s.shape] })), hash: ckpt.params.layout.hash, size: ckpt.params.layout.size },
    optimizer: ckpt.optimizer ? { kind: ckpt.optimizer.kind, step: ckpt.optimizer.step, moments: ckpt.optimizer.m !== undefined } : null,
    meta: ckpt.meta,
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const arrays = [ckpt.params.data];
  if (ckpt.optimizer?.m && ckpt.optimizer.v) arrays.push(ckpt.optimizer.m, ckpt.optimizer.v);
  const prefix = Buffer.alloc(16);
  prefix.write(MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(VERSION, 8);
  prefix.writeUInt32LE(headerBytes.length, 12);
  const parts = [prefix, headerBytes, ...arrays.map(floatsToBytes)];
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  parts.push(hash.digest());

  const final = checkpointPath(dir);
  try {
    makeDirectory(dir);
    writeFileAtomicSync(final, Buffer.concat(parts));
  } catch (e) {
    // A full disk or a folder that went away mid-run: the previous checkpoint is still whole.
    throw new CheckpointError(`cannot write the checkpoint '${final}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): free space or choose a writable \`checkpointDir\`; the previous checkpoint is untouched`, { cause: e });
  }
  return final;
}

/** True when `dir` holds a checkpoint file. */
export function hasCheckpoint(dir: string): boolean {
  return fs.existsSync(checkpointPath(dir));
}

/** Reads and verifies a checkpoint; throws a `CheckpointError` naming the problem otherwise. */
export function readCheckpoint(dir: string): Checkpoint {
  const file = checkpointPath(dir);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new CheckpointError(`no checkpoint at '${file}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): train with \`checkpointDir\` '${dir}' first, or point \`checkpointDir\` at a folder that has one`, { cause: e });
  }
  return decodeCheckpoint(bytes, file);
}

/**
 * The checkpoint in `bytes` (the contents of `file`, which the errors name): its magic, checksum,
 * version, header and payload size are checked before anything is allocated for it; anything
 * else is a `CheckpointError`.
 */
export function decodeCheckpoint(bytes: Buffer, file: string): Checkpoint {
  const corrupt = (why: string) =>
    new CheckpointError(`checkpoint '${file}' is corrupt (${why}): delete it to start afresh, or restore it from a backup`);
  if (bytes.length < 16 + DIGEST_BYTES || bytes.toString('ascii', 0, 8) !== MAGIC) throw corrupt('not a reptile-ml checkpoint or truncated');
  const body = bytes.subarray(0, bytes.length - DIGEST_BYTES);
  const digest = bytes.subarray(bytes.length - DIGEST_BYTES);
  if (!createHash('sha256').update(body).digest().equals(digest)) throw corrupt('checksum mismatch: truncated or edited');
  const version = bytes.readUInt32LE(8);
  if (version !== VERSION) throw new CheckpointError(`checkpoint '${file}' has format version ${version}, this reptile-ml reads version ${VERSION}: use the matching reptile-ml version`);
  const headerLength = bytes.readUInt32LE(12);
  let header: Header;
  try {
    header = JSON.parse(bytes.toString('utf8', 16, 16 + headerLength)) as Header;
  } catch {
    throw corrupt('unreadable header');
  }
  const problem = checkHeader(header);
  if (problem !== undefined) throw corrupt(problem);
  const layout: Layout = createLayout(header.layout.specs);
  const floats = (body.length - 16 - headerLength) / 4;
  const moments = header.optimizer?.moments === true;
  if (floats !== layout.size * (moments ? 3 : 1)) throw corrupt(`payload of ${floats} values does not match its layout`);
  const payload = bytesToFloats(body.subarray(16 + headerLength), floats);
  const params = new Params(layout, payload.slice(0, layout.size));
  let optimizer: OptimizerState | undefined;
  if (header.optimizer) {
    optimizer = moments
      ? { kind: header.optimizer.kind, step: header.optimizer.step, m: payload.slice(layout.size, 2 * layout.size), v: payload.slice(2 * layout.size) }
      : { kind: header.optimizer.kind, step: header.optimizer.step };
  }
  return { iteration: header.iteration, params, optimizer, meta: header.meta };
}

// The header's fields as readCheckpoint uses them; its checksum held, so a problem here is a file
// written by something else under the same magic, or a bug: either way one line, not a TypeError.
function checkHeader(header: Header): string | undefined {
  if (header === null || typeof header !== 'object') return 'the header is not an object';
  if (!Number.isInteger(header.iteration) || header.iteration < 0) return `bad iteration ${describeValue(header.iteration)}`;
  const specs = (header.layout as Partial<Header['layout']> | undefined)?.specs;
  if (!Array.isArray(specs) || !specs.every((s) => s !== null && typeof s === 'object' && typeof s.name === 'string' && Array.isArray(s.shape) && s.shape.every((d) => Number.isInteger(d) && d >= 0))) {
    return 'bad parameter layout';
  }
  const opt = header.optimizer;
  if (opt !== null && (typeof opt !== 'object' || (opt.kind !== 'sgd' && opt.kind !== 'adam') || !Number.isSafeInteger(opt.step) || opt.step < 0)) return 'bad optimizer state';
  if (header.meta === null || typeof header.meta !== 'object') return 'bad metadata';
  return undefined;
}
