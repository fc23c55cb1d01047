import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** CPU time a process has used so far, in clock ticks (user + system, from /proc). */
export function cpuTicks(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Waits until process `pid` is computing (its CPU time rose by 3+ ticks within 60 ms), at most `ms`. */
export async function busy(pid: number, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const before = cpuTicks(pid);
    await sleep(60);
    if (cpuTicks(pid) - before >= 3) return;
  }
}

/** Meta-iterations (or asynchronous spans) a run has finished: the lines of its checkpoint's log. */
export function logLines(dir: string): number {
  try {
    return fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').split('\n').filter((l) => l !== '').length;
  } catch {
    return 0;
  }
}
