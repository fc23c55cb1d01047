// The body of one worker thread of the threads executor: it receives (spec, job) messages, checks
// each job, runs it with a JobRunner and posts the result back with its buffers transferred.
import { parentPort, workerData } from 'node:worker_threads';
import { checkJob, type JobResult, type RunSpec, type TaskJob } from './job.js';
import { JobRunner, type SourceContext } from './runtime.js';

interface Request {
  id: number;
  spec: RunSpec;
  job: TaskJob;
}

const runner = new JobRunner(workerData as SourceContext);
let chain: Promise<void> = Promise.resolve();

parentPort!.on('message', (request: Request) => {
  chain = chain.then(async () => {
    try {
      const problem = checkJob(request.job, { spec: request.spec });
      if (problem !== undefined) throw new Error(`rejected job: ${problem}`);
      const result: JobResult = await runner.run(request.spec, request.job);
      const transfer = result.outcomes.flatMap((o) => [o.params, o.lastStep, o.state?.m, o.state?.v].filter((b): b is Uint8Array => b !== undefined).map((b) => b.buffer as ArrayBuffer));
      parentPort!.postMessage({ id: request.id, result }, transfer);
    } catch (e) {
      parentPort!.postMessage({ id: request.id, error: (e as Error).message });
    }
  });
});
