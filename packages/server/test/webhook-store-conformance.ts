/**
 * The webhooks part of the `Store` contract, run by `storeConformance` against
 * every store: deliveries written by `commit` with their events, claims as
 * leases, one job's deliveries in seq order, settling only by the lease holder.
 */
import type { EventKind, JobEvent } from '@headway/protocol';
import { FIXTURE_TIME, runningJob } from '@headway/test-helpers';
import { describe, expect, it } from 'vitest';
import type { JobWrite, Store } from '../src/store/store.js';
import type { WebhookRecord } from '../src/store/webhook-store.js';

const T0 = Date.parse(FIXTURE_TIME);
let n = 0;

function webhook(o: Partial<WebhookRecord> = {}): WebhookRecord {
  return {
    id: `wh_${String(++n).padStart(24, '0')}`,
    url: 'https://example.com/hook',
    events: ['completed', 'failed', 'cancelled'],
    owner: null,
    kind: null,
    secret: 'whsec_test',
    previousSecret: null,
    previousUntil: null,
    createdAt: T0,
    ...o,
  };
}

/** Extends `id` from `prevSeq` with one event per kind. */
function write(id: string, prevSeq: number, kinds: EventKind[], owner = 'alice', kind?: string): JobWrite {
  const events = kinds.map(
    (k, i) =>
      ({
        job: id,
        seq: prevSeq + i + 1,
        kind: k,
        data: k === 'progress' ? { percent: 10 } : {},
        at: FIXTURE_TIME,
      }) as JobEvent,
  );
  const state = { ...runningJob(id, prevSeq + kinds.length, { owner }), ...(kind ? { kind } : {}) };
  return { state, prevSeq, events, keys: [] };
}

const claimAll = (store: Store, owner: string, now = T0, skipWebhooks: string[] = []) =>
  store.webhooks.claimDeliveries({ now, leaseUntil: now + 60_000, owner, limit: 100, skipWebhooks });

const outcome = (status: 'succeeded' | 'failed' | 'pending', at = T0, nextAt = 0) => ({
  status,
  nextAt,
  attemptAt: at,
  code: status === 'succeeded' ? 200 : 500,
  error: status === 'succeeded' ? null : 'HTTP 500',
  durationMs: 3,
});

