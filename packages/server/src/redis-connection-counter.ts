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
   * Interval at which this process rewrites its exact counts, which repairs any
   * drift (a release that failed, fields dropped while it was thought dead), ms.
   * @defaultValue `10000`
   */
  heartbeatMs?: number;
  /**
   * Interval at which this process renews that it is alive, ms. The counts of a
   * process silent for three intervals (killed) no longer count.
   * @defaultValue `1000`
   */
  aliveMs?: number;
  logger?: Logger;
}

const DEFAULT_HEARTBEAT_MS = 10_000; // 10 seconds
const DEFAULT_ALIVE_MS = 1_000; // 1 second
/** Renewals a process may miss before its counts expire (and heartbeats before its hashes do). */
const MISSED_BEATS = 3;
/** Past the moment a process that may be dead would expire, before the count is taken again, ms. */
const RECOUNT_SLACK_MS = 50;

/**
 * Per user a hash `<prefix>conn:<user>` of {process id → connections}; per
 * process a key `<prefix>alive:<process id>` that expires unless renewed. Acquiring
 * sums the fields of live processes (dropping those of dead ones) and increments
 * its own, in one script, so the limit holds across processes without a race.
 * Refused, it answers how long the other processes counted would take to expire
 * if they were dead: a process killed a moment ago still counts until its key
 * expires, and the clients it held are reconnecting now. The keys touched by the
 * scripts are not all declared, which a single Redis (or a replicated one)
 * allows and Redis Cluster does not.
 *
 * ARGV: this process's id, the limit, the alive keys' prefix, the alive key's
 * TTL, the hash's TTL. Answers {1, 0} when admitted, else {0, the longest
 * remaining TTL of the alive keys of other processes holding connections, ms}.
 */
const ACQUIRE = `redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
local others = 0
for i = 1, #fields, 2 do
  if fields[i] == ARGV[1] then
    total = total + tonumber(fields[i + 1])
  else
    local ttl = redis.call('PTTL', ARGV[3] .. fields[i])
    if ttl == -2 then
      redis.call('HDEL', KEYS[1], fields[i])
    else
      total = total + tonumber(fields[i + 1])
      if tonumber(fields[i + 1]) > 0 and ttl > others then others = ttl end
    end
  end
end
if total >= tonumber(ARGV[2]) then return {0, others} end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, 0}`;

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
    aliveTtlMs: number,
    hashTtlMs: number,
  ): Promise<[admitted: number, othersExpireInMs: number]>;
  headwayConnRelease(userKey: string, id: string): Promise<number>;
  headwayConnCount(userKey: string, alivePrefix: string): Promise<number>;
};

/**
 * Connections per user across every hub process sharing a Redis. While Redis is
 * unreachable the counter keeps serving: it admits up to the limit counted in
 * this process alone, and its next heartbeat writes the true local counts back.
 *
 * A user refused while other processes hold some of their connections is counted
 * once more when those processes would have expired if they were dead (within
 * three `aliveMs`): after a process is killed, its clients reconnect to the
 * others at once, and are admitted once its counts lapse instead of being
 * refused for good. At most `limit` such refusals of one user wait at a time.
 */
export class RedisConnectionCounter implements ConnectionLimiter {
  /** This process's field in the per-user hashes. */
  readonly id = randomBytes(8).toString('hex');
  private readonly redis: CounterRedis;
  private readonly prefix: string;
  private readonly limit: number;
  private readonly aliveTtlMs: number;
  private readonly hashTtlMs: number;
  private readonly logger: Logger | undefined;
  private readonly local = new Map<string, number>();
  /** Refusals of each user waiting to be counted again. */
  private readonly recounting = new Map<string, number>();
  /** Their pauses, ended at once by `close`. */
  private readonly pauses = new Map<NodeJS.Timeout, () => void>();
  private readonly timers: NodeJS.Timeout[];
  private closed = false;

