import {
  deleteKeys,
  killRedisClients,
  REDIS_URL,
  redisClient,
  requireRedis,
  uniqueName,
  waitFor,
} from '@headway/test-helpers';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryBus } from '../src/bus/memory.js';
import { RedisBus, type RedisBusOptions } from '../src/bus/redis.js';
import { RedisConnectionCounter } from '../src/redis-connection-counter.js';
import { busConformance, collect, delivery } from './bus-conformance.js';

busConformance('MemoryBus conformance', async () => {
  const bus = new MemoryBus();
  return { bus, peer: () => null, stranger: () => null, cleanup: () => bus.close() };
});

const redis = await requireRedis();

describe.skipIf(redis.skip)(redis.title('Redis'), () => {
  let admin: Redis;
  const prefixes = new Set<string>();
  const buses: RedisBus[] = [];

  beforeAll(() => {
    admin = redisClient();
  });
  afterAll(async () => {
    admin.disconnect();
  });
  afterEach(async () => {
    await Promise.all(buses.splice(0).map((b) => b.close()));
    for (const prefix of prefixes) await deleteKeys(admin, prefix);
    prefixes.clear();
  });

  /** A bus of the deployment `prefix`; each test has its own prefix. */
  function bus(prefix: string, options: Partial<RedisBusOptions> = {}): RedisBus {
    prefixes.add(prefix);
    const b = new RedisBus({ url: REDIS_URL, prefix, connectionName: `hwt-${prefix}`, ...options });
    buses.push(b);
    return b;
  }
  const newPrefix = () => `${uniqueName('hwt')}:`;

  busConformance('RedisBus conformance', async () => {
    const prefix = newPrefix();
    return {
      bus: bus(prefix),
      peer: () => bus(prefix),
      stranger: () => {
        const other = newPrefix();
        return { bus: bus(other), peer: bus(other) };
      },
      cleanup: async () => {},
    };
  });

  describe('RedisBus', () => {
    it('validates its options', () => {
      expect(() => new RedisBus({ url: '' })).toThrow(TypeError);
      expect(() => new RedisBus({ url: REDIS_URL, maxUnsent: -1 })).toThrow(TypeError);
      expect(() => new RedisBus({ url: REDIS_URL, connectionName: 'has space' })).toThrow(TypeError);
    });

    it('is shared, and lists the topics it listens to', async () => {
      const b = bus(newPrefix());
      expect(b.shared).toBe(true);
      await b.subscribe('j:one');
      await b.subscribe('u:alice');
      b.unsubscribe('j:one');
      expect([...b.subscriptions]).toEqual(['u:alice']);
    });

    it('publishes one payload to the job, user and all channels', async () => {
      const prefix = newPrefix();
      const b = bus(prefix);
      const listener = redisClient();
      try {
        const heard: string[] = [];
        listener.on('message', (channel: string) => heard.push(channel));
        await listener.subscribe(`${prefix}j:job-1`, `${prefix}u:carol`, `${prefix}*`);
        b.publish(delivery('job-1', 1, 'carol'));
        await waitFor(() => heard.length === 3);
        expect(heard.sort()).toEqual([`${prefix}*`, `${prefix}j:job-1`, `${prefix}u:carol`].sort());
      } finally {
        listener.disconnect();
      }
    });

    it('subscribes again and resyncs after its subscriber connection is killed', async () => {
      const prefix = newPrefix();
      const a = bus(prefix);
      const b = bus(prefix);
      const heard = collect(b);
      const resyncs: number[] = [];
      b.onResync((lostSince) => resyncs.push(lostSince));
      await b.subscribe('j:survivor');
      await waitFor(() => b.ping());
      const before = Date.now();
      expect(await killRedisClients(admin, `hwt-${prefix}`, 'pubsub')).toBe(1);
      await waitFor(() => resyncs.length === 1);
      expect(resyncs[0]).toBeGreaterThanOrEqual(before - 1);
      expect(resyncs[0]).toBeLessThanOrEqual(Date.now());
      a.publish(delivery('survivor', 1));
      await heard.until(1);
      expect(heard.received[0]!.d.seq).toBe(1);
    });

    it('re-publishes what it could not send once its command connection is back', async () => {
      const prefix = newPrefix();
      const a = bus(prefix);
      const b = bus(prefix);
      const heard = collect(b);
      await b.subscribe('j:resent');
      await waitFor(() => a.ping());
      await killRedisClients(admin, `hwt-${prefix}`, 'normal');
      // Published while the connection is down (or going down): kept, then sent.
      for (let seq = 1; seq <= 5; seq++) a.publish(delivery('resent', seq));
      await heard.until(5);
      expect(new Set(heard.received.map((r) => r.d.seq))).toEqual(new Set([1, 2, 3, 4, 5]));
    });

    it('keeps serving its own process while Redis is unreachable, and reports not ready', async () => {
      // With the timers stopped, no reconnect (nor any timeout) can happen: the
      // subscribe settles on the failed first attempt alone, or never.
      vi.useFakeTimers({ toFake: ['setTimeout', 'setInterval'] });
      try {
        const b = bus(newPrefix(), { url: 'redis://127.0.0.1:1', maxUnsent: 2 });
        const own = collect(b);
        await b.subscribe('j:local');
        for (let seq = 1; seq <= 5; seq++) b.publish(delivery('local', seq));
        expect(own.received.map((r) => r.d.seq)).toEqual([1, 2, 3, 4, 5]);
        expect(await b.ping()).toBe(false);
      } finally {
        vi.useRealTimers();
      }
    });

    it('ignores malformed messages on its channels', async () => {
      const prefix = newPrefix();
      const b = bus(prefix);
      const heard = collect(b);
      await b.subscribe('j:noise');
      await admin.publish(`${prefix}j:noise`, 'no spaces here');
      await admin.publish(`${prefix}j:noise`, 'other 123 {not json');
      const a = bus(prefix);
      a.publish(delivery('noise', 1));
      await heard.until(1);
      expect(heard.received).toHaveLength(1);
    });
  });

  describe('RedisConnectionCounter', () => {
    const counters: RedisConnectionCounter[] = [];
    const connections: Redis[] = [];
    afterEach(async () => {
      await Promise.all(counters.splice(0).map((c) => c.close()));
      for (const c of connections.splice(0)) c.disconnect();
    });

    /** A counter as one hub process has it, on its own connection. */
    function counter(
      prefix: string,
      limit: number,
      aliveMs = 1_000,
    ): { counter: RedisConnectionCounter; redis: Redis } {
      prefixes.add(prefix);
      const redis = redisClient();
      connections.push(redis);
      const c = new RedisConnectionCounter({ redis, prefix, limit, aliveMs });
      counters.push(c);
      return { counter: c, redis };
    }

    /**
     * Two processes on a new prefix, the first holding `user`'s `limit` connections.
     * Refusals count again once the other process would have expired: 0.3 s here.
     */
    async function atLimitOnOne(user: string, limit: number, holderAliveMs = 100) {
      const prefix = newPrefix();
      const holder = counter(prefix, limit, holderAliveMs);
      const { counter: other } = counter(prefix, limit, 100);
      for (let i = 0; i < limit; i++) expect(await holder.counter.acquire(user)).toBe(true);
      return { holder, other };
    }

    it('validates its options', () => {
      expect(() => new RedisConnectionCounter({ redis: admin, limit: 0 })).toThrow(TypeError);
      expect(() => new RedisConnectionCounter({ redis: admin, limit: 1, heartbeatMs: 0 })).toThrow(TypeError);
      expect(() => new RedisConnectionCounter({ redis: admin, limit: 1, aliveMs: 0 })).toThrow(TypeError);
    });

    it('holds the limit across processes and frees a slot on release', async () => {
      const prefix = newPrefix();
      // Refusals count again once the other process would have expired: 0.3 s here.
      const { counter: a } = counter(prefix, 3, 100);
      const { counter: b } = counter(prefix, 3, 100);
      expect(await a.acquire('dana')).toBe(true);
      expect(await b.acquire('dana')).toBe(true);
      expect(await a.acquire('dana')).toBe(true);
      expect(await b.acquire('dana')).toBe(false);
      expect(await a.acquire('dana')).toBe(false);
      // Other users are counted apart.
      expect(await b.acquire('erin')).toBe(true);
      expect(await a.count('dana')).toBe(3);
      b.release('dana');
      await waitFor(async () => (await a.count('dana')) === 2);
      expect(await b.acquire('dana')).toBe(true);
    });

    it('admits exactly the limit when processes race', async () => {
      const prefix = newPrefix();
      const all = [1, 2, 3].map(() => counter(prefix, 5, 100).counter);
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => all[i % 3]!.acquire('frank')));
      expect(results.filter(Boolean)).toHaveLength(5);
    });

    it('forgets the counts of a process that stopped heartbeating', async () => {
      const { holder: dead, other: live } = await atLimitOnOne('gina', 2);
      expect(await live.acquire('gina')).toBe(false);
      // The process dies: no more heartbeats, no releases.
      dead.redis.disconnect();
      await waitFor(async () => (await live.count('gina')) === 0, 'the dead process forgotten', 3000);
      expect(await live.acquire('gina')).toBe(true);
    });

    it('admits a user refused because of a process just killed once its counts lapse', async () => {
      const { holder: dead, other: live } = await atLimitOnOne('ines', 2);
      // Killed: its clients reconnect to the live process at once, while its counts still count.
      dead.redis.disconnect();
      const reconnects = [live.acquire('ines'), live.acquire('ines'), live.acquire('ines')];
      expect((await Promise.all(reconnects)).filter(Boolean)).toHaveLength(2);
      expect(await live.count('ines')).toBe(2);
    });

    it('refuses after counting again while the other process is alive', async () => {
      const { holder, other: b } = await atLimitOnOne('jo', 1);
      const a = holder.counter;
      expect(await b.acquire('jo')).toBe(false);
      expect(await b.count('jo')).toBe(1);
      // Nothing was counted for the refusal: once a's connection ends, b admits one.
      a.release('jo');
      await waitFor(async () => (await b.count('jo')) === 0);
      expect(await b.acquire('jo')).toBe(true);
    });

    it('lets at most the limit of refusals of one user wait, and refuses its own excess at once', async () => {
      const { other: b } = await atLimitOnOne('kai', 1);
      const order: string[] = [];
      const note = (name: string) => (ok: boolean) => void order.push(`${name}:${ok}`);
      await Promise.all([
        b.acquire('kai').then(note('first')),
        b.acquire('kai').then(note('second')),
        b.acquire('kai').then(note('third')),
      ]);
      // The first waits to count again; the others find one refusal of kai waiting already.
      expect(order).toEqual(['second:false', 'third:false', 'first:false']);
    });

    it('ends a refusal that waits when it closes', async () => {
      // The holder renews for a minute: the refusal would wait for it.
      const { other: b } = await atLimitOnOne('lea', 1, 60_000);
      const refused = b.acquire('lea');
      await b.close();
      expect(await refused).toBe(false);
    });

    it('counts this process alone while Redis is unreachable', async () => {
      const redis = redisClient();
      connections.push(redis);
      const c = new RedisConnectionCounter({ redis, prefix: newPrefix(), limit: 2 });
      counters.push(c);
      redis.disconnect();
      expect(await c.acquire('hana')).toBe(true);
      expect(await c.acquire('hana')).toBe(true);
      expect(await c.acquire('hana')).toBe(false);
      c.release('hana');
      expect(await c.acquire('hana')).toBe(true);
    });
  });
});
