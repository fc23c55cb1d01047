import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Hosts of the project's own, on this machine: one network namespace per host, each joined to a
 * bridge in a "switch" namespace by a veth pair, on a private subnet that exists only inside the
 * namespaces (no route leads out of them, and the root namespace has no address on it). A host
 * is unplugged by taking its port on the switch down: its own interface stays up, its packets go
 * nowhere, and TCP sees nothing but silence, as between machines. Latency and dropped connections
 * come from a small proxy (hosts-proxy.mjs) run on a host, since the kernel may lack netem.
 *
 * Used by test/exec-hosts.test.ts, bench/soak.ts and scripts/hosts-demo.sh. Needs root and iproute2.
 */

/** Every namespace made here is named `rpth-<pid of its maker>-<run>-<host>`. */
export const PREFIX = 'rpth-';

/** Why hosts cannot be made here, or undefined. */
export const hostsSkipReason: string | undefined = (() => {
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'network namespaces need root (the CI runs the tests as root)';
  if (spawnSync('ip', ['-V']).status !== 0) return "the 'ip' command is missing (apt-get install iproute2)";
  return undefined;
})();

/** Runs `ip` with these arguments; throws with its error output when it fails. */
export function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILLs every process inside namespace `ns` (ours: nothing else runs in it) and deletes it. */
function removeNamespace(ns: string): void {
  for (let i = 0; i < 20; i++) {
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter((l) => /^\d+$/.test(l));
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    spawnSync('sleep', ['0.05']);
  }
  spawnSync('ip', ['netns', 'del', ns]);
}

/** Deletes the namespaces (and their processes) left by makers that died before tearing them down. */
export function removeStaleHosts(): string[] {
  const removed: string[] = [];
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  for (const line of list.split('\n')) {
    const ns = line.split(' ')[0] ?? '';
    const m = /^rpth-(\d+)-/.exec(ns);
    if (m === null || alive(Number(m[1]))) continue;
    removeNamespace(ns);
    removed.push(ns);
  }
  return removed;
}

/** One host: a namespace with one interface (`eth0`) on the test subnet. */
export interface Host {
  readonly name: string;
  readonly ns: string;
  readonly address: string;
  /** The command prefix that runs a program on this host. */
  readonly wrap: string[];
  /** Sets a sysctl inside the host's namespace (e.g. net.ipv4.tcp_retries2, which is per namespace). */
  sysctl(name: string, value: string | number): void;
}

/** Hosts joined by a switch. */
export interface Hosts {
  readonly hosts: Record<string, Host>;
  /** Plugs a host's cable into the switch (`up`) or pulls it (a partition of that host from all others). */
  link(name: string, up: boolean): void;
  /** Whether a host's cable is in. */
  isUp(name: string): boolean;
  /** Kills every process on the hosts and deletes them with the switch. Safe to call twice. */
  remove(): void;
}

let runs = 0;
const live = new Set<Hosts>();
let exitHook = false;

/**
 * Makes one host per name (addresses 10.231.`subnet`.2, .3, … in the order given) and the switch.
 * Stale hosts of dead makers are removed first; the hosts are removed when this process exits,
 * if `remove()` was not called before.
 */