  constructor(options: RedisConnectionCounterOptions) {
    const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    const aliveMs = options.aliveMs ?? DEFAULT_ALIVE_MS;
    if (!Number.isSafeInteger(options.limit) || options.limit < 1) {
      throw new TypeError('RedisConnectionCounter: "limit" must be a positive integer');
    }
    if (!(heartbeatMs > 0)) throw new TypeError('RedisConnectionCounter: "heartbeatMs" must be positive');
    if (!(aliveMs > 0)) throw new TypeError('RedisConnectionCounter: "aliveMs" must be positive');
    this.redis = options.redis as CounterRedis;
    this.prefix = options.prefix ?? 'headway:';
    this.limit = options.limit;
    this.aliveTtlMs = Math.ceil(aliveMs * MISSED_BEATS);
    this.hashTtlMs = Math.ceil(Math.max(heartbeatMs, aliveMs) * MISSED_BEATS);
    this.logger = options.logger;
    // defineCommand on a shared connection is idempotent per name.
    this.redis.defineCommand('headwayConnAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    this.redis.defineCommand('headwayConnRelease', { numberOfKeys: 1, lua: RELEASE });
    this.redis.defineCommand('headwayConnCount', { numberOfKeys: 1, lua: COUNT });
    this.timers = [
      setInterval(() => this.renew(), aliveMs),
      setInterval(() => this.heartbeat(), heartbeatMs),
    ];
    for (const timer of this.timers) timer.unref();
  }

  async acquire(user: string): Promise<boolean> {
    if ((this.local.get(user) ?? 0) >= this.limit) return false;
    const othersExpireInMs = await this.take(user);
    if (othersExpireInMs === 0) return true;
    // Refused while other processes hold connections of the user: one of them may
    // have just died. Count again once it would have expired, and then decide.
    const waiting = this.recounting.get(user) ?? 0;
    if (othersExpireInMs < 0 || waiting >= this.limit || this.closed) return false;
    this.recounting.set(user, waiting + 1);
    try {
      await this.pause(Math.min(othersExpireInMs, this.aliveTtlMs) + RECOUNT_SLACK_MS);
      return !this.closed && (await this.take(user)) === 0;
    } finally {
      const left = (this.recounting.get(user) ?? 1) - 1;
      if (left === 0) this.recounting.delete(user);
      else this.recounting.set(user, left);
    }
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
    for (const timer of this.timers) clearInterval(timer);
    for (const [timer, end] of this.pauses) {
      clearTimeout(timer);
      end();
    }
    this.pauses.clear();
    // Connections were closed before this: what is left is this process's liveness.
    await this.redis.del(this.aliveKey()).catch(() => {});
  }

  /**
   * Counts one more connection of the user if the limit allows: 0 when it did;
   * when it did not, how long until the other processes holding connections of
   * the user would expire if dead, ms (-1 when none do, or the count is this
   * process's alone).
   */
  private async take(user: string): Promise<number> {
    let admitted: boolean;
    let othersExpireInMs = -1;
    try {
      const [ok, others] = await this.redis.headwayConnAcquire(
        this.userKey(user),
        this.aliveKey(),
        this.id,
        this.limit,
        this.aliveKey(''),
        this.aliveTtlMs,
        this.hashTtlMs,
      );
      admitted = ok === 1;
      if (!admitted && others > 0) othersExpireInMs = others;
    } catch (err) {
      this.logger?.debug({ err }, 'connection count unavailable; counting this process only');
      admitted = (this.local.get(user) ?? 0) < this.limit;
    }
    if (!admitted) return othersExpireInMs;
    this.local.set(user, (this.local.get(user) ?? 0) + 1);
    return 0;
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pauses.delete(timer);
        resolve();
      }, ms);
      this.pauses.set(timer, resolve);
    });
  }

  /** Renews this process's liveness. */
  private renew(): void {
    if (this.closed || this.redis.status !== 'ready') return;
    this.redis.set(this.aliveKey(), '1', 'PX', this.aliveTtlMs).catch(() => {});
  }

  /** Writes this process's exact counts (which repairs any drift). */
  private heartbeat(): void {
    if (this.closed || this.redis.status !== 'ready') return;
    if (this.local.size === 0) return;
    const pipeline = this.redis.pipeline();
    for (const [user, n] of this.local) {
      pipeline.hset(this.userKey(user), this.id, n);
      pipeline.pexpire(this.userKey(user), this.hashTtlMs);
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
