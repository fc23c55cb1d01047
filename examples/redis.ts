/**
 * Meta-training spread over Redis: a coordinator (`RedisExecutor`) puts each task of a meta-batch
 * on a BullMQ queue, and workers (`runRedisWorker`, or `reptile worker --redis URL` on other
 * machines) take the jobs, adapt and send the weights back. Here one worker runs in this same
 * process, so the script needs nothing but a Redis server. The same run is then repeated in this
 * thread alone: the parameters come out bit for bit the same, wherever the tasks ran.
 *
 *   npx tsx examples/redis.ts redis://127.0.0.1:6379 [--meta-iters 20] [--meta-batch 4]
 *
 * CI starts a redis-server of its own on a free port and runs it with `--meta-iters 5`. A user's
 * project imports from 'reptile-ml' instead of '../src/index.js'.
 */
import {
  RedisExecutor,
  UsageError,
  SineTaskSource,
  createLearner,
  createSineModel,
  metaTrain,
  runRedisWorker,
  selectBackend,
  type Executor,
  type MetaConfig,
} from '../src/index.js';
import { readFlags, runScript } from './flags.js';


async function main(): Promise<void> {
  const flags = readFlags({ 'meta-iters': '20', 'meta-batch': '4' });
  const url = flags.positionals[0];
  if (url === undefined || url.startsWith('--')) throw new UsageError('usage: redis.ts REDIS_URL [--meta-iters 20] [--meta-batch 4], e.g. redis://127.0.0.1:6379');
  const config: Partial<MetaConfig> = {
    metaIters: flags.count('meta-iters'),
    metaBatch: flags.count('meta-batch'),
    innerIters: 5,
    innerBatch: 10,
    learningRate: 0.03,
    optimizer: 'sgd',
    metaStep: 1,
    metaStepFinal: 0,
    // Tasks that run side by side cannot chain the inner optimizer's state: `shared` gives every
    // task of a meta-batch the same state (the mean of the last batch's), as the inline run does.
    innerState: 'shared',
    seed: 0,
  };
  await selectBackend('cpu', (line) => console.error(line));
  const log = (line: string) => console.error(line);

  /** Meta-trains a fresh sine network with `executor` (or in this thread) and returns φ. */
  const train = async (executor: Executor | undefined): Promise<Float32Array> => {
    const model = createSineModel({ seed: 0 });
    const learner = createLearner({ model, innerState: 'shared', log });
    try {
      const result = await metaTrain({ learner, source: new SineTaskSource({ shots: 10 }), config, ...(executor ? { executor } : {}) });
      return result.params.data;
    } finally {
      learner.dispose();
      model.dispose();
    }
  };

  const began = performance.now();
  // The worker: takes jobs of runs whose id starts with `example` until `stop` aborts it.
  const stop = new AbortController();
  const worker = runRedisWorker({ url, runId: 'example', signal: stop.signal, log });
  let distributed: Float32Array;
  const executor = await RedisExecutor.connect({ url, runId: 'example', log });
  try {
    distributed = await train(executor);
  } finally {
    await executor.close();
    stop.abort();
    await worker;
  }
  const redisSeconds = (performance.now() - began) / 1000;
  const inline = await train(undefined);
  const same = inline.length === distributed.length && inline.every((v, i) => Object.is(v, distributed[i]));
  console.log(`${config.metaIters} meta-iterations of ${config.metaBatch} tasks through Redis at ${url}: ${redisSeconds.toFixed(1)} s`);
  console.log(`parameters (${distributed.length}) ${same ? 'bit-identical to' : 'DIFFERENT from'} the same run in this thread`);
  if (!same) process.exitCode = 1;
}

await runScript(main);
