/**
 * The errors the library throws on purpose, one small hierarchy under {@link ReptileError}, so that
 * a caller can tell a mistake in its input (a {@link UsageError}, exit code 2) from a failure at run
 * time (exit code 1) and from a bug (anything that is not a `ReptileError`). Every message is one
 * line that names the problem and says what to do. Library messages speak of options by their
 * option names (`learningRate`, `checkpointDir`); the command line turns those into its flags
 * (`--learning-rate`, `--checkpoint`) before printing. See docs/architecture.md, invariant 5.
 */

/**
 * The base of every error the library throws on purpose: one line that names the problem and
 * says what to do. The CLI prints `reptile: <message>` and exits with {@link ReptileError.exitCode}.
 */
export class ReptileError extends Error {
  /** The process exit code the CLI uses for this error: 2 for usage mistakes, 1 otherwise. */
  readonly exitCode: number;
  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ReptileError';
    this.exitCode = options.exitCode ?? 1;
  }
}

/**
 * A usage mistake: a bad flag, argument or combination of them (exit code 2). Nothing has been
 * written when it is thrown.
 */
export class UsageError extends ReptileError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { exitCode: 2, cause: options.cause });
    this.name = 'UsageError';
  }
}

/**
 * An option passed to a library function is out of range, of the wrong kind, or inconsistent
 * with another (exit code 2). `option` names it as the library spells it (`learningRate`), so the
 * CLI can name its flag instead.
 */
export class InvalidOptionsError extends UsageError {
  /** The option at fault, as the library names it (`metaStep`, `checkpointDir`), when there is one. */
  readonly option: string | undefined;
  constructor(message: string, options: { option?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'InvalidOptionsError';
    this.option = options.option;
  }
}

/**
 * A model the engine (or the requested learner) cannot run: an unsupported layer, activation,
 * loss or shape (exit code 2). The message says which part and what to use instead.
 */
export class UnsupportedModelError extends UsageError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'UnsupportedModelError';
  }
}

/**
 * Data that is missing, unreadable or malformed: a data folder, an archive, an image, an IDX file,
 * bytes from the network (exit code 1).
 */
export class DataError extends ReptileError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { exitCode: 1, cause: options.cause });
    this.name = 'DataError';
  }
}

/**
 * A checkpoint that is missing, corrupt, of another run or another version, or a checkpoint folder
 * that cannot be written (exit code 1). What was already written is left as it was.
 */
export class CheckpointError extends ReptileError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { exitCode: 1, cause: options.cause });
    this.name = 'CheckpointError';
  }
}

/**
 * Training diverged: a loss or parameter became NaN or infinite (exit code 1). The last checkpoint
 * written before it is intact.
 */
export class DivergenceError extends ReptileError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { exitCode: 1, cause: options.cause });
    this.name = 'DivergenceError';
  }
}
