/**
 * The contract every `Bus` implementation must meet, as a vitest suite. Each
 * implementation's test file calls `busConformance` with a factory of a fresh
 * "deployment"; `peer()` gives the bus of another process of the same deployment
 * (null for a bus that serves one process only, whose cross-process cases are skipped).
 */
import type { JobEvent, JobState } from '@headway/protocol';
import { receivedBefore, waitFor } from '@headway/test-helpers';
import { afterEach, describe, expect, it } from 'vitest';
import type { Bus } from '../src/bus/bus.js';
import { Delivery } from '../src/delivery.js';

export interface BusFixture {
  /** This process's bus. */
  bus: Bus;
  /** A bus of another process sharing the medium, or null when the bus cannot have one. */
  peer: () => Bus | null;
  /** Two processes of another deployment on the same medium (another prefix), or null. */
  stranger: () => { bus: Bus; peer: Bus } | null;
  cleanup: () => Promise<void>;
}

const T0 = Date.parse('2024-05-01T12:00:00.000Z');

/** A delivery of `job` at `seq`, owned by `owner`. */
export function delivery(job: string, seq: number, owner = 'alice'): Delivery {
  const at = new Date(T0 + seq).toISOString();
  const event: JobEvent = { job, seq, kind: 'progress', data: { percent: seq, message: `step ${seq}` }, at };
  const state: JobState = {
    id: job,
    owner,
    name: job,
    parent: null,
    status: 'running',
    progress: { percent: seq },
    stage: null,
    stages: [],
    message: `step ${seq}`,
    eta: null,
    metadata: { tag: 'ünïcødé ✓' },
    result: null,
    error: null,
    control: { cancelRequested: false, paused: false },
    children: null,
    public: false,
    createdAt: new Date(T0).toISOString(),
    updatedAt: at,
    startedAt: new Date(T0).toISOString(),
    finishedAt: null,
    seq,
    kind: null,
  };
  return new Delivery(event, state);
}

/** Collects what a bus hands to its handler. */
export function collect(bus: Bus): {
  received: { d: Delivery; sentAt?: number }[];
  until: (n: number, timeoutMs?: number) => Promise<void>;
} {
  const received: { d: Delivery; sentAt?: number }[] = [];
  bus.onDelivery((d, sentAt) => received.push({ d, sentAt }));
  return {
    received,
    async until(n, timeoutMs) {
      await waitFor(() => received.length >= n, `${n} deliveries`, timeoutMs);
    },
  };
}

type Collector = ReturnType<typeof collect>;

/**
 * Waits for a message that should not come to have come: a sentinel published
 * by `bus` after the deliveries under test reaches `peer` after them (one
 * connection, in order). The sentinel is removed from what the collector received.
 */
async function settle(bus: Bus, peer: Bus, collector: Collector): Promise<void> {
  const sentinel = delivery(`sentinel-${Math.random()}`, 1);
  await peer.subscribe(`j:${sentinel.job}`);
  const isSentinel = (r: { d: Delivery }) => r.d.job === sentinel.job;
  await receivedBefore(
    () => collector.received,
    isSentinel,
    () => bus.publish(sentinel),
  );
  // A process subscribed to several of the sentinel's topics hears it on each.
  for (
    let i = collector.received.findIndex(isSentinel);
    i !== -1;
    i = collector.received.findIndex(isSentinel)
  ) {
    collector.received.splice(i, 1);
  }
  peer.unsubscribe(`j:${sentinel.job}`);
}

