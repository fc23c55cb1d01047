// Meta-trains the sine network from a random initialisation with the library's own Reptile loop,
// off the page's main thread, on the library's WebAssembly engine (or tfjs), and reports a
// held-out learning curve as it goes.
import {
  SineTaskSource,
  TfjsLearner,
  WasmLearner,
  createSineModel,
  evaluate,
  metaTrain,
  type MetaCallbacks,
} from 'reptile-ml';
import { serveWorkerRuns } from './common.js';
import type { FromWorker, ToWorker } from './sine-protocol.js';

// Held-out tasks come from their own seed, never from the training stream.
const HELD_OUT_SEED = 1_000_000;

const scope = self as unknown as { postMessage(message: FromWorker, transfer?: Transferable[]): void; onmessage: ((e: MessageEvent<ToWorker>) => void) | null };
serveWorkerRuns(scope, run);

async function run(options: Extract<ToWorker, { type: 'start' }>, signal: AbortSignal): Promise<void> {
  const began = performance.now();
  const source = new SineTaskSource({ shots: options.adapt.shots, gridPoints: 50 });
  const model = createSineModel({ seed: options.initSeed });
  const learner = options.engine === 'wasm' ? new WasmLearner({ model }) : new TfjsLearner({ model });
  const heldOut = async (iteration: number): Promise<void> => {
    const r = await evaluate({
      learner,
      source,
      samples: options.evalTasks,
      seed: HELD_OUT_SEED,
      inner: { optimizer: 'sgd', learningRate: options.adapt.learningRate, innerIters: options.adapt.innerIters, innerBatch: options.adapt.shots },
    });
    scope.postMessage({ type: 'curve', iteration, mse: r.mean });
  };
  const every = Math.max(1, Math.floor(options.metaIters / options.curvePoints));
  const report: MetaCallbacks = {
    onMetaIterEnd: async (i, logs) => {
      const done = i + 1;
      if (done % 10 === 0 || done === options.metaIters) {
        scope.postMessage({ type: 'progress', iteration: done, metaIters: options.metaIters, loss: logs.loss, seconds: (performance.now() - began) / 1000 });
        // Each meta-iteration resolves without a macrotask; yield so a 'stop' message gets in.
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      if (done % every === 0 || done === options.metaIters) await heldOut(done);
    },
  };
  try {
    await heldOut(0);
    const result = await metaTrain({
      learner,
      source,
      signal,
      callbacks: report,
      config: {
        metaIters: options.metaIters,
        metaBatch: 1,
        optimizer: 'sgd',
        seed: options.seed,
        ...options.train,
      },
    });
    const params = result.params.data.slice();
    scope.postMessage({ type: 'done', iterations: result.iterations, stopped: result.stopped, seconds: (performance.now() - began) / 1000, params }, [params.buffer]);
  } finally {
    learner.dispose();
    model.dispose();
  }
}
