// Long fuzz runs of the decoders' properties (the same ones test/fuzz-*.test.ts runs briefly):
//   npm run fuzz -- [--decoder NAME[,NAME]] [--runs N | --seconds S] [--seed N] [--png FILE]...
// Each decoder runs in a child process under a watchdog: a batch of 200 inputs that runs for more
// than 60 s is reported as a hang, with the seed that reproduces it. Prints one line per
// decoder: executions, seconds, peak memory, and any finding with fast-check's counterexample.
import { readFileSync } from 'node:fs';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { TARGETS, type FuzzTarget } from './targets.js';

interface Job {
  name: string;
  seed: number;
  runs: number;
  seconds: number;
  extraSeeds: string[];
}

const BATCH = 200;
const HANG_MS = 60_000;
const MAX_RSS_MIB = 1024;
// One input's time limit: far above any sound input's milliseconds, on a busy machine too.
const MAX_CALL_MS = 10_000;

function childMain(job: Job): void {
  const send = (m: unknown) => process.send!(m);
  const target = TARGETS.find((t) => t.name === job.name)!;
  const extra = job.extraSeeds.map((f) => new Uint8Array(readFileSync(f)));
  const { input, run } = target.setup(extra);
  send({ kind: 'ready', executions: 0 });
  const deadline = Date.now() + job.seconds * 1000;
  let done = 0;
  let batch = 0;
  while (done < job.runs && Date.now() < deadline) {
    const n = Math.min(BATCH, job.runs - done);
    const seed = (job.seed + batch * 0x9e3779b1) >>> 0;
    const result = fc.check(
      fc.property(input, (value) => {
        const began = performance.now();
        run(value);
        const ms = performance.now() - began;
        if (ms > MAX_CALL_MS) throw new Error(`one input took ${ms.toFixed(0)} ms`);
      }),
      { numRuns: n, seed, endOnFailure: false },
    );
    if (result.failed) {
      send({ kind: 'finding', report: fc.defaultReportMessage(result) ?? String(result.errorInstance), seed, executions: done + result.numRuns });
      return;
    }
    done += n;
    batch++;
    // Inputs are at most a few KiB: a decoder that allocates what a forged size field asks for
    // shows here (after a collection, so that garbage not yet collected does not).
    if (batch % 50 === 0) (globalThis as { gc?: () => void }).gc?.();
    const rssMiB = process.memoryUsage.rss() / 2 ** 20;
    if (batch % 50 === 0 && rssMiB > MAX_RSS_MIB) {
      send({ kind: 'finding', report: `the process holds ${rssMiB.toFixed(0)} MiB after this batch, more than ${MAX_RSS_MIB} MiB`, seed, executions: done });
      return;
    }
    send({ kind: 'progress', executions: done });
  }
  send({ kind: 'done', executions: done, maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) });
}

function runOne(job: Job): Promise<string> {
  return new Promise((resolve) => {
    const began = Date.now();
    const child = fork(fileURLToPath(import.meta.url), ['--child', JSON.stringify(job)], { execArgv: ['--import', 'tsx', '--max-old-space-size=1024', '--expose-gc'] });
    let executions = 0;
    let lastChange = Date.now();
    let settled = false;
    const line = (what: string) => `${job.name}: ${executions} executions in ${((Date.now() - began) / 1000).toFixed(0)} s, ${what}`;
    const settle = (what: string) => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      child.kill('SIGKILL');
      resolve(line(what));
    };
    const watchdog = setInterval(() => {
      if (Date.now() - lastChange > HANG_MS) settle(`HANG: a batch after ${executions} executions (seed ${job.seed}) did not finish in ${HANG_MS / 1000} s`);
    }, 1000);
    child.on('message', (m: { kind: string; executions: number; report?: string; seed?: number; maxRssMiB?: number }) => {
      executions = m.executions;
      lastChange = Date.now();
      if (m.kind === 'finding') settle(`FINDING (batch seed ${m.seed}):\n${m.report}`);
      else if (m.kind === 'done') settle(`no finding, peak RSS ${m.maxRssMiB} MiB`);
    });
    child.on('exit', (code, signal) => settle(`CRASH: the process exited (${signal ?? code})`));
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const value = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const names = (value('--decoder') ?? TARGETS.map((t) => t.name).join(',')).split(',');
  const unknown = names.filter((n) => !TARGETS.some((t: FuzzTarget) => t.name === n));
  if (unknown.length > 0) {
    console.error(`fuzz: unknown decoder ${unknown.join(', ')}: choose from ${TARGETS.map((t) => t.name).join(', ')}`);
    process.exit(2);
  }
  const runs = Number(value('--runs') ?? (value('--seconds') !== undefined ? Number.MAX_SAFE_INTEGER : 10_000));
  const seconds = Number(value('--seconds') ?? 1e9);
  const seed = Number(value('--seed') ?? Date.now() % 0x7fffffff);
  const extraSeeds = args.flatMap((a, i) => (args[i - 1] === '--png' ? [a] : []));
  let failed = false;
  for (const name of names) {
    const line = await runOne({ name, seed, runs, seconds, extraSeeds });
    console.log(line);
    failed ||= !line.includes('no finding');
  }
  process.exit(failed ? 1 : 0);
}

const childAt = process.argv.indexOf('--child');
if (childAt < 0) void main();
else childMain(JSON.parse(process.argv[childAt + 1]!) as Job);
