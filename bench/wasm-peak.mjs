/* global process, console, WebAssembly */
// Peak f32x4 multiply-add rate of WebAssembly SIMD128 in this Node (bench/wasm-peak.c, 12
// independent accumulators), against which the WebAssembly engine's GEMM rate is read. With
// --relaxed it also times f32x4.relaxed_madd: clang 14 emits relaxed SIMD's prototype opcode
// (0xfd 0xaf 0x01), which is patched here to the standard one (0xfd 0x85 0x02); run Node with
// --experimental-wasm-relaxed-simd where the runtime keeps it behind a flag.
// Run: node [--experimental-wasm-relaxed-simd] bench/wasm-peak.mjs [--relaxed]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const src = path.join(path.dirname(fileURLToPath(import.meta.url)), 'wasm-peak.c');
const dir = mkdtempSync(path.join(os.tmpdir(), 'reptile-wasm-peak-'));
function build(relaxed) {
  const out = path.join(dir, relaxed ? 'relaxed.wasm' : 'simd.wasm');
  const flags = relaxed ? ['-mrelaxed-simd', '-DRELAXED'] : [];
  const cc = process.env.REPTILE_WASM_CC ?? 'clang-14';
  const p = spawnSync(cc, ['--target=wasm32', '-msimd128', ...flags, '-O3', '-nostdlib', '-Wl,--no-entry', '-o', out, src], { encoding: 'utf8' });
  if (p.status !== 0) throw new Error(`${cc}: ${p.stderr || p.error}`);
  const bytes = readFileSync(out);
  if (relaxed) for (let i = 0; i + 2 < bytes.length; i++) if (bytes[i] === 0xfd && bytes[i + 1] === 0xaf && bytes[i + 2] === 0x01) bytes.set([0xfd, 0x85, 0x02], i);
  return bytes;
}
function time(bytes, label) {
  if (!WebAssembly.validate(bytes)) {
    console.log(`${label}: not supported by this runtime`);
    return;
  }
  const { peak } = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports;
  peak(1e6, 0.5);
  const iters = 2e7;
  const rates = [];
  for (let r = 0; r < 5; r++) {
    const c0 = process.cpuUsage();
    peak(iters, 0.5);
    const c = process.cpuUsage(c0);
    rates.push((iters * 12 * 4 * 2) / ((c.user + c.system) * 1e3));
  }
  rates.sort((a, b) => a - b);
  console.log(`${label}: ${rates[2].toFixed(1)} GFLOP/s (median of 5, CPU time; ${rates[0].toFixed(1)}–${rates[4].toFixed(1)})`);
}
try {
  time(build(false), 'f32x4.mul + f32x4.add');
  if (process.argv.includes('--relaxed')) time(build(true), 'f32x4.relaxed_madd');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
