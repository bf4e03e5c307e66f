import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ConnectionLimiter } from './context.js';

export interface RedisConnectionCounterOptions {
  /** A connection in normal (not subscriber) mode, e.g. `RedisBus#client`. */
  redis: Redis;
  /** Prefix of the keys, one per deployment. @defaultValue `'headway:'` */
  prefix?: string;
  /** Open connections per user across all processes. */
  limit: number;
  /**
   * Interval at which this process re-asserts its counts and that it is alive, ms.
   * The counts of a process silent for three intervals (killed) no longer count.
   * @defaultValue `10000`
   */
  heartbeatMs?: number;
  logger?: Logger;
}

const DEFAULT_HEARTBEAT_MS = 10_000; // 10 seconds
/** Heartbeats a process may miss before its counts expire. */
const MISSED_HEARTBEATS = 3;

/**
 * Per user a hash `<prefix>conn:<user>` of {process id → connections}; per
 * process a key `<prefix>alive:<process id>` that expires unless its heartbeat
 * renews it. Acquiring sums the fields of live processes (dropping those of dead
 * ones) and increments its own, in one script, so the limit holds across
 * processes without a race. The keys touched by the scripts are not all declared,
 * which a single Redis (or a replicated one) allows and Redis Cluster does not.
 */
const ACQUIRE = `redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  if fields[i] == ARGV[1] or redis.call('EXISTS', ARGV[3] .. fields[i]) == 1 then
    total = total + tonumber(fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`;

const RELEASE = `local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n`;

const COUNT = `local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  if redis.call('EXISTS', ARGV[1] .. fields[i]) == 1 then total = total + tonumber(fields[i + 1]) end
end
return total`;

type CounterRedis = Redis & {
  headwayConnAcquire(
    userKey: string,
    aliveKey: string,
    id: string,
    limit: number,
    alivePrefix: string,
    ttlMs: number,
  ): Promise<number>;
  headwayConnRelease(userKey: string, id: string): Promise<number>;
  headwayConnCount(userKey: string, alivePrefix: string): Promise<number>;
};

/**
 * Connections per user across every hub process sharing a Redis. While Redis is
 * unreachable the counter keeps serving: it admits up to the limit counted in
 * this process alone, and its next heartbeat writes the true local counts back.
 */
export class RedisConnectionCounter implements ConnectionLimiter {
  /** This process's field in the per-user hashes. */
  readonly id = randomBytes(8).toString('hex');
  private readonly redis: CounterRedis;
  private readonly prefix: string;
  private readonly limit: number;
  private readonly ttlMs: number;
  private readonly logger: Logger | undefined;
  private readonly local = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(options: RedisConnectionCounterOptions) {
    const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    if (!Number.isSafeInteger(options.limit) || options.limit < 1) {
      throw new TypeError('RedisConnectionCounter: "limit" must be a positive integer');
    }
    if (!(heartbeatMs > 0)) throw new TypeError('RedisConnectionCounter: "heartbeatMs" must be positive');
    this.redis = options.redis as CounterRedis;
    this.prefix = options.prefix ?? 'headway:';
    this.limit = options.limit;
    this.ttlMs = Math.ceil(heartbeatMs * MISSED_HEARTBEATS);
    this.logger = options.logger;
    // defineCommand on a shared connection is idempotent per name.
    this.redis.defineCommand('headwayConnAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    this.redis.defineCommand('headwayConnRelease', { numberOfKeys: 1, lua: RELEASE });
    this.redis.defineCommand('headwayConnCount', { numberOfKeys: 1, lua: COUNT });
    this.timer = setInterval(() => this.heartbeat(), heartbeatMs);
    this.timer.unref();
  }

  async acquire(user: string): Promise<boolean> {
    const mine = this.local.get(user) ?? 0;
    if (mine >= this.limit) return false;
    let admitted: boolean;
    try {
      admitted =
        (await this.redis.headwayConnAcquire(
          this.userKey(user),
          this.aliveKey(),
          this.id,
          this.limit,
          this.aliveKey(''),
          this.ttlMs,
        )) === 1;
    } catch (err) {
      this.logger?.debug({ err }, 'connection count unavailable; counting this process only');
      admitted = (this.local.get(user) ?? 0) < this.limit;
    }
    if (admitted) this.local.set(user, (this.local.get(user) ?? 0) + 1);
    return admitted;
  }

  release(user: string): void {
    const n = this.local.get(user) ?? 0;
    if (n <= 0) return;
    if (n === 1) this.local.delete(user);
    else this.local.set(user, n - 1);
    // Should this fail, the next heartbeat writes the true count.
    this.redis.headwayConnRelease(this.userKey(user), this.id).catch(() => {});
  }

  /** Connections of the user on every live process (this one's alone while Redis is away). */
  async count(user: string): Promise<number> {
    try {
      return Number(await this.redis.headwayConnCount(this.userKey(user), this.aliveKey('')));
    } catch {
      return this.local.get(user) ?? 0;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    // Connections were closed before this: what is left is this process's liveness.
    await this.redis.del(this.aliveKey()).catch(() => {});
  }

  /** Renews this process's liveness and writes its exact counts (which repairs any drift). */
  private heartbeat(): void {
    if (this.closed || this.redis.status !== 'ready') return;
    const pipeline = this.redis.pipeline();
    pipeline.set(this.aliveKey(), '1', 'PX', this.ttlMs);
    for (const [user, n] of this.local) {
      pipeline.hset(this.userKey(user), this.id, n);
      pipeline.pexpire(this.userKey(user), this.ttlMs);
    }
    pipeline.exec().catch(() => {});
  }

  private userKey(user: string): string {
    return `${this.prefix}conn:${user}`;
  }

  private aliveKey(id = this.id): string {
    return `${this.prefix}alive:${id}`;
  }
}