export function webhookStoreConformance(getStore: () => Store): void {
  describe('webhooks', () => {
    it('creates, lists, rotates and deletes webhooks', async () => {
      const store = getStore();
      const w = webhook({ owner: 'bob', kind: 'transcode', events: ['progress', 'completed'] });
      await store.webhooks.createWebhook(w);
      expect(await store.webhooks.listWebhooks()).toEqual([w]);
      expect(await store.webhooks.getWebhook(w.id)).toEqual(w);
      const rotated = await store.webhooks.rotateSecret(w.id, 'whsec_new', T0 + 1000);
      expect(rotated).toEqual({
        ...w,
        secret: 'whsec_new',
        previousSecret: 'whsec_test',
        previousUntil: T0 + 1000,
      });
      expect(await store.webhooks.rotateSecret('wh_missing', 'x', 0)).toBeNull();
      expect(await store.webhooks.deleteWebhook(w.id)).toBe(true);
      expect(await store.webhooks.deleteWebhook(w.id)).toBe(false);
      expect(await store.webhooks.getWebhook(w.id)).toBeNull();
    });

    it('commits a delivery with each event a webhook matches, and none for the others', async () => {
      const store = getStore();
      const all = webhook({ events: ['progress', 'completed'] });
      const bobs = webhook({ owner: 'bob' });
      const transcodes = webhook({ kind: 'transcode' });
      for (const w of [all, bobs, transcodes]) await store.webhooks.createWebhook(w);
      await store.commit([write('a1', 0, ['created', 'progress', 'completed'])]);
      await store.commit([write('b1', 0, ['created', 'completed'], 'bob', 'transcode')]);
      const claimed = await claimAll(store, 'p1');
      const seen = claimed.map(
        (d) => `${d.webhook === all.id ? 'all' : d.webhook === bobs.id ? 'bob' : 'kind'}:${d.job}:${d.seq}`,
      );
      expect(seen.sort()).toEqual(['all:a1:2', 'all:b1:2', 'bob:b1:2', 'kind:b1:2'].sort());
      const a = claimed.find((d) => d.job === 'a1')!;
      expect(a).toMatchObject({
        kind: 'progress',
        status: 'pending',
        attempts: 0,
        createdAt: T0,
        leaseOwner: 'p1',
      });
      expect(a.data).toEqual({ percent: 10 });
      expect((a.state as { id: string }).id).toBe('a1');
      expect(a.webhookRecord).toEqual(all);
    });

    it('refused commits leave no delivery behind', async () => {
      const store = getStore();
      await store.webhooks.createWebhook(webhook());
      await store.commit([write('c1', 0, ['created'])]);
      await expect(store.commit([write('c1', 0, ['created', 'completed'])])).rejects.toThrow();
      expect(await claimAll(store, 'p1')).toEqual([]);
    });

    it("hands out one job's deliveries in seq order, one at a time, and each to one claimer", async () => {
      const store = getStore();
      const w = webhook({ events: ['progress', 'completed'] });
      await store.webhooks.createWebhook(w);
      await store.commit([
        write('o1', 0, ['created', 'progress', 'progress']),
        write('o2', 0, ['created', 'progress']),
      ]);
      await store.commit([write('o1', 3, ['completed'])]);
      const first = await claimAll(store, 'p1');
      expect(first.map((d) => `${d.job}:${d.seq}`).sort()).toEqual(['o1:2', 'o2:2']);
      // Leased: another process finds nothing, and o1's later seqs wait for seq 2.
      expect(await claimAll(store, 'p2')).toEqual([]);
      const o1 = first.find((d) => d.job === 'o1')!;
      // Only the lease holder settles.
      await store.webhooks.settleDelivery(o1.id, 'p2', outcome('succeeded'));
      expect(await claimAll(store, 'p2')).toEqual([]);
      await store.webhooks.settleDelivery(o1.id, 'p1', outcome('succeeded'));
      const next = await claimAll(store, 'p2');
      expect(next.map((d) => `${d.job}:${d.seq}`)).toEqual(['o1:3']);
      // A failed attempt due later holds back the job's next seq until settled for good.
      await store.webhooks.settleDelivery(next[0]!.id, 'p2', outcome('pending', T0, T0 + 5000));
      expect(await claimAll(store, 'p3')).toEqual([]);
      const retried = await claimAll(store, 'p3', T0 + 5000);
      expect(retried.map((d) => `${d.job}:${d.seq}:${d.attempts}`)).toEqual(['o1:3:1']);
      await store.webhooks.settleDelivery(retried[0]!.id, 'p3', outcome('failed', T0 + 5000));
      expect((await claimAll(store, 'p3', T0 + 5000)).map((d) => `${d.job}:${d.seq}`)).toEqual(['o1:4']);
    });

    it('gives a delivery to another claimer once its lease ends, or when released', async () => {
      const store = getStore();
      await store.webhooks.createWebhook(webhook());
      await store.commit([write('l1', 0, ['created', 'completed'])]);
      const [d] = await claimAll(store, 'p1');
      expect(await claimAll(store, 'p2', T0 + 59_999)).toEqual([]);
      const [taken] = await claimAll(store, 'p2', T0 + 60_000);
      expect(taken!.id).toBe(d!.id);
      // The first claimer's late outcome is ignored.
      await store.webhooks.settleDelivery(d!.id, 'p1', outcome('succeeded'));
      await store.webhooks.releaseDeliveries([taken!.id], 'p2');
      const [again] = await claimAll(store, 'p3', T0 + 60_000);
      expect(again!.id).toBe(d!.id);
      expect(again!.status).toBe('pending');
    });

    it('skips the webhooks asked and lists deliveries most recent first', async () => {
      const store = getStore();
      const a = webhook();
      const b = webhook();
      await store.webhooks.createWebhook(a);
      await store.webhooks.createWebhook(b);
      await store.commit([write('s1', 0, ['created', 'completed']), write('s2', 0, ['created', 'failed'])]);
      const claimed = await claimAll(store, 'p1', T0, [a.id]);
      expect(claimed.every((d) => d.webhook === b.id)).toBe(true);
      expect(claimed).toHaveLength(2);
      await store.webhooks.settleDelivery(claimed[0]!.id, 'p1', outcome('succeeded', T0 + 10));
      await store.webhooks.settleDelivery(claimed[1]!.id, 'p1', outcome('failed', T0 + 20));
      const listed = await store.webhooks.listDeliveries(b.id, 10);
      expect(listed.map((d) => [d.id, d.status, d.attempts, d.lastCode])).toEqual([
        [claimed[1]!.id, 'failed', 1, 500],
        [claimed[0]!.id, 'succeeded', 1, 200],
      ]);
      expect(listed[0]).toMatchObject({ lastAttemptAt: T0 + 20, lastError: 'HTTP 500', lastDurationMs: 3 });
      expect(await store.webhooks.listDeliveries(b.id, 1)).toHaveLength(1);
      expect(await store.webhooks.pruneDeliveries(T0 + 15, 100)).toBe(1);
      expect((await store.webhooks.listDeliveries(b.id, 10)).map((d) => d.id)).toEqual([claimed[1]!.id]);
      // Deleting a webhook deletes its deliveries.
      await store.webhooks.deleteWebhook(a.id);
      expect(await claimAll(store, 'p2')).toEqual([]);
    });
  });
}
