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
  rp_moving(engine: number, op: number, which: number): number;
  rp_adapt(...args: number[]): number;
  rp_fit(...args: number[]): number;
  rp_predict(engine: number, x: number, n: number, batchStats: number, out: number): void;
  rp_gradients(...args: number[]): number;
}

/** Whether the WebAssembly engine is ready, and if not, why (one line). */
export type WasmStatus = { ok: true; exports: WasmExports } | { ok: false; reason: string };

/** What `loadWasmEngine` accepts: the module's bytes, a compiled module, a response, or where to fetch it. */
export type WasmSource = BufferSource | WebAssembly.Module | Response | URL | string;

let status: WasmStatus | undefined;

/** Where the package keeps the module, next to dist/ (and next to src/ in a checkout). */
export const WASM_URL = new URL('../../native/wasm/reptile.wasm', import.meta.url);

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

/** The environment variable switch, where there is a process (Node). */
function switchedOff(): boolean {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.['REPTILE_WASM']?.toLowerCase();
  return v === 'off' || v === '0' || v === 'false';
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
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = read(WASM_URL);
  } catch {
    return (status = { ok: false, reason: 'the module was not built (npm run build:wasm needs clang with wasm32-wasi support)' });
  }
  status = fromBytes(bytes);
  return status;
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
    source = WASM_URL;
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
