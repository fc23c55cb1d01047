/** What the benchmarks that run on the built package share: the package itself, their flags, a median. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const dist = (p: string): string => path.join(root, 'dist', p);

/** The built package (npm run build), as a user imports it. */
export async function builtLibrary(): Promise<typeof import('../src/index.js')> {
  if (!fs.existsSync(dist('index.js'))) throw new Error('run npm run build first');
  return (await import(dist('index.js'))) as typeof import('../src/index.js');
}

/** `--name value` from the command line, or `dflt`. */
export function option(args: readonly string[], name: string, dflt: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined && !args[i + 1]!.startsWith('--') ? args[i + 1]! : dflt;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
