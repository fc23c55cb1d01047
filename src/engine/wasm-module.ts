// Loads the WebAssembly build of the engine (native/wasm/reptile.wasm, built by
// native/build-wasm.mjs) in a page, a worker or Node, without importing a Node built-in: Node's
// file system is reached through process.getBuiltinModule where it exists.

/** The module's exports (native/src/wasm_api.cc). Pointers are byte offsets into `memory`. */
export interface WasmExports {
  memory: WebAssembly.Memory;
  _initialize(): void;
  rp_alloc(bytes: number): number;
  rp_free(ptr: number): void;
  rp_last_error(): number;
  rp_create(plan: number, planLength: number, frozen: number, frozenLength: number): number;
  rp_release(engine: number): void;
  rp_isa(engine: number): number;
  rp_params(engine: number): number;
  rp_reptile_update(engine: number, adapted: number, n: number, epsilon: number): number;
  rp_next_value(engine: number, index: number): number;
  rp_set_optimizer(engine: number, kind: number, step: number): void;
  rp_opt_kind(engine: number): number;
  rp_opt_step(engine: number): number;
  rp_opt_m(engine: number): number;
  rp_opt_v(engine: number): number;
  rp_opt_m_to_write(engine: number): number;
  rp_opt_v_to_write(engine: number): number;
  rp_moving(engine: number, op: number, which: number): number;
  rp_adapt(...args: number[]): number;
  rp_fit(...args: number[]): number;
  rp_predict(engine: number, x: number, n: number, batchStats: number, out: number): void;
  rp_gradients(...args: number[]): number;
}

/** Whether the WebAssembly engine is ready, and if not, why (one line). */
export type WasmStatus = { ok: true; exports: WasmExports } | { ok: false; reason: string };

/**
 * What `loadWasmEngine` accepts: the module's bytes, a compiled module, a response, or where to
 * fetch it; or both builds, `{ simd128, relaxedSimd128 }`, of which the relaxed-SIMD one is taken
 * where the runtime has relaxed SIMD.
 */
export type WasmSource = BufferSource | WebAssembly.Module | Response | URL | string | WasmBuilds;

/** The two builds of the engine: SIMD128 (every runtime), and with relaxed SIMD's fused multiply-add. */
export interface WasmBuilds {
  simd128: Exclude<WasmSource, WasmBuilds>;
  relaxedSimd128?: Exclude<WasmSource, WasmBuilds>;
}

let status: WasmStatus | undefined;

/** Where the package keeps the module, next to dist/ (and next to src/ in a checkout). */
export const WASM_URL = new URL('../../native/wasm/reptile.wasm', import.meta.url);
/** The build with relaxed SIMD (f32x4.relaxed_madd), beside it. */
export const WASM_RELAXED_URL = new URL('../../native/wasm/reptile-relaxed.wasm', import.meta.url);

/**
 * A module of one function that returns f32x4.relaxed_madd of three zero vectors: it validates
 * where the runtime has relaxed SIMD (Chromium 114 on; Node 20 behind a V8 flag).
 */
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type: () -> v128
  0x03, 0x02, 0x01, 0x00, // function 0 of type 0
  0x0a, 0x3d, 0x01, 0x3b, 0x00, // code: one body of 59 bytes, no locals
  ...[0, 1, 2].flatMap(() => [0xfd, 0x0c, ...new Array<number>(16).fill(0)]), // v128.const 0, three times
  0xfd, 0x85, 0x02, // f32x4.relaxed_madd
  0x0b, // end
]);

let relaxed: boolean | undefined;

/**
 * Whether this runtime runs relaxed SIMD. Node 20 has it behind V8's
 * `--experimental-wasm-relaxed-simd`, which is turned on here (it changes nothing else).
 * `REPTILE_WASM_RELAXED=off` keeps to the SIMD128 build.
 */
export function relaxedSimdSupported(): boolean {
  if (relaxed !== undefined) return relaxed;
  if (typeof WebAssembly === 'undefined' || envOff('REPTILE_WASM_RELAXED')) return (relaxed = false);
  relaxed = WebAssembly.validate(RELAXED_PROBE);
  if (!relaxed) {
    const proc = (globalThis as { process?: { getBuiltinModule?: (name: string) => unknown } }).process;
    const v8 = proc?.getBuiltinModule?.('v8') as { setFlagsFromString?: (flags: string) => void } | undefined;
    try {
      v8?.setFlagsFromString?.('--experimental-wasm-relaxed-simd');
      relaxed = WebAssembly.validate(RELAXED_PROBE);
    } catch {
      relaxed = false;
    }
  }
  return relaxed;
}

