/**
 * A chaos soak: Omniglot training across five hosts of namespaces (Redis, the coordinator, three
 * workers) while faults strike every few seconds, run after run, each run's parameters checked
 * against an inline run of the same seed.
 *
 *   npm run soak -- --minutes 30 --data-dir DIR [--meta-iters 150] [--seed 1] [--out /tmp/soak]
 *
 * Faults, one at a time, chosen at random: a worker partitioned (its cable pulled for 5–30 s), the
 * Redis host unreachable (5–20 s), the coordinator's link flapping, 20–50 ms of latency on every
 * worker link (the workers reach Redis through a delay-and-drop proxy), the workers' connections
 * reset, a worker host that never comes back (a new one takes its address later), a worker or the
 * coordinator SIGKILLed (then started again), Redis SIGKILLed and started again on its append-only
 * file. A run that ends is checked (bit-identical to inline, no key of it left in Redis) before the
 * next one starts. Prints faults injected, jobs redelivered, duplicates ignored and time lost.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkpointPayload, hostsSkipReason, makeHosts, proxyOn, redisCli, redisOn, reptileOn, type HostProcess } from './hosts.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    'data-dir': { type: 'string' },
    'meta-iters': { type: 'string', default: '150' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string' },
  },
});
const minutes = Number(values.minutes);
const metaIters = Number(values['meta-iters']);
const faultSeed = Number(values.seed);
if (!(minutes > 0) || !Number.isInteger(metaIters) || metaIters < 1 || !Number.isInteger(faultSeed)) {
  console.error('soak: --minutes must be positive, --meta-iters and --seed whole numbers');
  process.exit(2);
}
const dataDir = values['data-dir'];
if (dataDir === undefined || !fs.existsSync(path.join(dataDir, 'images_background.zip'))) {
  console.error("soak: --data-dir must name the folder of Omniglot's two zips (reptile data omniglot --download --dir DIR fetches them)");
  process.exit(2);
}
if (hostsSkipReason !== undefined) {
  console.error(`soak: ${hostsSkipReason}`);
  process.exit(2);
}
const out = values.out ?? fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-soak-'));
fs.mkdirSync(out, { recursive: true });
const logFile = path.join(out, 'processes.log');
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

/** mulberry32: the faults' order and timing follow --seed. */
let state = faultSeed >>> 0;
function random(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const between = (lo: number, hi: number) => lo + (hi - lo) * random();
const say = (line: string) => {
  const stamped = `${new Date().toISOString()} soak: ${line}`;
  console.log(stamped);
  fs.appendFileSync(logFile, `${stamped}\n`);
};

const train = ['train', '--preset', 'omniglot-5w5s', '--data-dir', dataDir, '--meta-iters', String(metaIters), '--inner-state', 'shared', '--eval-samples', '20', '--eval-interval', '1000000', '--checkpoint-every', '10', '--json'];
const workerNames = ['w1', 'w2', 'w3'];
const net = makeHosts(['redis', 'coord', ...workerNames], { subnet: 8 });
const h = net.hosts;
// Dead connections are given up within seconds rather than TCP's 15 minutes on every host.
for (const host of Object.values(h)) host.sysctl('net.ipv4.tcp_retries2', 5);

const redis = await redisOn(h['redis']!, { persistent: true });
const proxy = await proxyOn(h['redis']!, 6380, 6379);
const coordinatorLogs: HostProcess[] = [];
const workerLogs: HostProcess[] = [];
const workers = new Map<string, HostProcess>();
let workerCount = 0;
async function startWorker(name: string): Promise<void> {
  const w = reptileOn(h[name]!, ['worker', '--redis', proxy.url, '--data-dir', dataDir!, '--lock-ms', '3000'], { logFile, label: `[${name}#${++workerCount}] ` });
  workers.set(name, w);
  workerLogs.push(w);
  await w.waitFor(/waiting for runs/, 60_000);
}

say(`hosts ${Object.values(h).map((x) => `${x.name} ${x.address}`).join(', ')}; logs in ${logFile}`);
say('the inline reference run');
const reference = path.join(out, 'inline');
fs.rmSync(reference, { recursive: true, force: true });
const inline = reptileOn(undefined, [...train, '--checkpoint', reference], { logFile, label: '[inline] ' });
await new Promise((resolve) => inline.child.once('exit', resolve));
if (inline.child.exitCode !== 0) throw new Error(`the inline run failed:\n${inline.log()}`);
const expected = checkpointPayload(reference);
for (const name of workerNames) await startWorker(name);

const counts: Record<string, number> = {};
let coordinator: HostProcess | undefined;
let roundDir = '';
let unexpected = 0;
let strayMeta = 0;
const startCoordinator = () => {
  coordinator = reptileOn(h['coord']!, [...train, '--executor', 'redis', '--redis', redis.url, '--checkpoint', roundDir], { logFile, label: '[coord] ' });
  coordinatorLogs.push(coordinator);
};

type Fault = () => Promise<void>;
const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
const faults: Record<string, Fault> = {
  'worker partitioned': async () => {
    const w = pick(workerNames);
    net.link(w, false);
    await sleep(between(5_000, 30_000));
    net.link(w, true);
  },
  'redis unreachable': async () => {
    net.link('redis', false);
    await sleep(between(5_000, 20_000));
    net.link('redis', true);
  },
  'coordinator link flapping': async () => {
    for (let i = 0, n = 3 + Math.floor(random() * 3); i < n; i++) {
      net.link('coord', false);
      await sleep(between(1_000, 6_000));
      net.link('coord', true);
      await sleep(between(1_000, 3_000));
    }
  },
  'latency 20-50 ms on worker links': async () => {
    await proxy.delay(20, 50);
    await sleep(between(10_000, 20_000));
    await proxy.delay(0, 0);
  },
  "workers' connections reset": async () => void (await proxy.drop()),
  'worker host gone for good': async () => {
    const w = pick(workerNames);
    net.link(w, false);
    await sleep(between(10_000, 20_000));
    // It never comes back: a new machine takes its place (and address).
    await workers.get(w)!.kill();
    net.link(w, true);
    await startWorker(w);
  },
  'worker SIGKILLed': async () => {
    const w = pick(workerNames);
    await workers.get(w)!.kill();
    await sleep(between(1_000, 5_000));
    await startWorker(w);
  },
  'coordinator SIGKILLed': async () => {
    if (coordinator === undefined || coordinator.exited()) return;
    await coordinator.kill();
    await sleep(between(500, 3_000));
    startCoordinator();
  },
  'redis SIGKILLed and restarted': async () => {
    await redis.kill();
    await sleep(between(500, 3_000));
    await redis.start();
  },
};

/** Runs one training across the hosts, with faults when `chaos`; returns its wall time (ms). */
async function round(n: number, chaos: boolean): Promise<number> {
  roundDir = path.join(out, `round-${n}`);
  fs.rmSync(roundDir, { recursive: true, force: true });
  const began = Date.now();
  startCoordinator();
  let done = false;
  const striker = (async () => {
    while (chaos && !done) {
      await sleep(between(2_000, 6_000));
      if (done) break;
      const kind = pick(Object.keys(faults));
      counts[kind] = (counts[kind] ?? 0) + 1;
      say(`fault: ${kind}`);
      await faults[kind]!();
    }
  })();
  for (;;) {
    await sleep(200);
    const c = coordinator!;
    if (!c.exited()) continue;
    if (c.child.exitCode === 0) break;
    if (c.child.signalCode === 'SIGKILL') continue; // ours: the fault starts it again
    unexpected++;
    say(`the coordinator exited with ${c.child.exitCode ?? c.child.signalCode}; starting it again:\n${c.log().split('\n').slice(-5).join('\n')}`);
    await sleep(2_000);
    startCoordinator();
  }
  done = true;
  await striker;
  const ms = Date.now() - began;
  const got = checkpointPayload(roundDir);
  if (!got.equals(expected)) throw new Error(`round ${n}: the parameters differ from the inline run's`);
  // Nothing of the run stays in Redis once it has ended. (A queue's `meta` hash that a SIGKILLed
  // worker left is deleted by the live workers' sweep, which looks twice, 10 s apart: 30 s allowed.)
  let left = '';
  for (let i = 0; i < 150; i++) {
    left = redisCli(h['redis']!, '-h', h['redis']!.address, '--scan', '--pattern', '*reptile*');
    if (left === '') break;
    await sleep(200);
  }
  // A queue's `meta` hash holding BullMQ's default alone is what a stalled-job check writes when a
  // cut-off worker's command reaches Redis after the run ended (its process SIGKILLed meanwhile,
  // the kernel still sending what it had queued). One the workers' sweep has not deleted within
  // 30 s is counted and removed, not a failure; anything else left is.
  for (const k of left.split('\n').filter((k) => /^bull:reptile-[^:]+:meta$/.test(k))) {
    const fields = redisCli(h['redis']!, '-h', h['redis']!.address, 'hkeys', k);
    if (fields !== 'opts.maxLenEvents') continue;
    strayMeta++;
    say(`round ${n}: a stray ${k} (opts.maxLenEvents only) was left after the run ended; removed`);
    redisCli(h['redis']!, '-h', h['redis']!.address, 'del', k);
    left = left.split('\n').filter((x) => x !== k).join('\n');
  }
  if (left !== '') throw new Error(`round ${n}: keys left in Redis after the run ended: ${left.split('\n').slice(0, 5).join(' ')}`);
  say(`round ${n}${chaos ? '' : ' (no faults)'}: bit-identical to inline, nothing left in Redis, ${(ms / 1000).toFixed(1)} s`);
  return ms;
}

const soakStart = Date.now();
const baseline = await round(0, false);
let rounds = 0;
let lost = 0;
while (Date.now() - soakStart < minutes * 60_000) {
  lost += (await round(++rounds, true)) - baseline;
}
const all = (ps: HostProcess[], re: RegExp) => ps.reduce((s, p) => s + p.lines(re).length, 0);
const summary = {
  minutes: (Date.now() - soakStart) / 60_000,
  metaItersPerRun: metaIters,
  runs: rounds,
  bitIdenticalRuns: rounds,
  faultsInjected: Object.values(counts).reduce((a, b) => a + b, 0),
  faults: counts,
  jobsRedelivered: all(coordinatorLogs, /stalled|vanished|running the job again|queueing it again/),
  duplicatesIgnored: all(workerLogs, /its result is dropped/),
  coordinatorRestarts: counts['coordinator SIGKILLed'] ?? 0,
  unexpectedCoordinatorExits: unexpected,
  strayQueueMetaLeft: strayMeta,
  baselineRunS: baseline / 1000,
  timeLostS: lost / 1000,
  lostRedisLines: all([...coordinatorLogs, ...workerLogs], /lost redis/),
  reconnectedLines: all([...coordinatorLogs, ...workerLogs], /reconnected to redis/),
};
say(`summary ${JSON.stringify(summary)}`);
fs.writeFileSync(path.join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
for (const w of workers.values()) await w.kill();
await proxy.stop();
await redis.stop();
net.remove();
