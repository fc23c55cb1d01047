import * as fs from 'node:fs';
import { checkOptionsObject, describeValue } from '../_utils/checks.js';
import { InvalidOptionsError, ReptileError } from '../_utils/errors.js';
import { checkpointPath, ensureWritableDir, hasCheckpoint, readCheckpoint, writeCheckpoint } from './checkpoint.js';
import { runMetaLoop, type Checkpoint, type MetaLoopOptions, type MetaTrainResult, type MetaTrainStore } from './meta-loop.js';

export type { MetaCallbacks, MetaIterLogs, MetaTrainResult, MetaTrainStore } from './meta-loop.js';

/** Options of `metaTrain`: the universal loop's, plus a checkpoint directory and a log file on disk. */
export interface MetaTrainOptions extends MetaLoopOptions {
  /** Directory for the checkpoint; a checkpoint already there is resumed. */
  checkpointDir?: string;
  /** Append one JSON line per meta-iteration to this file. */
  logFile?: string;
}

/**
 * Meta-trains the learner's parameters φ with Reptile (paper, Algorithm 2) or first-order MAML:
 * each meta-iteration samples `metaBatch` tasks (task t of iteration i is a pure function of
 * (seed, i, t)), adapts to each from φ with the inner optimizer, and moves φ by ε toward the mean
 * of the adapted weights (or by ε along the mean last-step difference under `foml`). ε is annealed
 * linearly from `metaStep` to `metaStepFinal`. With `checkpointDir` the run is resumable bit for
 * bit: the checkpoint holds φ, the inner optimizer's state, the iteration and the configuration.
 */
export async function metaTrain(options: MetaTrainOptions): Promise<MetaTrainResult> {
  checkOptionsObject(options, 'metaTrain', '{ learner, source, config }');
  const { checkpointDir, logFile, ...loop } = options;
  for (const [option, value] of [['checkpointDir', checkpointDir], ['logFile', logFile]] as const) {
    if (value !== undefined && (typeof value !== 'string' || value === '')) throw new InvalidOptionsError(`\`${option}\` must be a path, got ${describeValue(value)}`, { option });
  }
  if (checkpointDir === undefined && logFile === undefined) return runMetaLoop(loop);
  return runMetaLoop({ ...loop, store: loop.store ?? fileStore(checkpointDir, logFile) });
}

// The checkpoint directory and the log file as a store for the universal loop. A directory that
// cannot be written fails before the first meta-iteration, not after an hour.
function fileStore(dir: string | undefined, logFile: string | undefined): MetaTrainStore {
  return {
    label: `checkpoint in '${dir}'`,
    ...(dir !== undefined ? { location: checkpointPath(dir) } : {}),
    load: () => {
      let ckpt;
      if (dir !== undefined) {
        if (hasCheckpoint(dir)) ckpt = readCheckpoint(dir);
        else ensureWritableDir(dir);
      }
      if (logFile !== undefined) prepareLogFile(logFile);
      return ckpt;
    },
    ...(dir !== undefined ? { save: (ckpt: Checkpoint) => writeCheckpoint(dir, ckpt) } : {}),
    appendLog: (logs) => {
      if (logFile !== undefined) fs.appendFileSync(logFile, `${JSON.stringify(logs)}\n`);
    },
  };
}

// Opens the log to check it can be written, without creating it: a run refused when its
// checkpoint is loaded (another model, other settings) leaves no empty log behind.
function prepareLogFile(file: string): void {
  try {
    const existed = fs.existsSync(file);
    fs.closeSync(fs.openSync(file, existed ? 'a' : 'wx'));
    if (!existed) fs.rmSync(file);
  } catch (e) {
    // A file that cannot be written is a failure at run time (exit code 1), as for the checkpoint folder.
    throw new ReptileError(`cannot write the log file '${file}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable \`logFile\``, { cause: e });
  }
}
