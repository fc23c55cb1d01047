/** Messages between the sine page and its meta-training worker. */

/** What the page asks the worker to do. */
export type ToWorker =
  | {
      type: 'start';
      /** The page's tfjs backend, so that both run the same kernels. */
      backend: string;
      /** Which engine runs the inner loops: the library's WebAssembly engine, or tfjs. */
      engine: 'wasm' | 'tfjs';
      metaIters: number;
      /** Seed of the random initialisation the run starts from (the page's random panel). */
      initSeed: number;
      /** Seed of the training tasks. */
      seed: number;
      /** Held-out evaluations along the run (plus one before it). */
      curvePoints: number;
      /** Held-out tasks per evaluation. */
      evalTasks: number;
      train: { learningRate: number; innerIters: number; innerBatch: number; metaStep: number; metaStepFinal: number };
      adapt: { learningRate: number; innerIters: number; shots: number };
    }
  | { type: 'stop' };

/** What the worker reports. */
export type FromWorker =
  | { type: 'curve'; iteration: number; mse: number }
  | { type: 'progress'; iteration: number; metaIters: number; loss: number; seconds: number }
  | { type: 'done'; iterations: number; stopped: boolean; seconds: number; params: Float32Array }
  | { type: 'error'; message: string };
