import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { loadWasmEngine } from 'reptile-ml';
// The library's engine compiled to WebAssembly (npm run build:wasm), emitted beside the page:
// the SIMD128 build, and the build with relaxed SIMD that a browser having it loads instead.
import engineUrl from '../../native/wasm/reptile.wasm?url';
import relaxedEngineUrl from '../../native/wasm/reptile-relaxed.wasm?url';

/** Both builds of the engine, for loadWasmEngine. */
export const ENGINE_BUILDS = { simd128: engineUrl, relaxedSimd128: relaxedEngineUrl };

/** Which engine runs the demos' inner loops: the library's WebAssembly engine, or tfjs. */
export type DemoEngine = 'wasm' | 'tfjs';

/**
 * Loads the library's WebAssembly engine from this page's own files, unless `?engine=tfjs` asks
 * for TensorFlow.js; says which engine the page runs and, when it falls back to tfjs, why.
 */
export async function selectDemoEngine(asked: string | null = new URLSearchParams(self.location.search).get('engine')): Promise<{ engine: DemoEngine; note: string }> {
  if (asked === 'tfjs') return { engine: 'tfjs', note: 'tfjs (asked by ?engine=tfjs)' };
  const status = await loadWasmEngine(ENGINE_BUILDS);
  if (status.ok) return { engine: 'wasm', note: 'the WebAssembly engine' };
  return { engine: 'tfjs', note: `tfjs, because the WebAssembly engine is unavailable: ${status.reason}` };
}

/** The backend names `?backend=` may ask for. */
export type DemoBackend = 'wasm' | 'cpu';

/**
 * Selects the demos' tfjs backend: wasm (served from this page's own files, no CDN), else the
 * pure-JS cpu backend; `?backend=cpu` forces the latter. The networks are small (a 1-64-64-1 MLP
 * on a few dozen points), where a GPU backend's per-kernel overhead costs more than it saves and
 * wasm's matrix kernels are several times faster than the cpu backend's.
 */
export async function selectDemoBackend(asked: string | null = new URLSearchParams(self.location.search).get('backend')): Promise<string> {
  if (asked !== 'cpu') {
    setWasmPaths({ 'tfjs-backend-wasm.wasm': wasmPlain, 'tfjs-backend-wasm-simd.wasm': wasmSimd, 'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded });
    // A cross-origin-isolated page (reptile serve makes it one) would get tfjs's threaded build,
    // whose workers did not start in this page's build: one thread, as before.
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    try {
      if (await tf.setBackend('wasm')) {
        await tf.ready();
        return tf.getBackend();
      }
    } catch {
      // fall through to the cpu backend, which always loads
    }
  }
  await tf.setBackend('cpu');
  await tf.ready();
  return tf.getBackend();
}

/**
 * Loads a TF.js LayersModel, turning every failure (missing file, not a model, bad weights) into
 * one sentence that says where it looked and how to make the file.
 */
export async function loadModel(url: string, makeWith: string): Promise<tf.LayersModel> {
  try {
    return await tf.loadLayersModel(url);
  } catch (e) {
    const why = (e as Error).message.split('\n')[0] ?? String(e);
    throw new Error(`could not load the model at ${url} (${why}); make it with: ${makeWith}`, { cause: e });
  }
}

/** Reads a JSON file next to a model, with the same kind of message as `loadModel`. */
export async function loadJson<T>(url: string, makeWith: string): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`could not fetch ${url} (${(e as Error).message}); make it with: ${makeWith}`, { cause: e });
  }
  if (!response.ok) throw new Error(`could not load ${url} (HTTP ${response.status}); make it with: ${makeWith}`);
  return (await response.json()) as T;
}

const channel = typeof MessageChannel === 'undefined' ? undefined : new MessageChannel();
const waiting: (() => void)[] = [];
if (channel) channel.port1.onmessage = () => waiting.shift()?.();

/**
 * Lets the browser handle input and paint between two steps of work on the main thread. A
 * message-channel task, not setTimeout, whose nested calls are clamped to 4 ms each.
 */
export function yieldToBrowser(): Promise<void> {
  if (!channel) return new Promise((resolve) => setTimeout(resolve, 0));
  return new Promise((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(null);
  });
}

/**
 * A meta-training worker's message loop: 'start' runs `run` (one run at a time) with a signal that
 * 'stop' aborts; a failure is posted as { type: 'error', message }. Before the run, the worker
 * selects the page's tfjs backend and, for the WebAssembly engine, loads the module.
 */
export function serveWorkerRuns<S extends { type: 'start'; backend: string; engine: DemoEngine }>(
  scope: { postMessage(message: { type: 'error'; message: string }): void; onmessage: ((e: MessageEvent<S | { type: 'stop' }>) => void) | null },
  run: (start: S, signal: AbortSignal) => Promise<void>,
): void {
  let controller: AbortController | undefined;
  scope.onmessage = (event) => {
    const message = event.data;
    if (message.type === 'stop') controller?.abort();
    else if (message.type === 'start' && controller === undefined) {
      controller = new AbortController();
      const signal = controller.signal;
      (async () => {
        await selectDemoBackend(message.backend);
        if (message.engine === 'wasm') {
          const status = await loadWasmEngine(ENGINE_BUILDS);
          if (!status.ok) throw new Error(`the WebAssembly engine did not load in the worker: ${status.reason}`);
        }
        await run(message, signal);
      })()
        .catch((e: unknown) => scope.postMessage({ type: 'error', message: (e as Error).message ?? String(e) }))
        .finally(() => (controller = undefined));
    }
  };
}
