import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Why the Redis tests cannot run here, or undefined (CI installs redis-server, so there they must run). */
export const redisSkipReason: string | undefined = (() => {
  if (spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).status === 0) return undefined;
  if (process.env['CI'] === 'true') throw new Error('redis-server is not installed, and CI must run the Redis tests: .ci/run installs it with apt-get');
  return 'redis-server is not installed (apt-get install redis-server)';
})();

/** A free TCP port on the loopback interface. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** A `redis-server` of a test's own, on a free loopback port. */
export interface TestRedis {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Kills the server (SIGKILL: a crash). */
  kill(): Promise<void>;
  /** Starts it again on the same port and directory (its append-only file is replayed). */
  restart(): Promise<void>;
  /** Freezes the server (SIGSTOP): its port still accepts connections, but nothing answers, as across a partition. */
  pause(): void;
  /** Lets a paused server run again (SIGCONT). */
  resume(): void;
  stop(): Promise<void>;
}

/** Starts redis-server with append-only persistence (fsync on every write) and `noeviction`; with `tls`, TLS only, on a certificate from `tls`. */
export async function startRedis(options: { password?: string; tls?: { cert: string; key: string }; persistent?: boolean } = {}): Promise<TestRedis> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-redis-'));
  let child: ChildProcess | undefined;
  const listen = options.tls ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', options.tls.cert, '--tls-key-file', options.tls.key, '--tls-auth-clients', 'no'] : ['--port', String(port)];
  const args = [...listen, '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', options.persistent === false ? 'no' : 'yes', '--appendfsync', 'always', '--maxmemory-policy', 'noeviction', ...(options.password ? ['--requirepass', options.password] : [])];
  const launch = async (): Promise<void> => {
    child = spawn('redis-server', args, { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.end();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (ok) return;
      await sleep(50);
    }
    throw new Error(`redis-server did not start on port ${port}`);
  };
  const kill = async (): Promise<void> => {
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await exited;
  };
  await launch();
  const auth = options.password ? `:${options.password}@` : '';
  return {
    port,
    url: `${options.tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}`,
    dir,
    kill,
    restart: launch,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    stop: async () => {
      await kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A `reptile worker` process, with everything it logs. */
export interface WorkerProcess {
  readonly child: ChildProcess;
  log(): string;
  /** Resolves when the log matches `pattern` (rejects after `ms`). */
  waitFor(pattern: RegExp, ms?: number): Promise<void>;
  stop(): Promise<void>;
}

const entry = path.resolve(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

/** The command line of `reptile <args>`, run through `wrap` (e.g. `ip netns exec NS`) when given. */
function reptileCommand(args: string[], wrap: string[]): [string, string[]] {
  return wrap.length > 0 ? [wrap[0]!, [...wrap.slice(1), process.execPath, entry, ...args]] : [process.execPath, [entry, ...args]];
}

/** Starts `reptile <args>` in the background and collects its stderr. */
export function spawnReptile(args: string[], env: Record<string, string> = {}, wrap: string[] = []): WorkerProcess {
  const [command, argv] = reptileCommand(args, wrap);
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, REPTILE_NATIVE_THREADS: '1', ...env } });
  let text = '';
  child.stderr!.on('data', (d: Buffer) => (text += d.toString('utf8')));
  child.stdout!.on('data', (d: Buffer) => (text += d.toString('utf8')));
  return {
    child,
    log: () => text,
    waitFor: async (pattern, ms = 60_000) => {
      const until = Date.now() + ms;
      while (!pattern.test(text)) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${pattern} in:\n${text}`);
        if (child.exitCode !== null) throw new Error(`process exited (${child.exitCode}) before ${pattern}:\n${text}`);
        await sleep(50);
      }
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Runs `reptile <args>` to its end, asynchronously (so workers in this process's children keep running). */
export async function runReptile(args: string[], timeoutMs = 240_000, env: Record<string, string> = {}, wrap: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [command, argv] = reptileCommand(args, wrap);
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** The params and optimizer-state bytes of a checkpoint (everything but its header and digest). */
export function checkpointPayload(dir: string): Buffer {
  const b = fs.readFileSync(path.join(dir, 'reptile.ckpt'));
  const headerLength = b.readUInt32LE(12);
  return b.subarray(16 + headerLength, b.length - 32);
}
