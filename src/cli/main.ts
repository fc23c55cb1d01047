#!/usr/bin/env -S node --initial-old-space-size=512
import { Command, CommanderError } from 'commander';
import { ReptileError } from '../_utils/errors.js';
import { withFlagNames } from './flag-names.js';
import { demoCommand } from './commands/demo.js';
import { trainCommand } from './commands/train.js';
import { exampleCommand } from './commands/example.js';
import { serveCommand } from './commands/serve.js';
import { evalCommand } from './commands/eval.js';
import { exportCommand } from './commands/export.js';
import { dataCommand } from './commands/data.js';
import { reproduceCommand } from './commands/reproduce.js';
import { workerCommand } from './commands/worker.js';
import { statusCommand } from './commands/status.js';

/**
 * The `reptile` command. Every failure the user can cause ends in one line on stderr that names
 * the problem and the fix, and a non-zero exit code (2 for usage errors).
 */
export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('reptile')
    .description('Reptile meta-learning (Nichol, Achiam & Schulman 2018): train, evaluate, demo')
    .showSuggestionAfterError(false);
  for (const cmd of [trainCommand(), demoCommand(), evalCommand(), exportCommand(), dataCommand(), reproduceCommand(), workerCommand(), statusCommand()]) program.addCommand(cmd);
  program.addCommand(exampleCommand());
  program.addCommand(serveCommand());
  const silence = (c: Command) => {
    c.exitOverride().configureOutput({ writeErr: () => {}, outputError: () => {} });
    c.commands.forEach(silence);
  };
  silence(program);
  const known = (name: string | undefined) => program.commands.some((c) => c.name() === name);
  if (argv.length === 0) {
    // No command: the help, on stderr since it answers a mistake, and the usage exit code.
    process.stderr.write(`${program.helpInformation()}\nreptile: no command given: name one of the commands above, e.g. 'reptile demo sine'\n`);
    return 2;
  }
  if (argv[0] === 'help' && argv.length > 1 && (!known(argv[1]) || argv.length > 2)) {
    const what = known(argv[1]) ? `'reptile help' takes one command name, not '${argv.slice(1).join(' ')}'` : `unknown command '${argv[1]}'`;
    process.stderr.write(`reptile: ${what}: see 'reptile --help'\n`);
    return 2;
  }
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      const sub = argv.find((a) => !a.startsWith('-'));
      const help = sub && program.commands.some((c) => c.name() === sub) ? `reptile ${sub} --help` : 'reptile --help';
      process.stderr.write(`reptile: ${describeCommanderError(e.message)}: see '${help}'\n`);
      return 2;
    }
    if (e instanceof ReptileError) {
      // The library names its options (`learningRate`); here they are flags (--learning-rate).
      const sub = argv.find((a) => !a.startsWith('-'));
      process.stderr.write(`reptile: ${withFlagNames(e.message, program, sub)}\n`);
      return e.exitCode;
    }
    throw e;
  }
}

// Commander's wording, reshaped to lead with the flag: "--meta-iters '-5' is invalid (expected ...)".
function describeCommanderError(message: string): string {
  const text = message.replace(/^error: /, '').replace(/\n.*/s, '');
  const invalid = /^option '(-[^\s,']+)[^']*' argument '(.*)' is invalid\. (.*?)\.?$/s.exec(text);
  if (invalid) return `${invalid[1]} '${invalid[2]}' is invalid (${invalid[3]!.replace(/^Allowed choices are/, 'expected one of')})`;
  const missing = /^option '(-[^\s,']+)[^']*' argument missing$/.exec(text);
  if (missing) return `${missing[1]} needs a value`;
  const choice = /^command-argument value '(.*)' is invalid for argument '(.*)'\. Allowed choices are (.*?)\.?$/s.exec(text);
  if (choice) return `unknown ${choice[2]} '${choice[1]}' (expected one of ${choice[3]})`;
  return text.replace(/\.$/, '');
}

const code = await main(process.argv.slice(2));
process.exit(code);
