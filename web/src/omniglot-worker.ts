// Meta-trains the paper's Omniglot network from a random initialisation with the library's own
// Reptile loop, off the page's main thread, on the library's WebAssembly engine (or tfjs), and
// reports the 1-shot 5-way accuracy on held-out characters as it goes.
import { FewShotTaskSource, TfjsLearner, WasmLearner, createOmniglotModel, evaluate, metaTrain, readBinarySet, withRotations, type InnerOptions, type MetaCallbacks } from 'reptile-ml';
import { serveWorkerRuns } from './common.js';
import type { FromWorker, ToWorker } from './omniglot-protocol.js';

// The held-out tasks come from their own seed, never from the training stream.
const HELD_OUT_SEED = 1_000_000;
// The paper's Omniglot 5-way setting (Table 1): Adam at 0.001 with β1 = 0; 5 steps on batches of
// 10 from 10 shots per class; 5 tasks per meta-iteration, ε annealed from 1 to 0; a test task
// adapts for 50 steps on batches of 5 and classifies its 5 queries together (transductive), the
// minibatch loss summed over examples as the authors' code does (the mean × the training batch).
const TRAIN = { metaBatch: 5, innerIters: 5, innerBatch: 10, learningRate: 0.001, optimizer: 'adam', beta1: 0, metaStep: 1, metaStepFinal: 0 } as const;
const EVAL: InnerOptions = { optimizer: 'adam', learningRate: 0.001, beta1: 0, beta2: 0.999, innerIters: 50, innerBatch: 5, lossDivisor: TRAIN.innerBatch };

const scope = self as unknown as { postMessage(message: FromWorker): void; onmessage: ((e: MessageEvent<ToWorker>) => void) | null };
serveWorkerRuns(scope, run);

async function run(options: Extract<ToWorker, { type: 'start' }>, signal: AbortSignal): Promise<void> {
  const set = readBinarySet(new Uint8Array(options.set));
  const began = performance.now();
  let evalMs = 0;
  // Each training character also appears turned by 90°, 180° and 270°, as its own class.
  const source = new FewShotTaskSource({ dataset: withRotations(set.train), classes: 5, shots: 1, trainShots: 10 });
  const heldOutSource = new FewShotTaskSource({ dataset: set.test, classes: 5, shots: 1 });
  const model = createOmniglotModel({ classes: 5, seed: options.seed, init: 'glorot' });
  const learner = options.engine === 'wasm' ? new WasmLearner({ model }) : new TfjsLearner({ model });
  const heldOut = async (iteration: number): Promise<void> => {
    const t = performance.now();
    const r = await evaluate({ learner, source: heldOutSource, samples: options.evalTasks, seed: HELD_OUT_SEED, transductive: true, inner: EVAL });
    evalMs += performance.now() - t;
    scope.postMessage({ type: 'curve', iteration, accuracy: r.mean, seconds: (performance.now() - began) / 1000 });
  };
  const trainSeconds = () => (performance.now() - began - evalMs) / 1000;
  const report: MetaCallbacks = {
    onMetaIterEnd: async (i, logs) => {
      const done = i + 1;
      scope.postMessage({ type: 'progress', iteration: done, metaIters: options.metaIters, loss: logs.loss, seconds: (performance.now() - began) / 1000, trainSeconds: trainSeconds() });
      // Each meta-iteration resolves without a macrotask; yield so a 'stop' message gets in.
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (done % options.evalEvery === 0 || done === options.metaIters) await heldOut(done);
    },
  };
  try {
    await heldOut(0);
    const result = await metaTrain({ learner, source, signal, callbacks: report, config: { ...TRAIN, metaIters: options.metaIters, seed: options.seed } });
    scope.postMessage({ type: 'done', iterations: result.iterations, stopped: result.stopped, seconds: (performance.now() - began) / 1000, trainSeconds: trainSeconds() });
  } finally {
    learner.dispose();
    model.dispose();
  }
}