export function busConformance(name: string, factory: () => Promise<BusFixture>): void {
  describe(name, () => {
    let fixture: BusFixture | null = null;
    const open = async () => {
      fixture = await factory();
      return fixture;
    };
    afterEach(async () => {
      await fixture?.cleanup();
      fixture = null;
    });

    it('hands a published delivery to its own process at once, the same object, without sentAt', async () => {
      const { bus } = await open();
      const { received } = collect(bus);
      const d = delivery('job-1', 1);
      bus.publish(d);
      expect(received).toHaveLength(1);
      expect(received[0]!.d).toBe(d);
      expect(received[0]!.sentAt).toBeUndefined();
    });

    it('subscribes and unsubscribes topics, and answers ping', async () => {
      const { bus } = await open();
      await expect(bus.subscribe('j:job-1')).resolves.toBeUndefined();
      await expect(bus.subscribe('u:alice')).resolves.toBeUndefined();
      await expect(bus.subscribe('*')).resolves.toBeUndefined();
      bus.unsubscribe('j:job-1');
      bus.unsubscribe('u:alice');
      bus.unsubscribe('*');
      // Unsubscribing what is not subscribed is harmless.
      bus.unsubscribe('j:never');
      expect(await bus.ping()).toBe(true);
    });

    it('stops handing deliveries once closed', async () => {
      const { bus } = await open();
      const { received } = collect(bus);
      await bus.close();
      bus.publish(delivery('job-1', 1));
      expect(received).toHaveLength(0);
    });

    describe('across processes', () => {
      const cross = async () => {
        const f = await open();
        const peer = f.peer();
        return peer ? { ...f, peer } : null;
      };

      it('carries a delivery to a process subscribed to its job, with equal event, state and bytes', async (ctx) => {
        const f = await cross();
        if (!f) return ctx.skip();
        const other = collect(f.peer);
        await f.peer.subscribe('j:job-x');
        const d = delivery('job-x', 7);
        const before = Date.now();
        f.bus.publish(d);
        await other.until(1);
        const got = other.received[0]!;
        expect(got.d.event).toEqual(d.event);
        expect(got.d.state).toEqual(d.state);
        expect(got.d.native.equals(d.native)).toBe(true);
        expect(got.sentAt).toBeGreaterThanOrEqual(before - 1);
        expect(got.sentAt).toBeLessThanOrEqual(Date.now());
        expect(got.d.terminal).toBe(false);
        expect(got.d.collapsible).toBe(true);
      });

      it('carries a user topic (that user only) and the all topic (everything)', async (ctx) => {
        const f = await cross();
        if (!f) return ctx.skip();
        const other = collect(f.peer);
        await f.peer.subscribe('u:bob');
        f.bus.publish(delivery('a-1', 1, 'alice'));
        f.bus.publish(delivery('b-1', 1, 'bob'));
        await settle(f.bus, f.peer, other);
        expect(other.received.map((r) => r.d.job)).toEqual(['b-1']);

        const all = collect(f.peer);
        f.peer.unsubscribe('u:bob');
        await f.peer.subscribe('*');
        f.bus.publish(delivery('a-2', 1, 'alice'));
        f.bus.publish(delivery('b-2', 1, 'bob'));
        await all.until(2);
        expect(all.received.map((r) => r.d.job)).toEqual(['a-2', 'b-2']);
      });

      it('keeps the order of one job, and sends nothing to a process that does not listen', async (ctx) => {
        const f = await cross();
        if (!f) return ctx.skip();
        const other = collect(f.peer);
        const own = collect(f.bus);
        await f.peer.subscribe('j:ordered');
        for (let seq = 1; seq <= 200; seq++) f.bus.publish(delivery('ordered', seq));
        f.bus.publish(delivery('unheard', 1));
        await other.until(200);
        await settle(f.bus, f.peer, other);
        expect(other.received.map((r) => r.d.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
        // Each delivery reached the publishing process once (its own messages are not echoed back).
        expect(own.received.filter((r) => r.d.job === 'ordered')).toHaveLength(200);
      });

      it('stops carrying a topic after unsubscribe', async (ctx) => {
        const f = await cross();
        if (!f) return ctx.skip();
        const other = collect(f.peer);
        await f.peer.subscribe('j:gone');
        f.bus.publish(delivery('gone', 1));
        await other.until(1);
        f.peer.unsubscribe('j:gone');
        // The unsubscribe is in effect once a later subscribe on the same connection is.
        await f.peer.subscribe('j:sync');
        f.bus.publish(delivery('gone', 2));
        await settle(f.bus, f.peer, other);
        expect(other.received.filter((r) => r.d.job === 'gone').map((r) => r.d.seq)).toEqual([1]);
      });

      it('keeps deployments apart', async (ctx) => {
        const f = await cross();
        const stranger = f?.stranger();
        if (!f || !stranger) return ctx.skip();
        const heard = collect(stranger.bus);
        await stranger.bus.subscribe('j:private');
        await stranger.bus.subscribe('*');
        f.bus.publish(delivery('private', 1));
        // A second subscriber of the deployment proves the message was sent.
        const other = collect(f.peer);
        await f.peer.subscribe('j:private');
        f.bus.publish(delivery('private', 2));
        await other.until(1);
        // Both were sent before the stranger's sentinel: had either reached it, it would be there first.
        await settle(stranger.peer, stranger.bus, heard);
        expect(heard.received).toHaveLength(0);
      });
    });
  });
}
