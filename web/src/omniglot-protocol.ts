/** Messages between the Omniglot page and its meta-training worker. */

/** What the page asks the worker to do. */
export type ToWorker =
  | {
      type: 'start';
      /** The page's tfjs backend, so that both run the same kernels. */
      backend: string;
      /** Which engine runs the inner loops: the library's WebAssembly engine, or tfjs. */
      engine: 'wasm' | 'tfjs';
      /** The packed characters (`reptile serve --omniglot DIR`), read with readBinarySet. */
      set: ArrayBuffer;
      metaIters: number;
      /** Held-out accuracy every this many meta-iterations (and once before the first). */
      evalEvery: number;
      /** Held-out 1-shot tasks per evaluation (the same tasks each time). */
      evalTasks: number;
      /** Seed of the random initialisation and of the training tasks. */
      seed: number;
    }
  | { type: 'stop' };

/** What the worker reports. */
export type FromWorker =
  | { type: 'curve'; iteration: number; accuracy: number; seconds: number }
  | { type: 'progress'; iteration: number; metaIters: number; loss: number; seconds: number; trainSeconds: number }
  | { type: 'done'; iterations: number; stopped: boolean; seconds: number; trainSeconds: number }
  | { type: 'error'; message: string };
