/* global process, console */
// Builds the WebAssembly engine (native/wasm/reptile.wasm, and reptile-relaxed.wasm with relaxed
// SIMD's fused multiply-add) from the engine's C++ sources with clang targeting wasm32-wasi:
// single-threaded, on the SIMD128 kernels. Run by `npm run build`
// and `prepack`; the module ships in the package, so users never need this toolchain. Where it is
// missing the build says so in one line and goes on (the library then falls back to tfjs).
// REPTILE_WASM_CXX (REPTILE_WASM_RELAXED_CXX) names the compiler of the SIMD128 (relaxed-SIMD) build;
// REPTILE_WASM_REQUIRED=1 makes a missing toolchain an error; REPTILE_WASM_FLAGS adds compiler
// flags to the relaxed-SIMD build (its register tile, for trials); REPTILE_WASM_KEEP_NAMES=1 keeps
// the functions' names, for a profiler (node --cpu-prof).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.join(here, 'src');
const outDir = path.join(here, 'wasm');
const out = path.join(outDir, 'reptile.wasm');
const outRelaxed = path.join(outDir, 'reptile-relaxed.wasm');
const sources = ['engine.cc', 'kernels_simd128.cc', 'wasm_api.cc'].map((f) => path.join(src, f));
const required = process.env.REPTILE_WASM_REQUIRED === '1';

function skip(why) {
  const line = `reptile-ml: WebAssembly engine not built (${why}); install clang, lld and Debian's wasi-libc, libc++-dev-wasm32 and libclang-rt-dev-wasm32 of one version (clang-19, lld-19, libc++-19-dev-wasm32, libclang-rt-19-dev-wasm32) to build it`;
  if (required) {
    console.error(line);
    process.exit(1);
  }
  console.log(line);
  process.exit(0);
}

// Up to date: nothing to do when the module is newer than every source.
if (existsSync(out) && existsSync(outRelaxed) && !process.env.REPTILE_WASM_REBUILD) {
  const built = Math.min(statSync(out).mtimeMs, statSync(outRelaxed).mtimeMs);
  const inputs = readdirSync(src).map((f) => path.join(src, f)).concat(fileURLToPath(import.meta.url));
  if (inputs.every((f) => statSync(f).mtimeMs <= built)) process.exit(0);
}

// A compiler and the libc++ built for wasm32-wasi that matches its version, from `candidates`.
function toolchain(candidates) {
  let problem = 'no clang++ found';
  for (const c of candidates) {
    const v = spawnSync(c, ['--version'], { encoding: 'utf8' });
    if (v.status !== 0) continue;
    const major = /clang version (\d+)/.exec(v.stdout)?.[1];
    const llvm = `/usr/lib/llvm-${major}`;
    // Debian installs one libc++ for wasm32-wasi at a time: under its clang's directory, with a link from /usr/include.
    const cxxHeaders = [`${llvm}/include/wasm32-wasi/c++/v1`].find((d) => existsSync(d));
    const libDirs = [`${llvm}/lib/wasm32-wasi`, '/usr/lib/wasm32-wasi'].filter((d) => existsSync(d));
    if (!cxxHeaders) problem = `libc++ for wasm32-wasi was not found for clang ${major ?? '?'}`;
    else if (!libDirs.some((d) => existsSync(path.join(d, 'libc.a')))) problem = 'wasi-libc was not found';
    else return { cxx: c, cxxHeaders, libDirs };
  }
  return { problem };
}

/** Compiles the engine to `out` with `flags`; returns an error line, or undefined. */
function build(tc, flags, out) {
  const tmp = `${out}.${process.pid}.tmp`;
  const args = [
    '--target=wasm32-wasi',
    '-mexec-model=reactor',
    ...flags,
    '-O3',
    '-std=c++17',
    // No helper thread (engine.cc); the engine throws only when memory runs out, and wasm_api.cc
    // turns that throw into a trap, so no exception-handling runtime is linked.
    '-DREPTILE_SINGLE_THREAD',
    '-isystem',
    tc.cxxHeaders,
    ...tc.libDirs.map((d) => `-L${d}`),
    '-Wno-unused-command-line-argument',
    '-Wl,-z,stack-size=1048576',
    process.env.REPTILE_WASM_KEEP_NAMES ? '-Wl,--strip-debug' : '-Wl,--strip-all',
    '-Wl,--gc-sections',
    ...sources,
    '-o',
    tmp,
  ];
  const run = spawnSync(tc.cxx, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (run.error) return `${tc.cxx} could not start (${run.error.message})`;
  if (run.status !== 0) {
    const line = `${run.stderr}`.split('\n').find((l) => /error/.test(l)) ?? `${tc.cxx} exited with ${run.status}`;
    return `the build failed: ${line.trim()}`;
  }
  renameSync(tmp, out);
  console.log(`reptile-ml: WebAssembly engine built (${path.relative(process.cwd(), out)}, ${Math.round(statSync(out).size / 1024)} KiB, ${tc.cxx})`);
  return undefined;
}

mkdirSync(outDir, { recursive: true });
// The module every runtime with SIMD128 runs (clang 14 on).
const plain = toolchain(process.env.REPTILE_WASM_CXX ? [process.env.REPTILE_WASM_CXX] : ['clang++-19', 'clang++-18', 'clang++-17', 'clang++-16', 'clang++-15', 'clang++-14', 'clang++']);
if (plain.problem) skip(plain.problem);
const failed = build(plain, ['-msimd128'], out);
if (failed) skip(failed);
// The module with relaxed SIMD's fused multiply-add, loaded where the runtime validates it
// (Chromium 114 on; Node 20 behind a V8 flag the loader sets). It needs clang 16 or later, for
// the instructions' final encodings; without one the plain module serves alone.
const relaxed = toolchain(process.env.REPTILE_WASM_RELAXED_CXX ? [process.env.REPTILE_WASM_RELAXED_CXX] : ['clang++-19', 'clang++-18', 'clang++-17', 'clang++-16']);
const relaxedFailed = relaxed.problem ?? build(relaxed, ['-msimd128', '-mrelaxed-simd', ...(process.env.REPTILE_WASM_FLAGS ?? '').split(' ').filter(Boolean)], outRelaxed);
if (relaxedFailed) {
  const line = `reptile-ml: WebAssembly engine with relaxed SIMD not built (${relaxedFailed}); install clang 16 or later (Debian's clang-19, lld-19, libc++-19-dev-wasm32, libclang-rt-19-dev-wasm32) to build it`;
  if (required) {
    console.error(line);
    process.exit(1);
  }
  console.log(line);
}
