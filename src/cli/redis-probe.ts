import * as net from 'node:net';
import * as tls from 'node:tls';
import { ReptileError } from '../_utils/errors.js';

/**
 * Connects to the Redis named by `url` once, before any work, so that the two mistakes a newcomer
 * makes say what they are in a few seconds: nothing listening there (`ECONNREFUSED`, a wrong host
 * or port), and `rediss://` (TLS) to a plain server, which accepts the connection and then never
 * answers the TLS handshake. A URL that does not parse is left to the executor, which words it.
 */
export async function probeRedis(url: string, flag = '--redis', handshakeMs = 3000): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return;
  }
  const secure = parsed.protocol === 'rediss:';
  if (!secure && parsed.protocol !== 'redis:') return;
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  const port = parsed.port === '' ? 6379 : Number(parsed.port);
  const where = `${host}:${port}`;
  await new Promise<void>((resolve, reject) => {
    let connected = false;
    const socket: net.Socket = secure ? tls.connect({ host, port, servername: net.isIP(host) === 0 ? host : undefined, rejectUnauthorized: false }) : net.connect({ host, port });
    const done = (error?: ReptileError) => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => {
      done(
        connected
          ? new ReptileError(`the TLS handshake with ${where} got no answer in ${handshakeMs / 1000} s: is the server plain redis://? use ${flag} redis://${where}, or enable TLS on the server`)
          : new ReptileError(`cannot reach Redis at ${where} (no answer in ${handshakeMs / 1000} s): check the host and port in ${flag}, and that a firewall lets them through`),
      );
    }, handshakeMs);
    socket.once('connect', () => {
      connected = true;
      if (!secure) done();
    });
    socket.once('secureConnect', () => done());
    socket.once('error', (e: NodeJS.ErrnoException) => {
      const code = e.code ?? e.message;
      if (connected && secure) done(new ReptileError(`the TLS handshake with ${where} failed (${code}): is the server plain redis://? use ${flag} redis://${where}, or enable TLS on the server`));
      else done(new ReptileError(`cannot reach Redis at ${where} (${code}): start redis-server there, or fix the host and port in ${flag}`));
    });
  });
}