export function makeHosts(names: string[], options: { subnet?: number } = {}): Hosts {
  removeStaleHosts();
  const subnet = options.subnet ?? 7;
  const tag = `${PREFIX}${process.pid}-${runs++}-`;
  const sw = `${tag}switch`;
  const made: string[] = [];
  const up = new Map<string, boolean>();
  const hosts: Record<string, Host> = {};
  const ports = new Map<string, string>();
  const result: Hosts = {
    hosts,
    link: (name, on) => {
      const port = ports.get(name);
      if (port === undefined) throw new Error(`no host ${name}`);
      ip('-n', sw, 'link', 'set', port, on ? 'up' : 'down');
      up.set(name, on);
    },
    isUp: (name) => up.get(name) ?? false,
    remove: () => {
      for (const ns of made.reverse()) removeNamespace(ns);
      made.length = 0;
      live.delete(result);
    },
  };
  live.add(result);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const h of [...live]) h.remove();
    });
  }
  try {
    ip('netns', 'add', sw);
    made.push(sw);
    ip('-n', sw, 'link', 'set', 'lo', 'up');
    ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', sw, 'link', 'set', 'br0', 'up');
    names.forEach((name, i) => {
      const ns = `${tag}${name}`;
      ip('netns', 'add', ns);
      made.push(ns);
      const port = `p${i}`;
      // Both ends are created inside their namespaces: no interface ever appears in this one.
      ip('link', 'add', port, 'netns', sw, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      ip('-n', sw, 'link', 'set', port, 'master', 'br0');
      ip('-n', sw, 'link', 'set', port, 'up');
      const address = `10.231.${subnet}.${i + 2}`;
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ports.set(name, port);
      up.set(name, true);
      hosts[name] = {
        name,
        ns,
        address,
        wrap: ['ip', 'netns', 'exec', ns],
        sysctl: (key, value) => {
          const r = spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `${key}=${value}`], { encoding: 'utf8' });
          if (r.status !== 0) throw new Error(`sysctl ${key} in ${ns}: ${r.stderr.trim()}`);
        },
      };
    });
  } catch (e) {
    result.remove();
    throw e;
  }
  return result;
}

/** A program started on a host, with everything it prints (kept in memory and, optionally, appended to a file). */
export interface HostProcess {
  readonly child: ChildProcess;
  readonly started: number;
  log(): string;
  /** The log's lines that match `pattern`, each with when it was printed (ms since the epoch). */
  lines(pattern: RegExp): { at: number; line: string }[];
  /** Resolves with when the first line at or after `from` (ms since the epoch) matching `pattern` was printed; rejects after `ms` or at exit. */
  waitFor(pattern: RegExp, ms?: number, from?: number): Promise<number>;
  exited(): boolean;
  /** SIGKILLs it (a crash, or the end of a test) and waits for its exit. */
  kill(): Promise<void>;
}

/** Starts `command args` on `host` (or on this machine when `host` is undefined). */
export function startOn(host: Host | undefined, command: string, args: string[], options: { env?: Record<string, string>; logFile?: string; label?: string; stdin?: boolean } = {}): HostProcess {
  const argv = host ? [...host.wrap, command, ...args] : [command, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  const stamped: { at: number; line: string }[] = [];
  const file = options.logFile;
  const label = options.label ?? '';
  for (const stream of [child.stdout!, child.stderr!]) {
    readline.createInterface({ input: stream }).on('line', (line) => {
      const at = Date.now();
      stamped.push({ at, line });
      if (file !== undefined) fs.appendFileSync(file, `${new Date(at).toISOString()} ${label}${line}\n`);
    });
  }
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    child,
    started: Date.now(),
    log: () => stamped.map((s) => s.line).join('\n'),
    lines: (pattern) => stamped.filter((s) => pattern.test(s.line)),
    exited,
    waitFor: async (pattern, ms = 60_000, from = 0) => {
      const until = Date.now() + ms;
      for (;;) {
        const hit = stamped.find((s) => s.at >= from && pattern.test(s.line));
        if (hit) return hit.at;
        if (Date.now() > until) throw new Error(`timed out waiting for ${pattern} in:\n${stamped.map((s) => s.line).join('\n')}`);
        if (exited()) throw new Error(`process exited (${child.exitCode ?? child.signalCode}) before ${pattern}:\n${stamped.map((s) => s.line).join('\n')}`);
        await sleep(50);
      }
    },
    kill: async () => {
      if (exited()) return;
      const done = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await done;
    },
  };
}

const root = path.resolve(import.meta.dirname, '..');
/** The CLI this checkout builds (`npm run build`). */
export const CLI = path.join(root, 'dist', 'cli', 'main.js');

/** Starts `reptile <args>` on `host` with one engine thread and the CLI's own heap flag. */
export function reptileOn(host: Host | undefined, args: string[], options: { logFile?: string; label?: string; env?: Record<string, string> } = {}): HostProcess {
  return startOn(host, process.execPath, ['--initial-old-space-size=512', CLI, ...args], { ...options, env: { REPTILE_NATIVE_THREADS: '1', ...options.env } });
}

