/**
 * The contract every `Store` implementation must meet, as a vitest suite. Each
 * implementation's test file calls `storeConformance` with a factory for a fresh,
 * empty store; the suite only talks to the `Store` interface.
 */
import type { JobEvent, JobState, JobStatus } from '@headway/protocol';
import { FIXTURE_TIME, runningJob } from '@headway/test-helpers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Estimator, estimatorOf, withEstimator } from '../src/state/estimator.js';
import { type KindSummary, learn } from '../src/state/history.js';
import { type JobWrite, type Store, StoreConflictError } from '../src/store/store.js';
import { webhookStoreConformance } from './webhook-store-conformance.js';

export interface StoreFixture {
  store: Store;
  cleanup: () => Promise<void>;
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const T0 = Date.parse(FIXTURE_TIME);

const iso = (ms: number) => new Date(ms).toISOString();

/** A complete job state at seq 1, not yet started; `overrides` replace individual fields. */
function jobState(id: string, overrides: Partial<JobState> = {}): JobState {
  const updatedAt = overrides.updatedAt ?? iso(T0);
  return runningJob(id, 1, {
    name: `job ${id}`,
    progress: { percent: 0 },
    createdAt: updatedAt,
    updatedAt,
    startedAt: null,
    ...overrides,
  });
}

function progressEvent(job: string, seq: number, at: number): JobEvent {
  return { job, seq, kind: 'progress', data: { percent: seq, message: `step ${seq}` }, at: iso(at) };
}

interface CreateOptions {
  owner?: string;
  name?: string;
  kind?: string | null;
  /** ms since epoch; defaults to the earlier of `updatedAt` and `eventsAt`. */
  createdAt?: number;
  parent?: string | null;
  status?: JobStatus;
  /** ms since epoch */
  updatedAt?: number;
  /** ms since epoch, for a finished job */
  finishedAt?: number | null;
  /** Number of events in the log (seq 1 … n). */
  events?: number;
  /** Time of the events, ms since epoch; defaults to `updatedAt`. */
  eventsAt?: number;
  keys?: string[];
}

/** Creates a job with `events` progress events in one commit and returns its state. */
async function createJob(store: Store, id: string, o: CreateOptions = {}): Promise<JobState> {
  const n = o.events ?? 1;
  const updatedAt = o.updatedAt ?? T0;
  const eventsAt = o.eventsAt ?? updatedAt;
  const state = jobState(id, {
    owner: o.owner ?? 'alice',
    name: o.name ?? id,
    kind: o.kind ?? null,
    parent: o.parent ?? null,
    status: o.status ?? 'running',
    updatedAt: iso(updatedAt),
    createdAt: iso(o.createdAt ?? Math.min(updatedAt, eventsAt)),
    finishedAt: o.finishedAt == null ? null : iso(o.finishedAt),
    progress: { percent: n },
    seq: n,
  });
  const events = Array.from({ length: n }, (_, i) => progressEvent(id, i + 1, eventsAt));
  const keys = (o.keys ?? []).map((key, i) => ({ key, seq: Math.min(n, i + 1) }));
  await store.commit([{ state, prevSeq: 0, events, keys }]);
  return state;
}

async function expectConflict(promise: Promise<unknown>, ids: string[]): Promise<StoreConflictError> {
  const err = await promise.then(
    () => {
      throw new Error('expected the commit to be refused');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreConflictError);
  const conflict = err as StoreConflictError;
  expect(conflict.code).toBe('HW_STORE_CONFLICT');
  expect([...conflict.jobs].sort()).toEqual([...ids].sort());
  return conflict;
}

/** Pages through `listJobs` until the end and returns every job id in order. */
async function listAll(store: Store, query: Omit<Parameters<Store['listJobs']>[0], 'cursor'>) {
  const ids: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await store.listJobs({ ...query, cursor });
    expect(page.jobs.length).toBeLessThanOrEqual(query.limit);
    ids.push(...page.jobs.map((j) => j.id));
    cursor = page.next;
    pages++;
    expect(pages).toBeLessThan(1000);
  } while (cursor !== undefined);
  return { ids, pages };
}

export function storeConformance(name: string, makeStore: () => Promise<StoreFixture>): void {
  describe(name, () => {
    let fixture: StoreFixture;
    let store: Store;

    beforeEach(async () => {
      fixture = await makeStore();
      store = fixture.store;
      await store.migrate();
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    webhookStoreConformance(() => store);

    it('has a kind', () => {
      expect(typeof store.kind).toBe('string');
      expect(store.kind.length).toBeGreaterThan(0);
    });

    describe('jobs', () => {
      it('creates a job with prevSeq 0 and reads the same state back', async () => {
        const state = jobState('j1', {
          owner: 'bob',
          status: 'running',
          progress: { percent: 42.5, current: 425, total: 1000, unit: 'bytes' },
          stage: { name: 'encode', index: 1, count: 2, percent: 85 },
          stages: [
            { name: 'download', weight: 1, startedAt: iso(T0 - 2000), endedAt: iso(T0 - 1000) },
            { name: 'encode', weight: 3, startedAt: iso(T0 - 1000), endedAt: null },
          ],
          message: 'encoding – 1080p ✓',
          eta: { seconds: 12.5, confidence: 0.7, rate: 33.3, unit: 'bytes' },
          metadata: { file: 'a.mp4', tags: ['x', 'y'], nested: { n: 1, ok: true, nothing: null } },
          control: { cancelRequested: true, paused: false },
          public: true,
          startedAt: iso(T0 - 2000),
          seq: 2,
          kind: 'transcode',
          stalled: { since: iso(T0 - 500) },
        });
        await store.commit([
          {
            state,
            prevSeq: 0,
            events: [progressEvent('j1', 1, T0 - 2000), progressEvent('j1', 2, T0)],
            keys: [],
          },
        ]);
        expect(await store.getJob('j1')).toEqual(state);
        expect(await store.getJob('missing')).toBeNull();
      });

      it('updates a job with the stored seq as prevSeq', async () => {
        const created = await createJob(store, 'j1', { events: 1 });
        const next = jobState('j1', {
          seq: 3,
          status: 'completed',
          progress: { percent: 100 },
          result: { url: 'https://example.test/out.mp4' },
          updatedAt: iso(T0 + 5000),
          finishedAt: iso(T0 + 5000),
        });
        await store.commit([
          {
            state: next,
            prevSeq: created.seq,
            events: [
              progressEvent('j1', 2, T0 + 1000),
              {
                job: 'j1',
                seq: 3,
                kind: 'completed',
                data: { result: { url: 'https://example.test/out.mp4' } },
                at: iso(T0 + 5000),
              },
            ],
            keys: [],
          },
        ]);
        expect(await store.getJob('j1')).toEqual(next);
        expect((await store.getEvents('j1', 0, 100)).map((e) => e.seq)).toEqual([1, 2, 3]);
      });

      it('keeps failed and null fields intact', async () => {
        const state = jobState('f1', {
          status: 'failed',
          error: { code: 'E_DISK', message: 'disk full', retryable: true, stage: 'encode' },
          children: { total: 3, completed: 1, failed: 1, cancelled: 0, percentSum: 150 },
          finishedAt: iso(T0),
          result: null,
        });
        await store.commit([{ state, prevSeq: 0, events: [progressEvent('f1', 1, T0)], keys: [] }]);
        expect(await store.getJob('f1')).toEqual(state);
      });

      it('getJobs returns the existing jobs among the ids', async () => {
        await createJob(store, 'a');
        await createJob(store, 'b');
        await createJob(store, 'c');
        const jobs = await store.getJobs(['c', 'missing', 'a']);
        expect(jobs.map((j) => j.id).sort()).toEqual(['a', 'c']);
        expect(await store.getJobs([])).toEqual([]);
      });

      it('applies several writes of one batch, including two for the same job in order', async () => {
        const a1 = jobState('a', { seq: 1 });
        const a2 = jobState('a', { seq: 2, progress: { percent: 50 } });
        const b1 = jobState('b', { seq: 1, owner: 'bob' });
        await store.commit([
          { state: a1, prevSeq: 0, events: [progressEvent('a', 1, T0)], keys: [] },
          { state: b1, prevSeq: 0, events: [progressEvent('b', 1, T0)], keys: [{ key: 'kb', seq: 1 }] },
          { state: a2, prevSeq: 1, events: [progressEvent('a', 2, T0)], keys: [{ key: 'ka', seq: 2 }] },
        ]);
        expect(await store.getJob('a')).toEqual(a2);
        expect(await store.getJob('b')).toEqual(b1);
        expect((await store.getEvents('a', 0, 10)).map((e) => e.seq)).toEqual([1, 2]);
        expect(await store.findKeys('a', ['ka'])).toEqual(new Map([['ka', 2]]));
      });

      it('accepts an empty batch', async () => {
        await expect(store.commit([])).resolves.toBeUndefined();
      });
    });

    describe('events', () => {
      it('round-trip with kind, data, time and order', async () => {
        const events: JobEvent[] = [
          {
            job: 'e1',
            seq: 1,
            kind: 'created',
            data: {
              owner: 'alice',
              name: 'transcode',
              parent: null,
              stages: [{ name: 'encode', weight: 1 }],
              metadata: { source: 's3://bucket/key' },
              public: false,
            },
            at: iso(T0),
          },
          { job: 'e1', seq: 2, kind: 'stage', data: { name: 'encode' }, at: iso(T0 + 1) },
          {
            job: 'e1',
            seq: 3,
            kind: 'progress',
            data: { percent: 12.5, current: 125, total: 1000, unit: 'frames' },
            at: iso(T0 + 2),
          },
          {
            job: 'e1',
            seq: 4,
            kind: 'log',
            data: { message: 'line "quoted" \n next – ünïcödé', level: 'warn' },
            at: iso(T0 + 3),
          },
          {
            job: 'e1',
            seq: 5,
            kind: 'metadata',
            data: { metadata: { a: [1, 2, { b: null }] } },
            at: iso(T0 + 4),
          },
          {
            job: 'e1',
            seq: 6,
            kind: 'failed',
            data: { error: { code: 'E', message: 'boom', retryable: false, stage: null } },
            at: iso(T0 + 5),
          },
        ];
        const state = jobState('e1', { seq: 6, status: 'failed', finishedAt: iso(T0 + 5) });
        await store.commit([{ state, prevSeq: 0, events, keys: [] }]);
        expect(await store.getEvents('e1', 0, 100)).toEqual(events);
      });

      it('getEvents honours since and limit', async () => {
        await createJob(store, 'e1', { events: 5 });
        await createJob(store, 'e2', { events: 2 });
        const seqs = async (since: number, limit: number) =>
          (await store.getEvents('e1', since, limit)).map((e) => e.seq);
        expect(await seqs(0, 2)).toEqual([1, 2]);
        expect(await seqs(2, 10)).toEqual([3, 4, 5]);
        expect(await seqs(3, 1)).toEqual([4]);
        expect(await seqs(5, 10)).toEqual([]);
        expect(await seqs(0, 0)).toEqual([]);
        expect(await store.getEvents('missing', 0, 10)).toEqual([]);
        for (const e of await store.getEvents('e1', 0, 10)) expect(e.job).toBe('e1');
      });
    });

    describe('conflicts', () => {
      it('refuses a stale prevSeq and changes nothing', async () => {
        await createJob(store, 'c1', { events: 3 });
        const before = await store.getJob('c1');
        const stale = jobState('c1', { seq: 3, progress: { percent: 99 } });
        await expectConflict(
          store.commit([{ state: stale, prevSeq: 1, events: [progressEvent('c1', 2, T0)], keys: [] }]),
          ['c1'],
        );
        expect(await store.getJob('c1')).toEqual(before);
        expect((await store.getEvents('c1', 0, 10)).map((e) => e.data)).toEqual([
          { percent: 1, message: 'step 1' },
          { percent: 2, message: 'step 2' },
          { percent: 3, message: 'step 3' },
        ]);
      });

      it('refuses to create a job that exists', async () => {
        const original = await createJob(store, 'c1', { owner: 'alice' });
        await expectConflict(
          store.commit([
            {
              state: jobState('c1', { owner: 'mallory' }),
              prevSeq: 0,
              events: [progressEvent('c1', 1, T0)],
              keys: [],
            },
          ]),
          ['c1'],
        );
        expect(await store.getJob('c1')).toEqual(original);
      });

      it('refuses an update of a job that does not exist', async () => {
        await expectConflict(
          store.commit([
            {
              state: jobState('ghost', { seq: 2 }),
              prevSeq: 1,
              events: [progressEvent('ghost', 2, T0)],
              keys: [],
            },
          ]),
          ['ghost'],
        );
        expect(await store.getJob('ghost')).toBeNull();
        expect(await store.getEvents('ghost', 0, 10)).toEqual([]);
      });

      it('applies nothing of a batch with one conflicting write', async () => {
        await createJob(store, 'existing', { events: 2 });
        const good: JobWrite = {
          state: jobState('fresh', { seq: 1 }),
          prevSeq: 0,
          events: [progressEvent('fresh', 1, T0)],
          keys: [{ key: 'k-fresh', seq: 1 }],
        };
        const goodUpdate: JobWrite = {
          state: jobState('existing', { seq: 3, progress: { percent: 3 } }),
          prevSeq: 2,
          events: [progressEvent('existing', 3, T0)],
          keys: [{ key: 'k-existing', seq: 3 }],
        };
        const bad: JobWrite = {
          state: jobState('other', { seq: 5 }),
          prevSeq: 4,
          events: [progressEvent('other', 5, T0)],
          keys: [],
        };
        const conflict = await expectConflict(store.commit([good, goodUpdate, bad]), ['other']);
        expect(conflict.jobs).not.toContain('fresh');
        expect(await store.getJob('fresh')).toBeNull();
        expect(await store.getEvents('fresh', 0, 10)).toEqual([]);
        expect((await store.findKeys('fresh', ['k-fresh'])).size).toBe(0);
        expect((await store.getJob('existing'))?.seq).toBe(2);
        expect((await store.getEvents('existing', 0, 10)).map((e) => e.seq)).toEqual([1, 2]);
        expect((await store.findKeys('existing', ['k-existing'])).size).toBe(0);
        // The store is still usable after the rollback.
        await store.commit([good]);
        expect((await store.getJob('fresh'))?.seq).toBe(1);
      });

      it('names every conflicting job of the batch', async () => {
        await createJob(store, 'x');
        await createJob(store, 'y');
        await expectConflict(
          store.commit([
            { state: jobState('x'), prevSeq: 0, events: [progressEvent('x', 1, T0)], keys: [] },
            { state: jobState('ok'), prevSeq: 0, events: [progressEvent('ok', 1, T0)], keys: [] },
            { state: jobState('y', { seq: 8 }), prevSeq: 7, events: [progressEvent('y', 8, T0)], keys: [] },
          ]),
          ['x', 'y'],
        );
        expect(await store.getJob('ok')).toBeNull();
      });
    });

    describe('idempotency keys', () => {
      it('findKeys returns the seq of each known key of the job only', async () => {
        await createJob(store, 'k1', { events: 3, keys: ['a', 'b', 'c'] });
        await createJob(store, 'k2', { events: 1, keys: ['z'] });
        const found = await store.findKeys('k1', ['a', 'c', 'nope', 'z']);
        expect(found).toEqual(
          new Map([
            ['a', 1],
            ['c', 3],
          ]),
        );
        expect((await store.findKeys('k1', [])).size).toBe(0);
        expect((await store.findKeys('missing', ['a'])).size).toBe(0);
      });
    });

    describe('listJobs', () => {
      it('orders by updatedAt descending, then id descending', async () => {
        await createJob(store, 'a', { updatedAt: T0 });
        await createJob(store, 'b', { updatedAt: T0 + 2000 });
        await createJob(store, 'c', { updatedAt: T0 + 1000 });
        await createJob(store, 'd', { updatedAt: T0 + 1000 });
        const page = await store.listJobs({ limit: 10 });
        expect(page.jobs.map((j) => j.id)).toEqual(['b', 'd', 'c', 'a']);
        expect(page.next).toBeUndefined();
        expect(page.jobs[0]).toEqual(await store.getJob('b'));
      });

      it('filters by kind, with the other filters', async () => {
        for (const [id, owner, kind] of [
          ['k1', 'alice', 'transcode'],
          ['k2', 'alice', 'import'],
          ['k3', 'bob', 'transcode'],
          ['k4', 'alice', null],
        ] as const) {
          const state = jobState(id, { owner, kind });
          await store.commit([{ state, prevSeq: 0, events: [progressEvent(id, 1, T0)], keys: [] }]);
        }
        const ids = async (q: Omit<Parameters<Store['listJobs']>[0], 'limit'>) =>
          (await store.listJobs({ limit: 100, ...q })).jobs.map((j) => j.id).sort();
        expect(await ids({ kind: 'transcode' })).toEqual(['k1', 'k3']);
        expect(await ids({ kind: 'transcode', owner: 'alice' })).toEqual(['k1']);
        expect(await ids({ kind: 'none-such' })).toEqual([]);
      });

      it('filters by owner, status, parent and ids', async () => {
        await createJob(store, 'p', { owner: 'alice', status: 'running' });
        await createJob(store, 'a1', { owner: 'alice', status: 'completed', parent: 'p', finishedAt: T0 });
        await createJob(store, 'a2', { owner: 'alice', status: 'failed', parent: 'p', finishedAt: T0 });
        await createJob(store, 'a3', { owner: 'alice', status: 'queued' });
        await createJob(store, 'b1', { owner: 'bob', status: 'running', parent: 'p' });
        await createJob(store, 'b2', { owner: 'bob', status: 'paused' });
        const ids = async (q: Omit<Parameters<Store['listJobs']>[0], 'limit'>) =>
          (await store.listJobs({ limit: 100, ...q })).jobs.map((j) => j.id).sort();

        expect(await ids({})).toEqual(['a1', 'a2', 'a3', 'b1', 'b2', 'p']);
        expect(await ids({ owner: 'alice' })).toEqual(['a1', 'a2', 'a3', 'p']);
        expect(await ids({ owner: 'nobody' })).toEqual([]);
        expect(await ids({ status: ['running'] })).toEqual(['b1', 'p']);
        expect(await ids({ status: ['completed', 'failed', 'cancelled'] })).toEqual(['a1', 'a2']);
        expect(await ids({ parent: 'p' })).toEqual(['a1', 'a2', 'b1']);
        expect(await ids({ ids: ['a1', 'b2', 'missing'] })).toEqual(['a1', 'b2']);
        // An empty id list (a token entitled to no job) matches nothing, never everything.
        expect(await ids({ ids: [] })).toEqual([]);
        expect(await ids({ owner: 'alice', status: ['completed', 'queued'] })).toEqual(['a1', 'a3']);
        expect(await ids({ owner: 'bob', parent: 'p', status: ['running'], ids: ['b1', 'a1'] })).toEqual([
          'b1',
        ]);
      });

      it('pages with a cursor without duplicates or gaps', async () => {
        const expected: { id: string; at: number }[] = [];
        for (let i = 0; i < 23; i++) {
          // Groups of three share an updatedAt, so that paging must break ties on id.
          const at = T0 + Math.floor(i / 3) * 1000;
          const id = `job-${String(i).padStart(2, '0')}`;
          await createJob(store, id, { updatedAt: at, owner: i % 2 === 0 ? 'alice' : 'bob' });
          expected.push({ id, at });
        }
        expected.sort((x, y) => y.at - x.at || (x.id < y.id ? 1 : -1));

        const all = await listAll(store, { limit: 5 });
        expect(all.pages).toBe(5);
        expect(all.ids).toEqual(expected.map((e) => e.id));

        const one = await listAll(store, { limit: 1 });
        expect(one.ids).toEqual(expected.map((e) => e.id));

        const alice = await listAll(store, { owner: 'alice', limit: 4 });
        expect(alice.ids).toEqual(expected.filter((e) => Number(e.id.slice(4)) % 2 === 0).map((e) => e.id));
        expect(new Set(alice.ids).size).toBe(alice.ids.length);
      });

      it('has no next cursor when the last page is exactly full', async () => {
        for (let i = 0; i < 4; i++) await createJob(store, `j${i}`, { updatedAt: T0 + i });
        const first = await store.listJobs({ limit: 2 });
        expect(first.next).toBeDefined();
        const second = await store.listJobs({ limit: 2, cursor: first.next });
        expect(second.jobs.map((j) => j.id)).toEqual(['j1', 'j0']);
        expect(second.next).toBeUndefined();
      });

      it('searches a part of the id, name or owner in any case, taking % and _ literally', async () => {
        await createJob(store, 'video-1', { name: 'Transcode Lecture.mp4', owner: 'alice' });
        await createJob(store, 'video-2', { name: 'Transcode intro.mov', owner: 'bob' });
        await createJob(store, 'import-9', { name: 'Import 100% of rows_a', owner: 'Carol' });
        const ids = async (search: string, extra: Partial<Parameters<Store['listJobs']>[0]> = {}) =>
          (await store.listJobs({ limit: 100, search, ...extra })).jobs.map((j) => j.id).sort();
        expect(await ids('video-1')).toEqual(['video-1']);
        expect(await ids('VIDEO')).toEqual(['video-1', 'video-2']);
        expect(await ids('lecture')).toEqual(['video-1']);
        expect(await ids('carol')).toEqual(['import-9']);
        expect(await ids('100%')).toEqual(['import-9']);
        expect(await ids('s_a')).toEqual(['import-9']);
        expect(await ids('%')).toEqual(['import-9']);
        expect(await ids('_')).toEqual(['import-9']);
        expect(await ids('transcode', { owner: 'bob' })).toEqual(['video-2']);
        expect(await ids('nothing like it')).toEqual([]);
      });

      it('filters by kind and by creation and update time', async () => {
        await createJob(store, 'old', { kind: 'import', createdAt: T0 - DAY, updatedAt: T0 - DAY + MINUTE });
        await createJob(store, 'mid', { kind: 'transcode', createdAt: T0 - MINUTE, updatedAt: T0 });
        await createJob(store, 'new', { kind: 'import', createdAt: T0, updatedAt: T0 + MINUTE });
        await createJob(store, 'none', { createdAt: T0, updatedAt: T0 });
        const ids = async (q: Omit<Parameters<Store['listJobs']>[0], 'limit'>) =>
          (await store.listJobs({ limit: 100, ...q })).jobs.map((j) => j.id).sort();
        expect(await ids({ kind: 'import' })).toEqual(['new', 'old']);
        expect(await ids({ kind: 'transcode' })).toEqual(['mid']);
        expect(await ids({ kind: 'other' })).toEqual([]);
        expect(await ids({ createdAfter: T0 - MINUTE })).toEqual(['mid', 'new', 'none']);
        expect(await ids({ createdBefore: T0 })).toEqual(['mid', 'old']);
        expect(await ids({ createdAfter: T0 - MINUTE, createdBefore: T0 })).toEqual(['mid']);
        expect(await ids({ updatedAfter: T0 })).toEqual(['mid', 'new', 'none']);
        expect(await ids({ updatedBefore: T0 })).toEqual(['old']);
        expect(await ids({ kind: 'import', createdAfter: T0 - MINUTE })).toEqual(['new']);
        expect((await store.getJob('new'))?.kind).toBe('import');
      });

      it('orders by createdAt with order "created", and pages in that order', async () => {
        // Created in one order, updated in the reverse one.
        for (let i = 0; i < 7; i++) {
          await createJob(store, `c${i}`, {
            createdAt: T0 + Math.floor(i / 2) * 1000,
            updatedAt: T0 + DAY - i,
          });
        }
        const created = await listAll(store, { limit: 3, order: 'created' });
        expect(created.ids).toEqual(['c6', 'c5', 'c4', 'c3', 'c2', 'c1', 'c0']);
        const updated = await listAll(store, { limit: 3, order: 'updated' });
        expect(updated.ids).toEqual(['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6']);
      });

      it('counts the matching jobs per status, whatever the status filter and the page', async () => {
        await createJob(store, 'r1', { owner: 'alice', status: 'running' });
        await createJob(store, 'r2', { owner: 'alice', status: 'running', kind: 'import' });
        await createJob(store, 'f1', { owner: 'alice', status: 'failed', finishedAt: T0 });
        await createJob(store, 'f2', { owner: 'alice', status: 'failed', finishedAt: T0, kind: 'import' });
        await createJob(store, 'f3', { owner: 'bob', status: 'failed', finishedAt: T0 });
        const zero = { queued: 0, running: 0, paused: 0, completed: 0, failed: 0, cancelled: 0 };

        const page = await store.listJobs({ owner: 'alice', status: ['failed'], limit: 1, counts: true });
        expect(page.jobs).toHaveLength(1);
        expect(page.counts).toEqual({ ...zero, running: 2, failed: 2 });
        const next = await store.listJobs({
          owner: 'alice',
          status: ['failed'],
          limit: 1,
          counts: true,
          cursor: page.next,
        });
        expect(next.counts).toEqual(page.counts);
        expect((await store.listJobs({ limit: 10, counts: true, kind: 'import' })).counts).toEqual({
          ...zero,
          running: 1,
          failed: 1,
        });
        expect((await store.listJobs({ limit: 10, counts: true, search: 'nothing' })).counts).toEqual(zero);
        expect((await store.listJobs({ limit: 10 })).counts).toBeUndefined();
      });

      it('clamps the limit to 1…500', async () => {
        for (let i = 0; i < 3; i++) await createJob(store, `j${i}`, { updatedAt: T0 + i });
        expect((await store.listJobs({ limit: 0 })).jobs).toHaveLength(1);
        expect((await store.listJobs({ limit: -5 })).jobs).toHaveLength(1);
        expect((await store.listJobs({ limit: 10_000 })).jobs).toHaveLength(3);
      });
    });

    describe('descendants', () => {
      it('walks three levels, nearest first', async () => {
        await createJob(store, 'root');
        await createJob(store, 'a', { parent: 'root' });
        await createJob(store, 'b', { parent: 'root' });
        await createJob(store, 'a1', { parent: 'a' });
        await createJob(store, 'a2', { parent: 'a' });
        await createJob(store, 'b1', { parent: 'b' });
        await createJob(store, 'a1x', { parent: 'a1' });
        await createJob(store, 'unrelated');
        await createJob(store, 'unrelated-child', { parent: 'unrelated' });

        const ids = await store.descendants('root');
        expect([...ids].sort()).toEqual(['a', 'a1', 'a1x', 'a2', 'b', 'b1']);
        const depth: Record<string, number> = { a: 1, b: 1, a1: 2, a2: 2, b1: 2, a1x: 3 };
        for (let i = 1; i < ids.length; i++) {
          expect(depth[ids[i]]).toBeGreaterThanOrEqual(depth[ids[i - 1]]);
        }
        expect([...(await store.descendants('a'))].sort()).toEqual(['a1', 'a1x', 'a2']);
        expect(await store.descendants('a1x')).toEqual([]);
        expect(await store.descendants('missing')).toEqual([]);
      });
    });

    describe('deleteJobs', () => {
      it('removes jobs with their events and keys and leaves tombstones', async () => {
        await createJob(store, 'd1', { events: 3, keys: ['k1', 'k2'] });
        await createJob(store, 'd2', { events: 2, keys: ['k1'] });
        await createJob(store, 'keep', { events: 2, keys: ['k1'] });
        expect(await store.isDeleted('d1')).toBe(false);

        await store.deleteJobs(['d1', 'd2', 'never-existed']);

        for (const id of ['d1', 'd2']) {
          expect(await store.getJob(id)).toBeNull();
          expect(await store.getEvents(id, 0, 100)).toEqual([]);
          expect((await store.findKeys(id, ['k1', 'k2'])).size).toBe(0);
          expect(await store.isDeleted(id)).toBe(true);
        }
        expect(await store.isDeleted('never-existed')).toBe(true);
        expect(await store.isDeleted('keep')).toBe(false);
        expect((await store.getJob('keep'))?.seq).toBe(2);
        expect(await store.getEvents('keep', 0, 100)).toHaveLength(2);
        expect(await store.findKeys('keep', ['k1'])).toEqual(new Map([['k1', 1]]));
        expect((await store.listJobs({ limit: 100 })).jobs.map((j) => j.id)).toEqual(['keep']);
        await expect(store.deleteJobs([])).resolves.toBeUndefined();
      });
    });

    describe('sweep', () => {
      it('removes old events and old finished jobs, keeping recent and unfinished ones', async () => {
        const now = Date.now();
        const old = now - 10 * DAY;
        const recent = now - MINUTE;
        const cutoff = now - DAY;

        // 5 old finished jobs × 3 events: gone, with their keys.
        for (let i = 0; i < 5; i++) {
          await createJob(store, `old-${i}`, {
            status: 'completed',
            updatedAt: old,
            finishedAt: old,
            events: 3,
            keys: ['k'],
          });
        }
        // Finished recently: kept whole.
        await createJob(store, 'recent-done', {
          status: 'completed',
          updatedAt: recent,
          finishedAt: recent,
          events: 3,
          keys: ['k'],
        });
        // Unfinished for a long time: kept, but its old events (1–4) go and its recent ones (5–6) stay.
        const running = await createJob(store, 'running', { updatedAt: old, events: 4, keys: ['k'] });
        await store.commit([
          {
            state: { ...running, seq: 6, updatedAt: iso(recent) },
            prevSeq: 4,
            events: [progressEvent('running', 5, recent), progressEvent('running', 6, recent)],
            keys: [],
          },
        ]);
        // Finished recently after a long life: kept, its 2 old events go.
        await createJob(store, 'long-done', {
          status: 'completed',
          updatedAt: recent,
          finishedAt: recent,
          eventsAt: old,
          events: 2,
        });

        const result = await store.sweep({ eventsBefore: cutoff, jobsBefore: cutoff, batchSize: 2 });
        expect(result).toEqual({ jobs: 5, events: 15 + 4 + 2 });

        for (let i = 0; i < 5; i++) {
          expect(await store.getJob(`old-${i}`)).toBeNull();
          expect(await store.getEvents(`old-${i}`, 0, 100)).toEqual([]);
          expect((await store.findKeys(`old-${i}`, ['k'])).size).toBe(0);
        }
        expect((await store.getJob('recent-done'))?.seq).toBe(3);
        expect((await store.getEvents('recent-done', 0, 100)).map((e) => e.seq)).toEqual([1, 2, 3]);
        expect((await store.findKeys('recent-done', ['k'])).size).toBe(1);
        expect((await store.getJob('running'))?.seq).toBe(6);
        expect((await store.getEvents('running', 0, 100)).map((e) => e.seq)).toEqual([5, 6]);
        expect((await store.findKeys('running', ['k'])).size).toBe(1);
        expect(await store.getJob('long-done')).not.toBeNull();
        expect(await store.getEvents('long-done', 0, 100)).toEqual([]);

        expect(await store.sweep({ eventsBefore: cutoff, jobsBefore: cutoff, batchSize: 2 })).toEqual({
          jobs: 0,
          events: 0,
        });
      });

      it('removes tombstones older than jobsBefore only', async () => {
        await createJob(store, 'gone');
        await store.deleteJobs(['gone']);
        const now = Date.now();
        await store.sweep({ eventsBefore: now - DAY, jobsBefore: now - DAY, batchSize: 10 });
        expect(await store.isDeleted('gone')).toBe(true);
        await store.sweep({ eventsBefore: 0, jobsBefore: now + DAY, batchSize: 10 });
        expect(await store.isDeleted('gone')).toBe(false);
      });

      it('handles more rows than one batch', async () => {
        const old = Date.now() - 10 * DAY;
        await createJob(store, 'big', { updatedAt: old, events: 25 });
        const result = await store.sweep({ eventsBefore: Date.now(), jobsBefore: 0, batchSize: 4 });
        expect(result).toEqual({ jobs: 0, events: 25 });
        expect(await store.getEvents('big', 0, 100)).toEqual([]);
        expect((await store.getJob('big'))?.seq).toBe(25);
      });
    });

    describe('estimator', () => {
      const estimator: Estimator = {
        rate: { at: T0, percent: 40, current: 4, percentRate: 5, unitRate: 0.5, jitter: 0.1, samples: 2 },
        clockAt: T0,
        activeMs: 1500,
        stageActiveMs: 500,
        done: [{ name: 'fetch', ms: 1000, total: 10 }],
        lastReportAt: T0,
        gapLog: Math.log(250),
        gaps: 4,
      };

      it("keeps a job's estimator beside its state, out of the fields a reader sees", async () => {
        const state = withEstimator({ ...jobState('est', { status: 'running' }) }, estimator);
        await store.commit([{ state, prevSeq: 0, events: [progressEvent('est', 1, T0)], keys: [] }]);
        for (const read of [
          await store.getJob('est'),
          (await store.getJobs(['est']))[0],
          (await store.listJobs({ limit: 10 })).jobs[0],
        ]) {
          expect(read).toEqual(jobState('est', { status: 'running' }));
          expect(Object.keys(read!)).not.toContain('estimator');
          expect(estimatorOf(read!)).toEqual(estimator);
        }
      });

      it('reads a state stored without an estimator as one without', async () => {
        await store.commit([
          { state: jobState('plain'), prevSeq: 0, events: [progressEvent('plain', 1, T0)], keys: [] },
        ]);
        expect(estimatorOf((await store.getJob('plain'))!)).toBeNull();
      });
    });

    describe('kind summaries', () => {
      const first: KindSummary = learn(null, {
        totalMs: 10_000,
        stages: [
          { name: 'fetch', ms: 2000, total: 1e6 },
          { name: 'encode', ms: 8000 },
        ],
        gapMs: 200,
      });
      const second = learn(first, { totalMs: 20_000, stages: [{ name: 'encode', ms: 20_000 }] });

      it('has none for a kind never learned', async () => {
        expect(await store.getKindSummary('never-seen')).toBeNull();
      });

      it('creates a summary at version 1 and updates it only from the version read', async () => {
        expect(await store.saveKindSummary('transcode', first, 0)).toBe(true);
        expect(await store.getKindSummary('transcode')).toEqual({ summary: first, version: 1 });
        // Another writer created it first.
        expect(await store.saveKindSummary('transcode', second, 0)).toBe(false);
        expect(await store.saveKindSummary('transcode', second, 1)).toBe(true);
        // A stale version changes nothing.
        expect(await store.saveKindSummary('transcode', first, 1)).toBe(false);
        expect(await store.getKindSummary('transcode')).toEqual({ summary: second, version: 2 });
      });

      it('keeps kinds apart', async () => {
        await store.saveKindSummary('a', first, 0);
        await store.saveKindSummary('b', second, 0);
        expect((await store.getKindSummary('a'))?.summary).toEqual(first);
        expect((await store.getKindSummary('b'))?.summary).toEqual(second);
      });

      it('lets one of two racing writers win', async () => {
        await store.saveKindSummary('race', first, 0);
        const results = await Promise.all([
          store.saveKindSummary('race', second, 1),
          store.saveKindSummary('race', second, 1),
        ]);
        expect(results.filter(Boolean)).toHaveLength(1);
        expect((await store.getKindSummary('race'))?.version).toBe(2);
      });
    });

    describe('lifecycle', () => {
      it('answers ping', async () => {
        expect(await store.ping()).toBe(true);
      });

      it('migrate is idempotent', async () => {
        await createJob(store, 'm1');
        await store.migrate();
        expect((await store.getJob('m1'))?.id).toBe('m1');
      });

      it('close is idempotent', async () => {
        await store.close();
        await expect(store.close()).resolves.toBeUndefined();
      });
    });
  });
}
