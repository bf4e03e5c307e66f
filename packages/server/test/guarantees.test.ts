/**
 * The REST side of the design guarantees: 1 (gapless seq), 7 (isolation) and
 * 8 (acknowledged means durable; a retried publish is applied once).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@headway/protocol';
import { startHub, type TestHub } from '@headway/test-helpers';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/store/sqlite.js';

let n = 0;
const uid = (prefix = 'job') => `${prefix}-${process.pid}-${++n}`;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Everything a test opened, closed in `afterEach` even when the test failed. */
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function hubForTest(options: Parameters<typeof startHub>[0] = {}): Promise<TestHub> {
  const hub = await startHub(options);
  cleanups.push(() => hub.close());
  return hub;
}

async function createJob(hub: TestHub, owner = 'alice'): Promise<string> {
  const res = await hub.request('POST', '/v1/jobs', { id: uid(), owner });
  expect(res.status).toBe(201);
  return res.body.id;
}

async function seqsOf(hub: TestHub, id: string): Promise<number[]> {
  const res = await hub.request('GET', `/v1/jobs/${id}/events?limit=1000`);
  expect(res.status).toBe(200);
  return res.body.events.map((e: { seq: number }) => e.seq);
}

describe('guarantee 1: gapless seq per job', () => {
  it('sequences 50 concurrent publishes to one job as 1..N without a gap', async () => {
    const hub = await hubForTest();
    const id = await createJob(hub);
    const responses = await Promise.all(
      range(1, 50).map((i) =>
        hub.request('POST', `/v1/jobs/${id}/events`, {
          events: i % 2 ? [{ kind: 'log', message: `n${i}` }] : [{ kind: 'progress', percent: i }],
        }),
      ),
    );
    for (const res of responses) expect(res.status).toBe(200);
    const acked = responses.map((r) => r.body.seq as number).sort((a, b) => a - b);
    expect(acked).toEqual(range(2, 51));
    expect(await seqsOf(hub, id)).toEqual(range(1, 51));
    expect((await hub.request('GET', `/v1/jobs/${id}`)).body.seq).toBe(51);
  });

  it('keeps every job gapless under concurrent multi-job batches', async () => {
    const hub = await hubForTest();
    const jobs = await Promise.all(range(1, 5).map(() => createJob(hub)));
    const responses = await Promise.all(
      range(1, 20).map((i) =>
        hub.request('POST', '/v1/events', {
          events: jobs.flatMap((job) => [
            { job, kind: 'log', message: `a${i}` },
            { job, kind: 'log', message: `b${i}` },
          ]),
        }),
      ),
    );
    for (const res of responses) {
      expect(res.status).toBe(200);
      for (const result of res.body.results) expect(result.error).toBeUndefined();
    }
    for (const job of jobs) expect(await seqsOf(hub, job)).toEqual(range(1, 41));
  });
});

describe('guarantee 7: isolation', () => {
  it("makes another user's job indistinguishable from a missing one on every read, list and control", async () => {
    const hub = await hubForTest();
    const bobs = await createJob(hub, 'bob');
    const missing = uid('missing');
    const alice = await hub.token('alice');
    for (const path of ['', '/events', '/cancel', '/pause', '/resume']) {
      const method = path === '' || path === '/events' ? 'GET' : 'POST';
      const hidden = await hub.request(method, `/v1/jobs/${bobs}${path}`, undefined, alice);
      const absent = await hub.request(method, `/v1/jobs/${missing}${path}`, undefined, alice);
      expect([hidden.status, hidden.body.error.code]).toEqual([404, ErrorCode.NOT_FOUND]);
      expect([absent.status, absent.body.error.code]).toEqual([hidden.status, hidden.body.error.code]);
    }
    const list = await hub.request('GET', '/v1/jobs?owner=bob', undefined, alice);
    expect(list.body.jobs).toEqual([]);
    // Bob's job is untouched by the refused control requests.
    expect((await hub.request('GET', `/v1/jobs/${bobs}`)).body.seq).toBe(1);
  });
});

