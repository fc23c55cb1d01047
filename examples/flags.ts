/**
 * The command-line flags of the example scripts, and how they end on an error: `--name value` options with defaults, and
 * positional arguments. A mistake (an unknown flag, a missing value, a count that is not a
 * positive integer) ends the script with one line naming the flag, and exit code 2.
 */
import { parseArgs } from 'node:util';
import { ReptileError } from '../src/index.js';

/** The parsed flags of a script. */
export interface Flags {
  /** A flag's value (its default when not given). */
  text(name: string): string;
  /** A flag's value as a positive integer. */
  count(name: string): number;
  /** A flag's value, or undefined when it was not given and has no default (''). */
  optional(name: string): string | undefined;
  /** Whether a switch (a flag without a value, named in `switches`) was given. */
  on(name: string): boolean;
  /** The arguments that are not flags, in order. */
  positionals: string[];
}

function usage(line: string): never {
  console.error(line);
  process.exit(2);
}

/**
 * Reads `process.argv` against `defaults`, the script's flags (without `--`) and their defaults
 * ('' for none), and `switches`, its flags without a value.
 */
export function readFlags(defaults: Record<string, string>, switches: readonly string[] = []): Flags {
  let parsed;
  try {
    const options = {
      ...Object.fromEntries(Object.keys(defaults).map((name) => [name, { type: 'string' as const }])),
      ...Object.fromEntries(switches.map((name) => [name, { type: 'boolean' as const }])),
    };
    parsed = parseArgs({ options, allowPositionals: true, strict: true });
  } catch (e) {
    usage((e as Error).message.split('\n')[0]!.replace(/\. To specify .*$/, ''));
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const text = (name: string): string => (values[name] as string | undefined) ?? defaults[name]!;
  return {
    text,
    count(name) {
      const value = Number(text(name));
      if (!Number.isInteger(value) || value < 1) usage(`--${name} must be a positive integer, got '${text(name)}'`);
      return value;
    },
    optional: (name) => (text(name) === '' ? undefined : text(name)),
    on: (name) => values[name] === true,
    positionals: parsed.positionals,
  };
}

/** Runs a script's `main`; a library error (bad input, data, a checkpoint) ends it with its one line and exit code. */
export async function runScript(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (error) {
    if (!(error instanceof ReptileError)) throw error;
    console.error(error.message);
    process.exitCode = error.exitCode;
  }
}
