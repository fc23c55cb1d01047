/* global process, console */
// npm run bench:gemm [-- EXAMPLES_PER_SHARD]: builds bench/gemm-shapes.cc against the engine's
// kernels (native/src) and prints its JSON lines: the matrix product alone on the network's shapes.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'native', 'src');
const exe = path.join(os.tmpdir(), `reptile-gemm-shapes-${process.pid}`);
const files = ['kernels_select.cc', 'kernels_generic.cc', 'kernels_avx2.cc', 'kernels_avx512.cc'].map((f) => path.join(src, f));
const built = spawnSync('g++', ['-std=gnu++17', '-O3', '-ffp-contract=fast', `-I${src}`, '-o', exe, path.join(root, 'bench', 'gemm-shapes.cc'), ...files], { stdio: ['ignore', 'inherit', 'inherit'] });
if (built.status !== 0) {
  console.error('bench:gemm: g++ could not build bench/gemm-shapes.cc (install g++, or see the message above)');
  process.exit(1);
}
const run = spawnSync(exe, process.argv.slice(2), { stdio: 'inherit' });
rmSync(exe, { force: true });
process.exit(run.status ?? 1);