describe('guarantee 8: idempotent, durable publishes', () => {
  it('applies a retried batch with the same keys once', async () => {
    const hub = await hubForTest();
    const id = await createJob(hub);
    const batch = {
      events: [
        { kind: 'progress', key: 'p-1', percent: 10 },
        { kind: 'log', key: 'l-1', message: 'ten percent' },
      ],
    };
    const first = await hub.request('POST', `/v1/jobs/${id}/events`, batch);
    expect(first.body.seq).toBe(3);
    const retry = await hub.request('POST', `/v1/jobs/${id}/events`, batch);
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual(first.body);
    expect(await seqsOf(hub, id)).toEqual([1, 2, 3]);

    // A batch overlapping an applied one applies only its new events.
    const overlap = await hub.request('POST', `/v1/jobs/${id}/events`, {
      events: [
        { kind: 'log', key: 'l-1', message: 'ten percent' },
        { kind: 'progress', key: 'p-2', percent: 20 },
      ],
    });
    expect(overlap.body.seq).toBe(4);
    expect(await seqsOf(hub, id)).toEqual([1, 2, 3, 4]);
  });

  it('applies concurrent retries of the same batch once', async () => {
    const hub = await hubForTest();
    const id = await createJob(hub);
    const batch = { events: [{ kind: 'progress', key: 'same', percent: 50 }] };
    const responses = await Promise.all(
      range(1, 10).map(() => hub.request('POST', `/v1/jobs/${id}/events`, batch)),
    );
    for (const res of responses) expect(res.body.seq).toBe(2);
    expect(await seqsOf(hub, id)).toEqual([1, 2]);
  });

  it('applies a retry through POST /v1/events once', async () => {
    const hub = await hubForTest();
    const id = await createJob(hub);
    const batch = { events: [{ job: id, kind: 'progress', key: 'm-1', percent: 5 }] };
    const first = await hub.request('POST', '/v1/events', batch);
    const retry = await hub.request('POST', '/v1/events', batch);
    expect(retry.body.results).toEqual(first.body.results);
    expect(await seqsOf(hub, id)).toEqual([1, 2]);
  });

  it('stores an event before acknowledging it, and it survives a restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'headway-durable-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const first = await startHub({ dataDir });
    let firstClosed = false;
    cleanups.push(() => (firstClosed ? undefined : first.close()));

    const id = await createJob(first);
    const batch = {
      events: [
        { kind: 'progress', key: 'd-1', percent: 42 },
        { kind: 'log', key: 'd-2', message: 'durable' },
      ],
    };
    const ack = await first.request('POST', `/v1/jobs/${id}/events`, batch);
    expect(ack.body.seq).toBe(3);

    // Read the file through a second connection while the hub still runs: the
    // events are committed when the acknowledgement arrives, not at shutdown.
    const reader = new SqliteStore({ path: join(dataDir, 'headway.db') });
    try {
      await reader.migrate();
      expect((await reader.getEvents(id, 0, 100)).map((e) => e.seq)).toEqual([1, 2, 3]);
      expect((await reader.getJob(id))?.seq).toBe(3);
    } finally {
      await reader.close();
    }

    await first.close();
    firstClosed = true;

    const second = await hubForTest({ dataDir });
    expect(await seqsOf(second, id)).toEqual([1, 2, 3]);
    const state = (await second.request('GET', `/v1/jobs/${id}`)).body;
    expect(state.seq).toBe(3);
    expect(state.progress.percent).toBe(42);
    // The idempotency keys survived too: the retry after the restart changes nothing.
    const retry = await second.request('POST', `/v1/jobs/${id}/events`, batch);
    expect(retry.body.seq).toBe(3);
    expect(await seqsOf(second, id)).toEqual([1, 2, 3]);
  });
});
