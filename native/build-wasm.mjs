/* global process, console */
// Builds the WebAssembly engine (native/wasm/reptile.wasm) from the engine's C++ sources with
// clang targeting wasm32-wasi: single-threaded, on the SIMD128 kernels. Run by `npm run build`
// and `prepack`; the module ships in the package, so users never need this toolchain. Where it is
// missing the build says so in one line and goes on (the library then falls back to tfjs).
// REPTILE_WASM_CXX names the compiler; REPTILE_WASM_REQUIRED=1 makes a missing toolchain an error.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.join(here, 'src');
const outDir = path.join(here, 'wasm');
const out = path.join(outDir, 'reptile.wasm');
const sources = ['engine.cc', 'kernels_simd128.cc', 'wasm_api.cc'].map((f) => path.join(src, f));
const required = process.env.REPTILE_WASM_REQUIRED === '1';

function skip(why) {
  const line = `reptile-ml: WebAssembly engine not built (${why}); install clang, lld and Debian's wasi-libc, libc++-dev-wasm32 and libclang-rt-dev-wasm32 to build it`;
  if (required) {
    console.error(line);
    process.exit(1);
  }
  console.log(line);
  process.exit(0);
}

// Up to date: nothing to do when the module is newer than every source.
if (existsSync(out) && !process.env.REPTILE_WASM_REBUILD) {
  const built = statSync(out).mtimeMs;
  const inputs = readdirSync(src).map((f) => path.join(src, f)).concat(fileURLToPath(import.meta.url));
  if (inputs.every((f) => statSync(f).mtimeMs <= built)) process.exit(0);
}

// The compiler, and the libc++ built for wasm32-wasi that matches its version.
const candidates = process.env.REPTILE_WASM_CXX ? [process.env.REPTILE_WASM_CXX] : ['clang++-14', 'clang++-15', 'clang++-16', 'clang++'];
let cxx;
let major;
for (const c of candidates) {
  const v = spawnSync(c, ['--version'], { encoding: 'utf8' });
  if (v.status === 0) {
    cxx = c;
    major = /clang version (\d+)/.exec(v.stdout)?.[1];
    break;
  }
}
if (!cxx) skip('no clang++ found');
const llvm = `/usr/lib/llvm-${major}`;
const cxxHeaders = [`${llvm}/include/wasm32-wasi/c++/v1`, '/usr/include/wasm32-wasi/c++/v1'].find((d) => existsSync(d));
const libDirs = [`${llvm}/lib/wasm32-wasi`, '/usr/lib/wasm32-wasi'].filter((d) => existsSync(d));
if (!cxxHeaders) skip(`libc++ for wasm32-wasi was not found for clang ${major ?? '?'}`);
if (!libDirs.some((d) => existsSync(path.join(d, 'libc.a')))) skip('wasi-libc was not found');

const tmp = `${out}.${process.pid}.tmp`;
mkdirSync(outDir, { recursive: true });
const args = [
  '--target=wasm32-wasi',
  '-mexec-model=reactor',
  '-msimd128',
  '-O3',
  '-std=c++17',
  // No helper thread (engine.cc); the engine throws only when memory runs out, and wasm_api.cc
  // turns that throw into a trap, so no exception-handling runtime is linked.
  '-DREPTILE_SINGLE_THREAD',
  '-isystem',
  cxxHeaders,
  ...libDirs.map((d) => `-L${d}`),
  '-Wno-unused-command-line-argument',
  '-Wl,-z,stack-size=1048576',
  '-Wl,--strip-all',
  '-Wl,--gc-sections',
  ...sources,
  '-o',
  tmp,
];
const run = spawnSync(cxx, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
if (run.error) skip(`${cxx} could not start (${run.error.message})`);
if (run.status !== 0) {
  const line = `${run.stderr}`.split('\n').find((l) => /error/.test(l)) ?? `${cxx} exited with ${run.status}`;
  skip(`the build failed: ${line.trim()}`);
}
renameSync(tmp, out);
console.log(`reptile-ml: WebAssembly engine built (${path.relative(process.cwd(), out)}, ${Math.round(statSync(out).size / 1024)} KiB, ${cxx})`);
