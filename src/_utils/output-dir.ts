import * as fs from 'node:fs';
import * as path from 'node:path';
import { ReptileError } from './errors.js';

/**
 * Checks made before a command does any work, so that an output it cannot write fails in the
 * first second, not after the training, and nothing that exists is replaced by accident. Nothing
 * is created here: the folder is made (with `makeDirectory` of make-dir.ts) when the first file is written, so a
 * command that stops early leaves no empty folder behind. Exit code 1: the command line is fine,
 * the file system is not as it needs.
 */
export interface OutputDirCheck {
  /** How the message names the folder: a flag (`--out`) or an option (`outDir`). */
  name: string;
  /** The files the command writes into the folder; an existing one is refused unless `force`. */
  files?: readonly string[];
  /** Replace the `files` that exist. */
  force?: boolean;
  /** How the message names the way to replace them (`--force`). */
  forceName?: string;
}

/** Throws a one-line {@link ReptileError} unless `dir` is, or can be made, a writable folder. */
export function checkOutputDir(dir: string, check: OutputDirCheck): void {
  const abs = path.resolve(dir);
  const stat = statOf(abs);
  if (stat !== undefined && !stat.isDirectory()) {
    throw new ReptileError(`${check.name} '${dir}' is a file, not a folder: name a folder (it is made if missing)`);
  }
  probeWritable(stat !== undefined ? abs : nearestExisting(abs, dir, check.name), dir, check.name);
  if (stat === undefined || check.force === true) return;
  for (const name of check.files ?? []) {
    const file = path.join(dir, name);
    if (fs.existsSync(file)) {
      throw new ReptileError(`'${file}' exists: pass ${check.forceName ?? 'force: true'} to replace it, or name a new ${check.name} folder`);
    }
  }
}

/**
 * Throws a one-line {@link ReptileError} unless `file` can be written. Its folder must exist,
 * unless `madeBy` says which folder the command makes first (a log inside the checkpoint folder).
 */
export function checkOutputFile(file: string, check: { name: string; madeBy?: string }): void {
  const abs = path.resolve(file);
  const stat = statOf(abs);
  if (stat?.isDirectory() === true) throw new ReptileError(`${check.name} '${file}' is a folder: name a file in it, e.g. ${path.join(file, 'log.jsonl')}`);
  const parent = path.dirname(abs);
  const parentStat = statOf(parent);
  if (parentStat !== undefined && !parentStat.isDirectory()) throw new ReptileError(`${check.name} '${file}' is inside a file, '${parent}': name a file in a folder`);
  if (parentStat === undefined && (check.madeBy === undefined || path.resolve(check.madeBy) !== parent)) {
    probeWritable(nearestExisting(parent, file, check.name), file, check.name);
    throw new ReptileError(`${check.name} '${file}': the folder '${path.dirname(file)}' does not exist: make it first, or name a file in an existing folder`);
  }
  probeWritable(parentStat !== undefined ? parent : nearestExisting(parent, file, check.name), file, check.name);
}

function statOf(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}

// The nearest folder above `abs` that exists; a file on the way is refused.
function nearestExisting(abs: string, given: string, name: string): string {
  for (let p = path.dirname(abs); ; p = path.dirname(p)) {
    const s = statOf(p);
    if (s !== undefined) {
      if (!s.isDirectory()) throw new ReptileError(`${name} '${given}' is inside a file, '${p}': name a path under a folder`);
      return p;
    }
    if (path.dirname(p) === p) return p;
  }
}

// Writes and removes an empty file in `dir`: the only test of writability that holds for root,
// read-only mounts and pseudo file systems alike.
function probeWritable(dir: string, given: string, name: string): void {
  const probe = path.join(dir, `.reptile-write-test-${process.pid}`);
  try {
    fs.writeFileSync(probe, '');
    fs.rmSync(probe, { force: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new ReptileError(`cannot write to ${name} '${given}' (${code} in '${dir}'): choose a writable ${name} path`);
  }
}
