import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { ReptileError } from '../../_utils/errors.js';
import { serveStatic } from '../../_utils/static-server.js';
import { intAtLeast, LIMITS } from '../parse.js';

interface ServeFlags {
  port: number;
  host: string;
  dir?: string;
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
    .action(async (flags: ServeFlags) => {
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
      const server = await serveStatic({ root, port: flags.port, host: flags.host });
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
