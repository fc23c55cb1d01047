import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hostsSkipReason, ip } from '../../bench/hosts.js';

/**
 * Two hosts on this machine for tests that need a real network between processes: network
 * namespaces joined by a veth pair on a private /30 that nothing outside them can reach. A
 * partition is the link taken down: TCP then sees nothing but silence, as between machines.
 */

/** Why the namespace tests cannot run here, or undefined. */
export const netnsSkipReason: string | undefined = hostsSkipReason;

/** One host: a namespace with an address on the link. */
export interface Host {
  readonly ns: string;
  readonly address: string;
  /** The command prefix that runs a program on this host. */
  readonly wrap: string[];
  /** Sets a sysctl inside the host's namespace (e.g. net.ipv4.tcp_retries2, which is per namespace). */
  sysctl(name: string, value: string | number): void;
}

export interface TwoHosts {
  readonly a: Host;
  readonly b: Host;
  /** Takes b's end of the link down (a partition) or up again. */
  link(up: boolean): void;
  /** Deletes both namespaces (and the link with them); kill their processes first. */
  remove(): void;
}

let made = 0;

/** Makes hosts `a` and `b`, joined by a veth pair on 10.231.N.0/30. */
export function twoHosts(): TwoHosts {
  const tag = `rpt${process.pid % 10000}x${made}`;
  const subnet = (process.pid + made++) % 250;
  const host = (ns: string, address: string): Host => ({
    ns,
    address,
    wrap: ['ip', 'netns', 'exec', ns],
    sysctl: (name, value) => {
      const r = spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `${name}=${value}`], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`sysctl ${name} in ${ns}: ${r.stderr.trim()}`);
    },
  });
  const a = host(`${tag}a`, `10.231.${subnet}.1`);
  const b = host(`${tag}b`, `10.231.${subnet}.2`);
  ip('netns', 'add', a.ns);
  ip('netns', 'add', b.ns);
  ip('link', 'add', `${tag}va`, 'netns', a.ns, 'type', 'veth', 'peer', 'name', `${tag}vb`, 'netns', b.ns);
  for (const [h, dev] of [
    [a, `${tag}va`],
    [b, `${tag}vb`],
  ] as const) {
    ip('-n', h.ns, 'link', 'set', 'lo', 'up');
    ip('-n', h.ns, 'addr', 'add', `${h.address}/30`, 'dev', dev);
    ip('-n', h.ns, 'link', 'set', dev, 'up');
  }
  return {
    a,
    b,
    link: (up) => ip('-n', b.ns, 'link', 'set', `${tag}vb`, up ? 'up' : 'down'),
    remove: () => {
      for (const h of [a, b]) spawnSync('ip', ['netns', 'del', h.ns]);
    },
  };
}

/** A redis-server on `host` (no persistence), listening on its link address. */
export async function redisOn(host: Host): Promise<{ url: string; child: ChildProcess; dir: string; stop(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-netns-redis-'));
  const child = spawn('ip', ['netns', 'exec', host.ns, 'redis-server', '--port', '6379', '--bind', host.address, '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--protected-mode', 'no'], { stdio: 'ignore' });
  for (let i = 0; ; i++) {
    const r = spawnSync('ip', ['netns', 'exec', host.ns, 'redis-cli', '-h', host.address, 'ping'], { encoding: 'utf8' });
    if (r.stdout.trim() === 'PONG') break;
    if (i > 100) throw new Error(`redis-server did not start on ${host.address}`);
    await sleep(50);
  }
  return {
    url: `redis://${host.address}:6379`,
    child,
    dir,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
