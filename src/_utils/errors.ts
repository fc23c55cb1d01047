/**
 * An error meant for the user: one line that names the problem and says what to do.
 * The CLI prints `reptile: <message>` and exits with `exitCode`; the library throws it
 * so that callers can tell bad input from bugs.
 */
export class ReptileError extends Error {
  readonly exitCode: number;
  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ReptileError';
    this.exitCode = options.exitCode ?? 1;
  }
}

/** Bad flags or options: exit code 2, as for command-line usage errors. */
export class UsageError extends ReptileError {
  constructor(message: string) {
    super(message, { exitCode: 2 });
    this.name = 'UsageError';
  }
}