/** A redis-server on a host, listening on its address and loopback. */
export interface HostRedis {
  readonly url: string;
  readonly dir: string;
  /** SIGKILLs the server (a crash). */
  kill(): Promise<void>;
  /** Starts it again on the same directory (with persistence its append-only file is replayed). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts redis-server on `host` (append-only, fsync always, when `persistent`), with keepalive probes after 15 s of silence. */
export async function redisOn(host: Host, options: { persistent?: boolean; port?: number } = {}): Promise<HostRedis> {
  const port = options.port ?? 6379;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-hosts-redis-'));
  // Its files go when this process exits, if stop() was not called (the namespace's removal kills the server).
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const persistence = options.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  let proc: HostProcess | undefined;
  const start = async (): Promise<void> => {
    proc = startOn(host, 'redis-server', ['--port', String(port), '--bind', host.address, '127.0.0.1', '--dir', dir, '--save', '', ...persistence, '--maxmemory-policy', 'noeviction', '--protected-mode', 'no', '--tcp-keepalive', '15']);
    for (let i = 0; ; i++) {
      const r = spawnSync('ip', ['netns', 'exec', host.ns, 'redis-cli', '-p', String(port), 'ping'], { encoding: 'utf8' });
      if (r.stdout.trim() === 'PONG') return;
      if (i > 200) throw new Error(`redis-server did not start on ${host.address}:\n${proc.log()}`);
      await sleep(50);
    }
  };
  await start();
  return {
    url: `redis://${host.address}:${port}`,
    dir,
    kill: async () => proc?.kill(),
    start,
    stop: async () => {
      await proc?.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs `redis-cli` on `host` against its local server; returns its output. */
export function redisCli(host: Host, ...args: string[]): string {
  return spawnSync('ip', ['netns', 'exec', host.ns, 'redis-cli', ...args], { encoding: 'utf8' }).stdout.trim();
}

/** A delay-and-drop TCP proxy on a host, in front of a server on the same host. */
export interface Proxy {
  readonly url: string;
  /** Delays every chunk, each way, by a uniform draw in [min, max] ms (order kept); 0, 0 for none. */
  delay(minMs: number, maxMs: number): Promise<void>;
  /** Holds every byte, both ways, for `ms` (a stall), then delivers them. */
  stall(ms: number): Promise<void>;
  /** Resets every connection through it (the clients see their connections drop). */
  drop(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts hosts-proxy.mjs on `host`, listening on `port` of the host's address and forwarding to `targetPort` on its loopback. */
export async function proxyOn(host: Host, port: number, targetPort: number): Promise<Proxy> {
  const proc = startOn(host, process.execPath, [path.join(root, 'bench', 'hosts-proxy.mjs'), host.address, String(port), '127.0.0.1', String(targetPort)], { stdin: true });
  await proc.waitFor(/^ready/, 20_000);
  let asked = 0;
  // One command a line on its stdin, each answered by `ok <n> …` on its stdout.
  const ask = async (command: string): Promise<string> => {
    const n = ++asked;
    const answer = new RegExp(`^ok ${n}\\b`);
    proc.child.stdin!.write(`${n} ${command}\n`);
    await proc.waitFor(answer, 10_000);
    return proc.lines(answer)[0]!.line;
  };
  return {
    url: `redis://${host.address}:${port}`,
    delay: async (min, max) => void (await ask(`delay ${min} ${max}`)),
    stall: async (ms) => void (await ask(`stall ${ms}`)),
    drop: async () => Number((await ask('drop')).split(' ')[2]),
    stop: () => proc.kill(),
  };
}

/** The parameters and optimizer state of a checkpoint: its bytes between the header and the trailing digest. */
export function checkpointPayload(dir: string): Buffer {
  const b = fs.readFileSync(path.join(dir, 'reptile.ckpt'));
  return b.subarray(16 + b.readUInt32LE(12), b.length - 32);
}