// The module imports nothing today; these stand in for the few WASI calls a libc may make.
const wasi = {
  fd_write: () => 52,
  fd_close: () => 52,
  fd_seek: () => 52,
  proc_exit: (code: number) => {
    throw new Error(`the WebAssembly engine exited with code ${code}`);
  },
};

function instantiate(module: WebAssembly.Module): WasmStatus {
  const instance = new WebAssembly.Instance(module, { wasi_snapshot_preview1: wasi });
  const exports = instance.exports as unknown as WasmExports;
  if (typeof exports.rp_create !== 'function') return { ok: false, reason: 'the module is not the reptile-ml engine' };
  exports._initialize();
  return { ok: true, exports };
}

/** Whether an environment variable (where there is a process: Node) switches something off. */
function envOff(name: string): boolean {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name]?.toLowerCase();
  return v === 'off' || v === '0' || v === 'false';
}

/** The environment variable switch of the whole engine. */
function switchedOff(): boolean {
  return envOff('REPTILE_WASM');
}

type ReadFileSync = (path: URL) => Uint8Array<ArrayBuffer>;

/** Node's readFileSync, without importing a Node built-in (absent in a page). */
function nodeReadFile(): ReadFileSync | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (name: string) => unknown } }).process;
  const fs = proc?.getBuiltinModule?.('fs') as { readFileSync?: ReadFileSync } | undefined;
  return fs?.readFileSync;
}

function fromBytes(bytes: BufferSource): WasmStatus {
  try {
    return instantiate(new WebAssembly.Module(bytes));
  } catch (e) {
    return { ok: false, reason: `the module failed to load (${String((e as Error).message).split('\n')[0]})` };
  }
}

/**
 * The WebAssembly engine's state: loaded (by `loadWasmEngine`, or here in Node, where the module
 * is read from the package synchronously), or why not. `REPTILE_WASM=off` simulates a missing module.
 */
export function wasmEngineStatus(): WasmStatus {
  if (status) return status;
  if (switchedOff()) return { ok: false, reason: 'it is switched off by REPTILE_WASM=off' };
  if (typeof WebAssembly === 'undefined') return { ok: false, reason: 'this runtime has no WebAssembly' };
  const read = WASM_URL.protocol === 'file:' ? nodeReadFile() : undefined;
  if (!read) return { ok: false, reason: 'the module is not loaded yet: await loadWasmEngine() first' };
  if (relaxedSimdSupported()) {
    try {
      const loaded = fromBytes(read(WASM_RELAXED_URL));
      if (loaded.ok) return (status = loaded);
    } catch {
      // Not built (an older clang): the SIMD128 build serves.
    }
  }
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = read(WASM_URL);
  } catch {
    return (status = { ok: false, reason: 'the module was not built (npm run build:wasm needs clang with wasm32-wasi support)' });
  }
  status = fromBytes(bytes);
  return status;
}

function isBuilds(source: WasmSource): source is WasmBuilds {
  return typeof source === 'object' && source !== null && 'simd128' in source;
}

/**
 * Loads the WebAssembly engine once, from `source` (default: the module shipped in the package,
 * fetched next to the library's code, or read from disk in Node), and says whether it is ready.
 * Never throws: a failure is a status with its reason, so that callers can fall back to tfjs.
 */
export async function loadWasmEngine(source?: WasmSource): Promise<WasmStatus> {
  if (status?.ok) return status;
  if (source === undefined) {
    const sync = wasmEngineStatus();
    if (sync.ok || WASM_URL.protocol === 'file:' || switchedOff()) return sync;
    source = { simd128: WASM_URL, relaxedSimd128: WASM_RELAXED_URL };
  }
  if (isBuilds(source)) {
    if (source.relaxedSimd128 !== undefined && relaxedSimdSupported()) {
      const loaded = await loadWasmEngine(source.relaxedSimd128);
      if (loaded.ok) return loaded;
      status = undefined;
    }
    return loadWasmEngine(source.simd128);
  }
  try {
    let module: WebAssembly.Module;
    if (source instanceof WebAssembly.Module) module = source;
    else if (ArrayBuffer.isView(source) || source instanceof ArrayBuffer) module = await WebAssembly.compile(source);
    else {
      const response = typeof source === 'string' || source instanceof URL ? await fetch(source) : source;
      if (!response.ok) return { ok: false, reason: `fetching the module gave HTTP ${response.status} (${response.url})` };
      module = await WebAssembly.compile(await response.arrayBuffer());
    }
    status = instantiate(module);
  } catch (e) {
    status = { ok: false, reason: `the module failed to load (${String((e as Error).message).split('\n')[0]})` };
  }
  return status;
}
