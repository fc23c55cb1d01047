import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');
const entry = path.join(root, 'dist', 'cli', 'main.js');

/** Result of one `reptile` invocation. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built `reptile` command (npm test builds it first). */
export function reptile(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): CliRun {
  if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: run 'npm run build' first`);
  const r = spawnSync(process.execPath, [entry, ...args], { cwd: options.cwd ?? root, encoding: 'utf8', timeout: options.timeoutMs ?? 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
