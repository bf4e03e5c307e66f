import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@headway/protocol';
import { jobWrite, runningJob } from '@headway/test-helpers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Delivery } from '../src/delivery.js';
import { WriteConflict } from '../src/errors.js';
import { type Batch, GroupCommit } from '../src/hub/group-commit.js';
import { type Entry, JobCache } from '../src/hub/job-cache.js';
import { ObservedStore } from './observed-store.js';

let dir: string;
let store: ObservedStore;
let cache: JobCache;
let commits: GroupCommit;
/** Each published delivery, with the number of store commits made when it was published. */
let published: { d: Delivery; commitsBefore: number }[];
let batches: Batch[];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'headway-group-commit-'));
  store = new ObservedStore({ path: join(dir, 'headway.db') });
  await store.migrate();
  cache = new JobCache({
    store,
    metrics: undefined,
    cacheSize: 100,
    shared: false,
    isFollowed: () => false,
    isWaitedOn: () => false,
  });
  published = [];
  batches = [];
  commits = new GroupCommit({
    store,
    metrics: undefined,
    cache,
    beforeCommit: (batch) => batches.push(batch),
    publish: (d) => published.push({ d, commitsBefore: store.commits.length }),
  });
});

afterEach(async () => {
  await commits.flush();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A job stored at seq 1 (as another process would have written it), loaded into the cache. */
async function storedJob(id: string, parent: string | null = null): Promise<Entry> {
  const created = jobWrite(id, 0, 1);
  await store.commit([{ ...created, state: runningJob(id, 1, { parent }) }]);
  store.commits = [];
  return (await cache.load(id))!;
}

/** Add `count` progress events after the entry's head to the open batch; resolves when they are stored. */
function report(entry: Entry, count: number): Promise<void> {
  const id = entry.head.id;
  const prevSeq = entry.head.seq;
  const write = commits.addWrite(id, entry, prevSeq, false);
  const { events } = jobWrite(id, prevSeq, prevSeq + count);
  write.events.push(...events);
  write.states.push(...events.map((e) => runningJob(id, e.seq, { parent: entry.head.parent })));
  entry.head = write.states[write.states.length - 1]!;
  return commits.whenCommitted(write);
}

function publishedSeqs(): string[] {
  return published.map(({ d }) => `${d.job}#${d.seq}`);
}

describe('GroupCommit', () => {
  it('commits the writes of one tick in one store commit, then answers and publishes', async () => {
    const a = await storedJob('a');
    const b = await storedJob('b');
    await Promise.all([report(a, 2), report(b, 1)]);
    expect(batches).toHaveLength(1);
    expect(store.commits).toHaveLength(1);
    expect(store.commits[0]!.map((w) => [w.state.id, w.prevSeq, w.events.length])).toEqual([
      ['a', 1, 2],
      ['b', 1, 1],
    ]);
    expect(publishedSeqs()).toEqual(['a#2', 'a#3', 'b#2']);
    expect(published.every(({ commitsBefore }) => commitsBefore === 1)).toBe(true);
    expect([a.committed.seq, b.committed.seq, a.inFlight, b.inFlight]).toEqual([3, 2, 0, 0]);
  });

  it('a conflict round: only the raced job fails, with WriteConflict; the rest is committed', async () => {
    const a = await storedJob('a');
    const b = await storedJob('b');
    // Another process moves `a` on after this one loaded it.
    await store.commit([jobWrite('a', 1, 2, 'other process')]);
    const [ra, rb] = await Promise.allSettled([report(a, 1), report(b, 1)]);
    expect(ra.status === 'rejected' && ra.reason).toBeInstanceOf(WriteConflict);
    expect(rb.status).toBe('fulfilled');
    expect((await store.getJob('a'))!.message).toBe('other process');
    expect((await store.getJob('b'))!.seq).toBe(2);
    expect(publishedSeqs()).toEqual(['b#2']);
    // The raced entry ran ahead of the store: it is never built on again.
    expect(a.stale).toBe(true);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toBe(b);
  });

  it('a child and the parent its roll-up ties it to fail together; an unrelated job is committed', async () => {
    const parent = await storedJob('p');
    const child = await storedJob('c', 'p');
    const other = await storedJob('u');
    await store.commit([{ ...jobWrite('c', 1, 2), state: runningJob('c', 2, { parent: 'p' }) }]);
    const results = await Promise.allSettled([report(child, 1), report(parent, 1), report(other, 1)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
    expect((await store.getJob('p'))!.seq).toBe(1);
    expect(publishedSeqs()).toEqual(['u#2']);
  });

  it('a store that is down fails every write of the batch, retryable, and publishes nothing', async () => {
    const a = await storedJob('a');
    const b = await storedJob('b');
    store.failNext = true;
    const results = await Promise.allSettled([report(a, 1), report(b, 1)]);
    for (const r of results) {
      expect(r.status === 'rejected' && r.reason).toMatchObject({
        code: ErrorCode.STORE_UNAVAILABLE,
        retryAfter: 1,
      });
    }
    expect(published).toEqual([]);
    expect((await store.getJob('a'))!.seq).toBe(1);
  });

  it('batches commit one after the other, in the order they were closed', async () => {
    const a = await storedJob('a');
    const first = report(a, 1);
    // Closes the first batch; the second opens while the first is still being committed.
    const flushed = commits.flush();
    const second = report(a, 1);
    await Promise.all([first, flushed, second]);
    expect(store.commits.map((c) => c[0]!.prevSeq)).toEqual([1, 2]);
    expect(publishedSeqs()).toEqual(['a#2', 'a#3']);
  });
});
