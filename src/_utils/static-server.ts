import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { checkInteger } from './checks.js';
import { ReptileError } from './errors.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.bin': 'application/octet-stream',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Cross-origin isolation: a page served with these may use SharedArrayBuffer (threads in
 * WebAssembly) and precise timers; everything it loads comes from this same server.
 */
export const ISOLATION_HEADERS = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
} as const;

/** A running static server: its URL and how to stop it. */
export interface StaticServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves the files under `root` read-only over HTTP on `host:port` (port 0 picks a free one):
 * GET and HEAD only, `index.html` for a directory, nothing outside `root` (no `..`, no symlinks
 * out of it), with the cross-origin-isolation headers (`ISOLATION_HEADERS`); `files` adds files
 * made in memory, by their path from the root, served before anything on disk of the same name. Refuses to start, with one line saying why, when the port is taken or `root` is missing.
 */
export async function serveStatic(options: { root: string; port: number; host: string; files?: Readonly<Record<string, Uint8Array>> }): Promise<StaticServer> {
  // Node throws a RangeError from listen() for a port past 65535: one line instead.
  checkInteger('port', options.port, 0, 65535);
  const root = fs.realpathSync(options.root);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const made = madeFile(options.files, req.url ?? '/');
    if (made !== undefined) {
      res.writeHead(200, { 'content-type': TYPES[path.extname(made.name).toLowerCase()] ?? 'application/octet-stream', 'content-length': made.bytes.length, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff', ...ISOLATION_HEADERS });
      res.end(req.method === 'HEAD' ? undefined : made.bytes);
      return;
    }
    const file = resolveFile(root, req.url ?? '/');
    if (file === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    const size = fs.statSync(file).size;
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': size,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      ...ISOLATION_HEADERS,
    });
    if (req.method === 'HEAD') res.end();
    else fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new ReptileError(
          e.code === 'EADDRINUSE'
            ? `port ${options.port} on ${options.host} is already in use: choose another \`port\` (0 picks a free one)`
            : `cannot listen on ${options.host}:${options.port} (${e.code ?? e.message}): choose another \`port\` or \`host\``,
        ),
      ),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}/`,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// A file made in memory (`files`, keyed by its path from the root, e.g. 'omniglot-set.bin') that a request names.
function madeFile(files: Readonly<Record<string, Uint8Array>> | undefined, url: string): { name: string; bytes: Uint8Array } | undefined {
  if (files === undefined) return undefined;
  let pathname: string;
  try {
    pathname = new URL(url, 'http://localhost').pathname;
  } catch {
    return undefined;
  }
  const name = pathname.replace(/^\/+/, '');
  return Object.hasOwn(files, name) ? { name, bytes: files[name]! } : undefined;
}

// The file a request path names inside `root`, or undefined when there is none or it would leave root.
function resolveFile(root: string, url: string): string | undefined {
  let pathname: string;
  try {
    pathname = decodeURIComponent(new URL(url, 'http://localhost').pathname);
  } catch {
    return undefined;
  }
  if (pathname.includes('\0')) return undefined;
  let candidate = path.join(root, path.normalize(pathname));
  try {
    if (fs.statSync(candidate).isDirectory()) candidate = path.join(candidate, 'index.html');
    const real = fs.realpathSync(candidate);
    if (real !== root && !real.startsWith(root + path.sep)) return undefined;
    return fs.statSync(real).isFile() ? real : undefined;
  } catch {
    return undefined;
  }
}
