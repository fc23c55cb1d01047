import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { ReptileError, UsageError } from '../../_utils/errors.js';
import { serveStatic } from '../../_utils/static-server.js';
import { Rng } from '../../core/rng.js';
import { packBinarySet } from '../../tasks/binary-set.js';
import { loadOmniglot } from '../../data/omniglot.js';
import { intAtLeast, LIMITS } from '../parse.js';

interface ServeFlags {
  port: number;
  host: string;
  dir?: string;
  omniglot?: string;
  omniglotCharacters: number;
}

/** The path the Omniglot page fetches its characters from. */
export const OMNIGLOT_SET_PATH = 'omniglot-set.bin';

/**
 * The Omniglot page's characters, packed from the archives in `dir`: `characters` of them drawn
 * by a fixed seed, three quarters for meta-training and the rest held out, all 20 drawings each.
 */
export function omniglotPageSet(dir: string, characters: number, log: (line: string) => void): Uint8Array {
  const { dataset } = loadOmniglot({ dir, log });
  if (characters > dataset.numClasses) throw new ReptileError(`--omniglot-characters ${characters} is more than the ${dataset.numClasses} characters in '${dir}': ask for ${dataset.numClasses} or fewer`);
  const chosen = Rng.derive(20_180_307, 0x0e6).sample(dataset.numClasses, characters);
  const train = Math.round(characters * 0.75);
  return packBinarySet(dataset, chosen.slice(0, train), chosen.slice(train));
}

/** The built web demos, web/dist in the package (dist/cli/commands/ → ../../../web/dist). */
export const WEB_DIST = fileURLToPath(new URL('../../../web/dist/', import.meta.url));

/** `reptile serve`: the web demos, served as static files on localhost. */
export function serveCommand(): Command {
  return new Command('serve')
    .description('serve the web demos (web/dist, built by npm run web:build) on localhost')
    .option('--port <n>', 'port to listen on (0 picks a free one)', intAtLeast(0, LIMITS.port), 4173)
    .option('--host <name>', 'address to listen on', '127.0.0.1')
    .option('--dir <dir>', 'directory to serve instead of the built demos')
    .option('--omniglot <dir>', `Omniglot archives (reptile data omniglot --download --dir DIR) to pack a few hundred characters from, for the Omniglot page (served as ${OMNIGLOT_SET_PATH})`)
    .option('--omniglot-characters <n>', 'characters packed for the Omniglot page, three quarters for meta-training, the rest held out', intAtLeast(8, LIMITS.omniglotCharacters), 400)
    .action(async (flags: ServeFlags, command: Command) => {
      if (flags.omniglot === undefined && command.getOptionValueSource('omniglotCharacters') === 'cli') {
        throw new UsageError('--omniglot-characters is read only with --omniglot: add --omniglot DIR, or drop --omniglot-characters');
      }
      const root = flags.dir ?? WEB_DIST;
      if (flags.dir !== undefined && !fs.existsSync(flags.dir)) throw new ReptileError(`--dir '${flags.dir}' does not exist: point --dir at a built demo folder (one with index.html)`);
      if (flags.dir !== undefined && !fs.statSync(flags.dir).isDirectory()) throw new ReptileError(`--dir '${flags.dir}' is a file, not a folder: point --dir at a built demo folder (one with index.html)`);
      if (!fs.existsSync(`${root}/index.html`)) {
        throw new ReptileError(
          flags.dir === undefined
            ? `the web demos are not built (no ${root}index.html): run npm run web:build first`
            : `'${root}' has no index.html: point --dir at a built demo directory`,
        );
      }
      const log = (line: string) => void process.stderr.write(`${line}\n`);
      const files = flags.omniglot === undefined ? undefined : { [OMNIGLOT_SET_PATH]: omniglotPageSet(flags.omniglot, flags.omniglotCharacters, log) };
      if (files !== undefined) log(`packed ${flags.omniglotCharacters} Omniglot characters for the Omniglot page (${(files[OMNIGLOT_SET_PATH]!.length / 1e6).toFixed(2)} MB)`);
      const server = await serveStatic({ root, port: flags.port, host: flags.host, ...(files !== undefined ? { files } : {}) });
      process.stdout.write(`serving ${root} at ${server.url} (Ctrl-C to stop)\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void server.close().then(resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
