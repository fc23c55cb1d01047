/**
 * Redis's memory over a long run across five hosts of namespaces (Redis, the coordinator, three
 * workers): `used_memory` and the run's key count sampled as the run goes, and what is left once
 * it ends.
 *
 *   npm run build && tsx bench/hosts-memory.ts [--meta-iters 2000] [--at 100,500,1000,2000]
 *
 * A tiny sine model (8 hidden units, one inner step) so that thousands of meta-iterations take
 * minutes; the keys a meta-iteration stores do not depend on the model's size.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { hostsSkipReason, makeHosts, redisCli, redisOn, reptileOn } from './hosts.js';

const { values } = parseArgs({ options: { 'meta-iters': { type: 'string', default: '2000' }, at: { type: 'string', default: '100,500,1000,2000' } } });
const iters = Number(values['meta-iters']);
const marks = values.at.split(',').map(Number);
if (hostsSkipReason !== undefined) {
  console.error(`hosts-memory: ${hostsSkipReason}`);
  process.exit(2);
}
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

const net = makeHosts(['redis', 'coord', 'w1', 'w2', 'w3'], { subnet: 10 });
const r = net.hosts['redis']!;
const redis = await redisOn(r);
const cli = (...args: string[]) => redisCli(r, '-h', r.address, ...args);
const usedMemory = () => Number(/used_memory:(\d+)/.exec(cli('info', 'memory'))![1]);
const keys = (pattern: string) => cli('--scan', '--pattern', pattern).split('\n').filter((k) => k !== '');
const workers = ['w1', 'w2', 'w3'].map((w) => reptileOn(net.hosts[w], ['worker', '--redis', redis.url]));
for (const w of workers) await w.waitFor(/waiting for runs/);
const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'reptile-hosts-memory-')), 'run');
const before = usedMemory();
const coordinator = reptileOn(net.hosts['coord'], ['train', '--task', 'sine', '--hidden', '8', '--inner-iters', '1', '--meta-batch', '3', '--meta-iters', String(iters), '--inner-state', 'shared', '--eval-samples', '3', '--checkpoint-every', '100', '--executor', 'redis', '--redis', redis.url, '--checkpoint', dir]);
const done = () => {
  try {
    return fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').split('\n').filter((l) => l !== '').length;
  } catch {
    return 0;
  }
};
const began = Date.now();
const samples: { iteration: number; usedMemory: number; keysOfRuns: number }[] = [];
let most = 0;
while (!coordinator.exited()) {
  const n = done();
  const k = keys('*reptile*').length;
  most = Math.max(most, k);
  const mark = marks.find((m) => n >= m && !samples.some((s) => s.iteration === m));
  if (mark !== undefined) {
    samples.push({ iteration: mark, usedMemory: usedMemory(), keysOfRuns: k });
    console.log(`meta-iteration ${mark} (at ${n}): used_memory ${samples.at(-1)!.usedMemory} B, ${k} keys`);
  }
  await sleep(250);
}
if (coordinator.child.exitCode !== 0) throw new Error(`the run failed:\n${coordinator.log()}`);
await sleep(3000);
const left = keys('*');
const summary = { metaIters: iters, seconds: (Date.now() - began) / 1000, usedMemoryBefore: before, samples, mostKeysAtOnce: most, usedMemoryAfter: usedMemory(), keysLeftAfter: left };
console.log(JSON.stringify(summary, null, 2));
for (const w of workers) await w.kill();
await redis.stop();
net.remove();
