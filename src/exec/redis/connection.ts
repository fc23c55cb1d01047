import { Redis, ReplyError, type RedisOptions } from 'ioredis';
import { UsageError } from '../../_utils/errors.js';

/** The set of runs a coordinator is serving; workers watch it to find queues to work on. */
export const RUNS_KEY = 'reptile:runs';

/** The BullMQ queue of a run: its name is prefixed by the run id. */
export function queueName(runId: string): string {
  return `reptile-${runId}`;
}

/** How long φ, states and results stay in Redis when nobody deletes them (seconds). */
export const BLOB_TTL_S = 6 * 3600;

/**
 * Timeouts that notice a dead link in seconds rather than in TCP's 15 minutes: the first try to
 * connect gives up after CONNECT_TIMEOUT_MS, an idle connection is probed by TCP keepalive after
 * KEEPALIVE_MS of silence, and a connection that owes replies and receives nothing for
 * SOCKET_TIMEOUT_MS is dropped and reconnected (its commands are sent again).
 */
export const CONNECT_TIMEOUT_MS = 10_000;
export const KEEPALIVE_MS = 5_000;
export const SOCKET_TIMEOUT_MS = 10_000;
/**
 * The same for BullMQ's connections, whose blocking reads (a worker's BZPOPMIN, the queue
 * events' XREAD BLOCK) legitimately wait up to 10 s for a reply: they get 10 s more.
 */
export const BLOCKING_SOCKET_TIMEOUT_MS = 20_000;

/** A key of a run: `reptile:<run id>:<parts…>`. */
export const key = (runId: string, ...parts: string[]): string => ['reptile', runId, ...parts].join(':');

/** Options of a connection to Redis. */
export interface RedisConnectOptions {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://…` for TLS. */
  url: string;
  /** Where reconnections are reported (one line each). Default: stderr. */
  log?: (line: string) => void;
  /** Who is connecting, in log lines (`coordinator`, `worker`). */
  role: string;
  /** Called when the connection is back after an outage, with the outage's length (ms). */
  onReconnect?: (outageMs: number) => void;
}

/** The URL with its password hidden, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * Opens a connection and checks it once, so a wrong URL, password or ACL user fails at once with
 * one line; afterwards the connection reconnects with back-off (up to 5 s between tries) and says
 * so once when it is lost and once when it is back.
 */
export async function connectRedis(options: RedisConnectOptions): Promise<Redis> {
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new UsageError(`--redis '${redactUrl(options.url)}' is not a URL: use redis://[user:password@]host:port or rediss://… for TLS`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new UsageError(`--redis must start with redis:// or rediss:// (TLS), not ${url.protocol}//`);
  const shown = redactUrl(options.url);
  const redisOptions: RedisOptions = {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    lazyConnect: true,
    retryStrategy: () => null,
    connectTimeout: CONNECT_TIMEOUT_MS,
    keepAlive: KEEPALIVE_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
  };
  const client = new Redis(options.url, redisOptions);
  let firstError: Error | undefined;
  const remember = (e: Error) => void (firstError ??= e);
  client.on('error', remember);
  try {
    await client.connect();
    await client.ping();
    // An ACL user without access to the library's keys is told now, not at the first job.
    await client.exists(RUNS_KEY);
  } catch (e) {
    client.disconnect();
    // ioredis reports an AUTH failure as a closed connection; the error event has the reason.
    const m = (firstError ?? (e as Error)).message;
    if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test(m)) throw new UsageError(`redis at ${shown} refused the credentials (${m.split('\n')[0]}): check the user and password in --redis`);
    if (/certificate|CERT_|SSL|TLS/i.test(m)) throw new UsageError(`the TLS certificate of redis at ${shown} was refused (${m.split('\n')[0]}): add its CA with NODE_EXTRA_CA_CERTS=ca.pem, or fix --redis`);
    if (/NOPERM/i.test(m)) throw new UsageError(`the redis user in --redis may not run the commands a ${options.role} needs (${m.split('\n')[0]}): grant it ~reptile:* and ~bull:reptile-* (see docs/distributed.md)`);
    throw new UsageError(`cannot reach redis at ${shown} (${m.split('\n')[0] || 'connection closed'}): start redis-server there or fix --redis`);
  }
  client.off('error', remember);
  // From here on, reconnect for ever with back-off, and say so once per outage.
  client.options.retryStrategy = (times: number) => Math.min(100 * 2 ** Math.min(times, 6), 5000);
  const outages = new Outages((reason) => log(`reptile ${options.role}: lost redis at ${shown} (${reason}); reconnecting with back-off`), (outage) => {
    log(`reptile ${options.role}: reconnected to redis at ${shown} after ${(outage / 1000).toFixed(1)} s`);
    options.onReconnect?.(outage);
  });
  outages.watch(client);
  trackers.set(client, outages);
  return client;
}

/**
 * One outage of a process's connections to Redis, however many of them it breaks: it begins
 * when the first connection starts reconnecting (one line) and ends when every broken one is
 * ready again (one line).
 */
class Outages {
  private readonly broken = new Set<Redis>();
  private since = 0;
  private lastError = 'connection closed';

  constructor(
    private readonly lost: (reason: string) => void,
    private readonly back: (outageMs: number) => void,
  ) {}

  watch(connection: Redis): void {
    connection.on('error', (e: Error) => void (this.lastError = e.message.split('\n')[0] ?? this.lastError));
    connection.on('reconnecting', () => {
      if (this.broken.has(connection)) return;
      if (this.broken.size === 0) {
        this.since = Date.now();
        this.lost(this.lastError);
      }
      this.broken.add(connection);
    });
    const healed = () => {
      if (!this.broken.delete(connection) || this.broken.size > 0) return;
      this.back(Date.now() - this.since);
    };
    connection.on('ready', healed);
    // A connection closed on purpose no longer counts.
    connection.on('end', healed);
  }
}

const trackers = new WeakMap<Redis, Outages>();

/**
 * A connection of its own for a BullMQ queue, worker or event listener, with the client's
 * settings (reconnecting for ever, keepalive, socket timeout). `blocking`: for the connections
 * that make blocking reads (a worker's, whose BZPOPMIN BullMQ runs on a copy of it, and the queue
 * events'), which wait up to 10 s for a reply: their socket timeout is longer. Its losses are
 * reported with the client's, one line per outage.
 */
export function bullConnection(client: Redis, blocking: boolean): Redis {
  const connection = client.duplicate(blocking ? { socketTimeout: BLOCKING_SOCKET_TIMEOUT_MS } : {});
  connection.on('error', () => {});
  trackers.get(client)?.watch(connection);
  return connection;
}

/**
 * Runs `attempt` (a MULTI/EXEC transaction, a BullMQ bulk add) until it gets an answer. ioredis
 * queues a plain command while its connection is down and sends it once reconnected, but a
 * transaction or pipeline in flight when the connection breaks is rejected instead: the caller
 * would see a network outage as a failed run. An error Redis itself answered (a `ReplyError`:
 * NOPERM, OOM, ...) is thrown at once, and so is any error once `stop()` says the caller is closing.
 * So every attempt must be safe to repeat.
 */
export async function untilAnswered<T>(attempt: () => Promise<T>, stop: () => boolean, pauseMs = 100): Promise<T> {
  for (let pause = pauseMs; ; pause = Math.min(pause * 2, 2000)) {
    try {
      return await attempt();
    } catch (e) {
      if (stop() || e instanceof ReplyError) throw e;
      await new Promise((wake) => setTimeout(wake, pause));
    }
  }
}

