// The redis executor, one concern per file under redis/: the connection, the coordinator, the worker and the wire codec.
export { connectRedis, queueName, redactUrl, RUNS_KEY, type RedisConnectOptions } from './redis/connection.js';
export { RedisExecutor, type RedisExecutorOptions } from './redis/coordinator.js';
export { runRedisWorker, type RedisWorkerOptions } from './redis/worker.js';
export { decodeResult, encodeResult, MAX_SPEC_BYTES } from './redis/codec.js';
export { readRunStatus, type RunStatus } from './redis/status.js';
