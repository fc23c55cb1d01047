// The body of one worker thread of the threads executor: it receives (spec, job) messages, checks
// each job, runs it with a JobRunner and posts the result back with its buffers transferred.
import { parentPort, workerData } from 'node:worker_threads';
import { checkJob, type JobResult, type RunSpec, type TaskJob } from './job.js';
import { JobRunner, type SourceContext } from './runtime.js';
import { ReptileError } from '../_utils/errors.js';

interface Request {
  id: number;
  /** The run's spec, the first time this worker sees the run. */
  spec?: RunSpec;
  job: TaskJob;
  /** φ and the state are those of the previous job (same digest), which was checked. */
  reuse: boolean;
}

const runner = new JobRunner(workerData as SourceContext);
const specs = new Map<string, RunSpec>();
let held: Pick<TaskJob, 'digest' | 'phi' | 'state'> | undefined;
let chain: Promise<void> = Promise.resolve();

parentPort!.on('message', (request: Request) => {
  chain = chain.then(async () => {
    try {
      // The three plain Errors below are invariants of the protocol between this process's own
      // threads (the pool sends a run's spec before its first job, and reuses only the φ it sent).
      if (request.spec) specs.set(request.spec.runId, request.spec);
      const spec = specs.get(request.job.runId);
      if (spec === undefined) throw new Error(`no spec for run ${request.job.runId}`);
      let job = request.job;
      if (request.reuse) {
        if (held?.digest !== job.digest) throw new Error('the φ to reuse is not the one held');
        job = { ...job, phi: held.phi, ...(held.state ? { state: held.state } : {}) };
      } else {
        const problem = checkJob(job, { spec });
        if (problem !== undefined) throw new Error(`rejected job: ${problem}`);
        held = { digest: job.digest, phi: job.phi, ...(job.state ? { state: job.state } : {}) };
      }
      const result: JobResult = await runner.run(spec, job);
      const transfer = result.outcomes.flatMap((o) => [o.params, o.lastStep, o.state?.m, o.state?.v].filter((b): b is Uint8Array => b !== undefined).map((b) => b.buffer as ArrayBuffer));
      parentPort!.postMessage({ id: request.id, result }, transfer);
    } catch (e) {
      // The error's class travels with its message, so a usage mistake stays one (exit code 2).
      parentPort!.postMessage({ id: request.id, error: (e as Error).message, ...(e instanceof ReptileError ? { errorName: e.name } : {}) });
    }
  });
});
