/** Prints a result as JSON (with `--json`) or as human-readable lines. */
export function printResult(json: boolean, value: unknown, lines: () => string[]): void {
  if (json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else process.stdout.write(`${lines().join('\n')}\n`);
}

/**
 * An AbortSignal raised by the first Ctrl-C, so that training finishes its meta-iteration and
 * writes its checkpoint; a second Ctrl-C exits at once.
 */
export function interruptSignal(): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\nstopping after this meta-iteration (Ctrl-C again to quit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, release: () => process.off('SIGINT', onSigint) };
}

/** A logger for details only `--verbose` asks for (which backend and engine run), else none. */
export function verboseLog(verbose: boolean | undefined): ((line: string) => void) | undefined {
  return verbose === true ? (line: string) => void process.stderr.write(`${line}\n`) : undefined;
}
