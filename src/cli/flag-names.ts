import type { Command } from 'commander';

/**
 * Library options whose flag is not their kebab-case form. Every other option `fooBar` is the
 * flag `--foo-bar` when the command line has such a flag. A data loader's `dir` is `--data-dir`
 * (`--dir` for `reptile data`, which has that flag, and `--data` for `reptile example`).
 */
export const OPTION_FLAGS: Readonly<Record<string, string>> = {
  checkpointDir: '--checkpoint',
  logFile: '--log',
  outDir: '--out',
  dir: '--data-dir',
};

/** The few options whose flag differs in one command. */
export const COMMAND_OPTION_FLAGS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  example: { dir: '--data' },
  eval: { innerIters: '--eval-iters', innerBatch: '--eval-batch' },
};

/** `learningRate` → `learning-rate`. */
export function kebabCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Every long flag of `program` and its sub-commands, e.g. `--learning-rate`. */
export function longFlags(program: Command): Set<string> {
  const flags = new Set<string>();
  const visit = (c: Command) => {
    for (const o of c.options) if (o.long !== undefined) flags.add(o.long);
    c.commands.forEach(visit);
  };
  visit(program);
  return flags;
}

/**
 * A library message as the command line prints it: the library names options in backticks
 * (`` `learningRate` must be > 0``), and each one that is a flag here becomes that flag
 * (`--learning-rate must be > 0`): the command's own flags first (`dir` is `--dir` for
 * `reptile data`), then the table of the few that differ, then the kebab-case form. A backticked
 * word that names no flag stays as it is.
 */
export function withFlagNames(message: string, program: Command, commandName?: string): string {
  const all = longFlags(program);
  const own = new Set(program.commands.find((c) => c.name() === commandName)?.options.map((o) => o.long).filter((f): f is string => f !== undefined) ?? []);
  return message.replace(/`([A-Za-z][A-Za-z0-9]*)`/g, (whole, name: string) => {
    const kebab = `--${kebabCase(name)}`;
    if (own.has(kebab)) return kebab;
    const special = commandName === undefined ? undefined : COMMAND_OPTION_FLAGS[commandName]?.[name];
    if (special !== undefined && own.has(special)) return special;
    const aliased = OPTION_FLAGS[name];
    if (aliased !== undefined && all.has(aliased)) return aliased;
    return all.has(kebab) ? kebab : whole;
  });
}
