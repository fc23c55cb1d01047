/** What the benchmarks that run on the built package share: the package itself, their flags, a median. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
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

/** The two-core FMA ceiling: bench/peak-flops.cc built for this CPU, best of three runs on one and two threads (GFLOP/s). */
export function peakFlops(log: (line: string) => void): { perCore: number; twoCores: number; raw: unknown[] } | undefined {
  const exe = path.join(os.tmpdir(), `reptile-peak-flops-${process.pid}`);
  const built = spawnSync('g++', ['-O2', '-march=native', '-pthread', '-o', exe, path.join(root, 'bench', 'peak-flops.cc')], { encoding: 'utf8' });
  if (built.status !== 0) {
    log(`peak FLOP measurement skipped: g++ failed (${(built.stderr || '').trim().split('\n')[0]})`);
    return undefined;
  }
  const raw: { threads: number; gflop_per_s: number }[] = [];
  for (let r = 0; r < 3; r++) {
    for (const t of [1, 2]) {
      const out = spawnSync(exe, [String(t), '200000000'], { encoding: 'utf8' });
      if (out.status === 0) raw.push(JSON.parse(out.stdout.trim()) as { threads: number; gflop_per_s: number });
    }
  }
  fs.rmSync(exe, { force: true });
  const best = (t: number) => Math.max(...raw.filter((x) => x.threads === t).map((x) => x.gflop_per_s));
  return { perCore: best(1), twoCores: best(2), raw };
}
