import { readdirSync, readFileSync } from 'node:fs';
import {
  componentSchemas,
  ErrorBodySchema,
  ErrorCode,
  EventPageSchema,
  JobListSchema,
  JobStateSchema,
  PublishManyResultSchema,
  PublishResultSchema,
  TokenSchema,
} from '@headway/protocol';
import { startHub, type TestHub, waitFor } from '@headway/test-helpers';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIN_SAMPLE_INTERVAL_MS } from '../src/state/rate.js';
import { StoreUnavailableError } from '../src/store/store.js';

let n = 0;
/** A job or user id unique to this run. */
const uid = (prefix = 'job') => `${prefix}-${process.pid}-${++n}`;

/** Asserts that a response body matches its documented schema. */
function expectSchema(schema: TSchema, value: unknown): void {
  const check = TypeCompiler.Compile(schema, componentSchemas);
  const first = check.Errors(value).First();
  expect(first && `${first.path} ${first.message}`).toBeUndefined();
}

let hub: TestHub;
beforeAll(async () => {
  hub = await startHub();
});
afterAll(async () => {
  await hub?.close();
});

async function createJob(body: Record<string, unknown> = {}) {
  const res = await hub.request('POST', '/v1/jobs', { id: uid(), owner: 'alice', ...body });
  expect(res.status).toBe(201);
  return res.body as { id: string; seq: number };
}

async function publish(id: string, events: unknown[]) {
  return hub.request('POST', `/v1/jobs/${id}/events`, { events });
}

describe('jobs', () => {
  it('creates a job with every field and reads it back', async () => {
    const parent = await createJob();
    const id = uid();
    const res = await hub.request('POST', '/v1/jobs', {
      id,
      owner: 'alice',
      name: 'Transcode',
      parent: parent.id,
      stages: [
        { name: 'download', weight: 1 },
        { name: 'encode', weight: 3 },
      ],
      metadata: { file: 'a.mp4' },
      public: false,
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/v1/jobs/${id}`);
    expectSchema(JobStateSchema, res.body);
    expect(res.body).toMatchObject({
      id,
      owner: 'alice',
      name: 'Transcode',
      parent: parent.id,
      status: 'queued',
      seq: 1,
      metadata: { file: 'a.mp4' },
    });
    expect(res.body.stages.map((s: { name: string; weight: number }) => [s.name, s.weight])).toEqual([
      ['download', 1],
      ['encode', 3],
    ]);

    const read = await hub.request('GET', `/v1/jobs/${id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(await hub.server.hub.getJob(id));
  });

  it('generates an id when none is given', async () => {
    const res = await hub.request('POST', '/v1/jobs', { owner: 'alice' });
    expect(res.status).toBe(201);
    expect(typeof res.body.id).toBe('string');
    expect((await hub.request('GET', `/v1/jobs/${res.body.id}`)).status).toBe(200);
  });

  it('reports events and returns the new seq and the control state', async () => {
    const job = await createJob();
    const res = await publish(job.id, [
      { kind: 'stage', name: 'download' },
      { kind: 'progress', percent: 40, message: 'downloading' },
    ]);
    expect(res.status).toBe(200);
    expectSchema(PublishResultSchema, res.body);
    expect(res.body).toEqual({ seq: 3, control: { cancelRequested: false, paused: false } });
    const state = (await hub.request('GET', `/v1/jobs/${job.id}`)).body;
    expect(state).toMatchObject({ status: 'running', seq: 3, message: 'downloading' });
    expect(state.progress.percent).toBe(40);
  });

  it('pages through the event log with since and next', async () => {
    const job = await createJob();
    for (let i = 0; i < 3; i++) {
      await publish(
        job.id,
        Array.from({ length: 4 }, (_, k) => ({ kind: 'log', message: `line ${i * 4 + k}` })),
      );
    }
    const seqs: number[] = [];
    let since = 0;
    for (let page = 0; page < 10; page++) {
      const res = await hub.request('GET', `/v1/jobs/${job.id}/events?since=${since}&limit=5`);
      expect(res.status).toBe(200);
      expectSchema(EventPageSchema, res.body);
      seqs.push(...res.body.events.map((e: { seq: number }) => e.seq));
      if (res.body.next === undefined) break;
      expect(res.body.events).toHaveLength(5);
      since = res.body.next;
    }
    expect(seqs).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));

    const all = await hub.request('GET', `/v1/jobs/${job.id}/events`);
    expect(all.body.events).toHaveLength(13);
    expect(all.body.next).toBeUndefined();
    expect(all.body.events[0]).toMatchObject({ job: job.id, seq: 1, kind: 'created' });
  });

  it('lists jobs by owner with a cursor, without duplicates or gaps', async () => {
    const owner = uid('owner');
    const ids = new Set<string>();
    for (let i = 0; i < 7; i++) ids.add((await createJob({ owner })).id);
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 10; page++) {
      const q = `owner=${owner}&limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const res = await hub.request('GET', `/v1/jobs?${q}`);
      expect(res.status).toBe(200);
      expectSchema(JobListSchema, res.body);
      seen.push(...res.body.jobs.map((j: { id: string }) => j.id));
      cursor = res.body.next;
      if (cursor === undefined) break;
    }
    expect(seen).toHaveLength(7);
    expect(new Set(seen)).toEqual(ids);
  });

  it('filters the list by a comma-separated status list and by parent', async () => {
    const owner = uid('owner');
    const parent = await createJob({ owner });
    const running = await createJob({ owner, parent: parent.id });
    const done = await createJob({ owner, parent: parent.id });
    await createJob({ owner, parent: parent.id });
    await publish(running.id, [{ kind: 'progress', percent: 5 }]);
    await publish(done.id, [{ kind: 'completed' }]);

    const ids = async (query: string) => {
      const res = await hub.request('GET', `/v1/jobs?owner=${owner}&${query}`);
      expect(res.status).toBe(200);
      return res.body.jobs.map((j: { id: string }) => j.id).sort();
    };
    // The batch parent runs once a child has progress.
    expect(await ids('status=running,completed')).toEqual([parent.id, running.id, done.id].sort());
    expect(await ids('status=completed,failed,cancelled')).toEqual([done.id]);
    expect(await ids('status=queued')).toHaveLength(1);

    const children = await hub.request('GET', `/v1/jobs?parent=${parent.id}`);
    expect(children.body.jobs).toHaveLength(3);
  });

  it('searches by a part of the id, name or owner, filters by kind and time, and counts per status', async () => {
    const owner = uid('searcher');
    const needle = await createJob({ owner, name: 'Transcode Lecture-42.mp4', kind: 'transcode' });
    const imports = [await createJob({ owner, kind: 'import' }), await createJob({ owner, kind: 'import' })];
    await publish(imports[0]!.id, [{ kind: 'failed', error: { code: 'E', message: 'no' } }]);
    const list = async (query: string) => {
      const res = await hub.request('GET', `/v1/jobs?owner=${owner}&${query}`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expectSchema(JobListSchema, res.body);
      return res.body as { jobs: { id: string; kind: string | null }[]; counts?: Record<string, number> };
    };
    const ids = async (query: string) => (await list(query)).jobs.map((j) => j.id).sort();

    expect(await ids('q=lecture-42')).toEqual([needle.id]);
    expect(await ids(`q=${needle.id.toUpperCase()}`)).toEqual([needle.id]);
    expect(await ids(`q=${owner}`)).toHaveLength(3);
    expect(await ids('kind=import')).toEqual(imports.map((j) => j.id).sort());
    expect((await list('kind=transcode')).jobs[0]!.kind).toBe('transcode');
    const now = new Date().toISOString();
    expect(await ids(`createdAfter=${encodeURIComponent(now)}`)).toEqual([]);
    expect(await ids(`createdBefore=${encodeURIComponent(now)}`)).toHaveLength(3);
    // Newest creation first: the imports were created after the needle.
    expect((await list('order=created')).jobs.at(-1)!.id).toBe(needle.id);

    const counted = await list('status=failed&counts=true&limit=1');
    expect(counted.jobs.map((j) => j.id)).toEqual([imports[0]!.id]);
    expect(counted.counts).toEqual({
      queued: 2,
      running: 0,
      paused: 0,
      completed: 0,
      failed: 1,
      cancelled: 0,
    });
    expect((await list('limit=1')).counts).toBeUndefined();

    // A user's token counts its own jobs only, and another owner's nothing.
    const token = await hub.token(owner);
    const own = await hub.request('GET', '/v1/jobs?counts=true', undefined, token);
    expect(own.body.counts.queued + own.body.counts.failed).toBe(3);
    const other = await hub.request('GET', '/v1/jobs?owner=someone-else&counts=true', undefined, token);
    expect(other.body).toEqual({
      jobs: [],
      counts: { queued: 0, running: 0, paused: 0, completed: 0, failed: 0, cancelled: 0 },
    });
  });

  it('keeps the ETA estimator out of the job JSON', async () => {
    const job = await createJob();
    // Reports further apart than the estimator's shortest sample interval, so that it has a rate.
    for (const percent of [10, 20, 30]) {
      await publish(job.id, [{ kind: 'progress', percent }]);
      await new Promise((r) => setTimeout(r, MIN_SAMPLE_INTERVAL_MS + 50));
    }
    const read = await hub.request('GET', `/v1/jobs/${job.id}`);
    expect(read.body).not.toHaveProperty('estimator');
    expect(read.body.eta).not.toBeNull();
    const listed = await hub.request('GET', `/v1/jobs?q=${job.id}`);
    expect(listed.body.jobs[0]).not.toHaveProperty('estimator');
    expect(JSON.stringify(await hub.server.hub.getJob(job.id))).not.toContain('estimator');
  });

  it('cancels, pauses and resumes, with and without a body', async () => {
    const job = await createJob();
    await publish(job.id, [{ kind: 'progress', percent: 10 }]);

    const paused = await hub.request('POST', `/v1/jobs/${job.id}/pause`, { reason: 'later' });
    expect(paused.status).toBe(200);
    expectSchema(JobStateSchema, paused.body);
    expect(paused.body.control).toEqual({ cancelRequested: false, paused: true });

    // No body at all, and an empty body sent with a JSON content type.
    const resumed = await hub.request('POST', `/v1/jobs/${job.id}/resume`);
    expect(resumed.status).toBe(200);
    expect(resumed.body.control.paused).toBe(false);
    const cancelled = await hub.request('POST', `/v1/jobs/${job.id}/cancel`, '');
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.control.cancelRequested).toBe(true);

    // The worker learns of the cancel on its next report.
    const report = await publish(job.id, [{ kind: 'progress', percent: 20 }]);
    expect(report.body.control.cancelRequested).toBe(true);

    const log = (await hub.request('GET', `/v1/jobs/${job.id}/events`)).body.events;
    const request = log.find((e: { kind: string }) => e.kind === 'cancel_requested');
    expect(request.data.by).toMatch(/^key:/);
  });

  it('cancelling a parent cancels its unfinished children', async () => {
    const parent = await createJob();
    const running = await createJob({ parent: parent.id });
    const queued = await createJob({ parent: parent.id });
    const done = await createJob({ parent: parent.id });
    await publish(running.id, [{ kind: 'progress', percent: 50 }]);
    await publish(done.id, [{ kind: 'completed' }]);

    const res = await hub.request('POST', `/v1/jobs/${parent.id}/cancel`, { reason: 'user asked' });
    expect(res.status).toBe(200);

    const get = async (id: string) => (await hub.request('GET', `/v1/jobs/${id}`)).body;
    expect((await get(running.id)).control.cancelRequested).toBe(true);
    expect((await get(queued.id)).status).toBe('cancelled');
    expect((await get(done.id)).status).toBe('completed');
  });

  it('deletes a job with its children and their logs', async () => {
    const parent = await createJob();
    const child = await createJob({ parent: parent.id });
    await publish(child.id, [{ kind: 'log', message: 'hello' }]);

    const res = await hub.request('DELETE', `/v1/jobs/${parent.id}`);
    expect(res.status).toBe(204);
    expect(res.body).toBeUndefined();

    for (const id of [parent.id, child.id]) {
      expect((await hub.request('GET', `/v1/jobs/${id}`)).body.error.code).toBe(ErrorCode.NOT_FOUND);
      expect((await hub.request('GET', `/v1/jobs/${id}/events`)).status).toBe(404);
      expect(await hub.server.hub.store.getEvents(id, 0, 100)).toEqual([]);
    }
    const late = await publish(child.id, [{ kind: 'progress', percent: 60 }]);
    expect(late.status).toBe(410);
    expect(late.body.error.code).toBe(ErrorCode.JOB_DELETED);
  });

  it('mints browser tokens with the default lifetime and refuses one above the maximum', async () => {
    const job = await createJob({ owner: 'mint-user' });
    const before = Date.now();
    const res = await hub.request('POST', '/v1/tokens', { user: 'mint-user' });
    expect(res.status).toBe(201);
    expectSchema(TokenSchema, res.body);
    const lifetime = Date.parse(res.body.expiresAt) - before;
    expect(lifetime).toBeGreaterThan(3_590_000);
    expect(lifetime).toBeLessThanOrEqual(3_601_000);
    expect((await hub.request('GET', `/v1/jobs/${job.id}`, undefined, res.body.token)).status).toBe(200);

    const tooLong = await hub.request('POST', '/v1/tokens', { user: 'mint-user', ttl: 8 * 24 * 3600 });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error.code).toBe(ErrorCode.INVALID_VALUE);
  });
});

describe('long-poll', () => {
  it('returns as soon as an event arrives', async () => {
    const job = await createJob();
    const started = Date.now();
    const waiting = hub.request('GET', `/v1/jobs/${job.id}?since=1&wait=10`);
    setTimeout(() => void publish(job.id, [{ kind: 'progress', percent: 30 }]), 100);
    const res = await waiting;
    expect(res.status).toBe(200);
    expect(res.body.seq).toBe(2);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('returns at once when the job is already past since', async () => {
    const job = await createJob();
    await publish(job.id, [{ kind: 'progress', percent: 30 }]);
    const started = Date.now();
    const res = await hub.request('GET', `/v1/jobs/${job.id}?since=1&wait=10`);
    expect(res.body.seq).toBe(2);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('answers with only the changed fields with state=delta, folded onto the state at since', async () => {
    const job = await createJob();
    await publish(job.id, [{ kind: 'progress', percent: 10, message: 'starting' }]);
    const before = (await hub.request('GET', `/v1/jobs/${job.id}`)).body;
    expect(before.seq).toBe(2);
    const waiting = hub.request('GET', `/v1/jobs/${job.id}?since=2&wait=10&state=delta`);
    await waitFor(() => hub.server.hub.stats().waiters === 1);
    await publish(job.id, [{ kind: 'progress', percent: 40 }]);
    const res = await waiting;
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: job.id, since: 2, seq: 3 });
    expect(res.body.state).toBeUndefined();
    expect(Object.keys(res.body.patch)).toContain('progress');
    // Unchanged fields stay out: the message is sticky, the owner never changes.
    expect(res.body.patch.message).toBeUndefined();
    expect(res.body.patch.owner).toBeUndefined();
    const after = (await hub.request('GET', `/v1/jobs/${job.id}`)).body;
    expect({ ...before, ...res.body.patch }).toEqual(after);
  });

  it('answers with the whole state with state=delta when since is not the job’s seq', async () => {
    const job = await createJob();
    await publish(job.id, [{ kind: 'progress', percent: 30 }]);
    const res = await hub.request('GET', `/v1/jobs/${job.id}?since=1&wait=10&state=delta`);
    expect(res.status).toBe(200);
    expect(res.body.seq).toBe(2);
    expect(res.body.patch).toBeUndefined();
    expect(res.body.progress.percent).toBe(30);
  });

  it('answers an empty patch with state=delta when nothing changed in the time waited', async () => {
    const job = await createJob();
    const res = await hub.request('GET', `/v1/jobs/${job.id}?wait=0.05&state=delta`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ id: job.id, since: 1, seq: 1, patch: {} });
  });

  it('refuses a state mode other than full or delta', async () => {
    const job = await createJob();
    const res = await hub.request('GET', `/v1/jobs/${job.id}?wait=1&state=half`);
    expect({ status: res.status, code: res.body.error.code }).toEqual({
      status: 400,
      code: ErrorCode.INVALID_MESSAGE,
    });
  });

  it('times out with the same state', async () => {
    const job = await createJob();
    const before = (await hub.request('GET', `/v1/jobs/${job.id}`)).body;
    const started = Date.now();
    const res = await hub.request('GET', `/v1/jobs/${job.id}?wait=0.3`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(before);
  });

  it('stops waiting when the client goes away', async () => {
    const job = await createJob();
    const controller = new AbortController();
    const waiting = fetch(`${hub.url}/v1/jobs/${job.id}?wait=30`, {
      headers: { authorization: `Bearer ${hub.apiKey}` },
      signal: controller.signal,
    }).catch(() => null);
    await waitFor(() => hub.server.hub.stats().waiters === 1);
    controller.abort();
    await waiting;
    await waitFor(() => hub.server.hub.stats().waiters === 0);
  });

  it("counts a waiting long-poll as one of the user's connections", async () => {
    const limited = await startHub({ limits: { connectionsPerUser: 1 } });
    const controller = new AbortController();
    try {
      const job = await limited.request('POST', '/v1/jobs', { owner: 'alice' });
      const token = await limited.token('alice');
      const first = fetch(`${limited.url}/v1/jobs/${job.body.id}?wait=30`, {
        headers: { authorization: `Bearer ${token}` },
        signal: controller.signal,
      }).catch(() => null);
      await waitFor(() => limited.server.hub.stats().waiters === 1);
      const second = await limited.request('GET', `/v1/jobs/${job.body.id}?wait=30`, undefined, token);
      expect(second.status).toBe(429);
      expect(second.body.error.code).toBe(ErrorCode.TOO_MANY_CONNECTIONS);
      // A plain read is not a connection.
      expect((await limited.request('GET', `/v1/jobs/${job.body.id}`, undefined, token)).status).toBe(200);
      controller.abort();
      await first;
      await waitFor(() => limited.server.context.connections.count('alice') === 0);
    } finally {
      controller.abort();
      await limited.close();
    }
  });

  it('does not hold up shutdown', async () => {
    const closing = await startHub();
    const job = await closing.request('POST', '/v1/jobs', { owner: 'alice' });
    const waiting = closing.request('GET', `/v1/jobs/${job.body.id}?wait=30`).catch(() => null);
    await waitFor(() => closing.server.hub.stats().waiters === 1);
    const started = Date.now();
    await closing.close();
    await waiting;
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('caps the wait at longPollMaxSeconds', async () => {
    const capped = await startHub({ limits: { longPollMaxSeconds: 0.2 } });
    try {
      const job = await capped.request('POST', '/v1/jobs', { owner: 'alice' });
      const started = Date.now();
      const res = await capped.request('GET', `/v1/jobs/${job.body.id}?wait=30`);
      expect(res.status).toBe(200);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await capped.close();
    }
  });
});

describe('POST /v1/events', () => {
  it('applies good jobs and reports invalid and unknown ones per job', async () => {
    const good = await createJob();
    const bad = await createJob();
    const outOfRange = await createJob();
    const unknown = uid('missing');
    const res = await hub.request('POST', '/v1/events', {
      events: [
        { job: good.id, kind: 'progress', percent: 10, key: 'a' },
        { job: bad.id, kind: 'progress', percent: 10 },
        { job: unknown, kind: 'progress', percent: 10 },
        { job: good.id, kind: 'log', message: 'two' },
        { job: bad.id, kind: 'teleport' },
        { job: outOfRange.id, kind: 'progress', percent: 150 },
      ],
    });
    expect(res.status).toBe(200);
    expectSchema(PublishManyResultSchema, res.body);
    expect(res.body.results.map((r: { job: string }) => r.job)).toEqual([
      good.id,
      bad.id,
      unknown,
      outOfRange.id,
    ]);
    const [g, b, u, o] = res.body.results;
    expect(g).toEqual({ job: good.id, seq: 3, control: { cancelRequested: false, paused: false } });
    expect(b.error.code).toBe(ErrorCode.INVALID_MESSAGE);
    expect(u.error.code).toBe(ErrorCode.NOT_FOUND);
    expect(o.error.code).toBe(ErrorCode.INVALID_VALUE);

    // The job with an invalid event got none of its events, not even the valid one.
    expect((await hub.request('GET', `/v1/jobs/${bad.id}`)).body.seq).toBe(1);
    expect((await hub.request('GET', `/v1/jobs/${outOfRange.id}`)).body.seq).toBe(1);
  });
});

describe('bad input', () => {
  async function expectError(
    res: Promise<{ status: number; body: { error: { code: string } } }>,
    status: number,
    code: string,
  ) {
    const { status: got, body } = await res;
    expect({ status: got, code: body?.error?.code }).toEqual({ status, code });
    expectSchema(ErrorBodySchema, body);
  }

  it('malformed JSON', async () => {
    await expectError(hub.request('POST', '/v1/jobs', '{"owner": '), 400, ErrorCode.BAD_JSON);
  });

  it('wrong content type', async () => {
    const headers = { 'content-type': 'text/plain' };
    await expectError(
      hub.request('POST', '/v1/jobs', '{"owner":"alice"}', hub.apiKey, headers),
      400,
      ErrorCode.INVALID_MESSAGE,
    );
    await expectError(
      hub.request('POST', '/v1/jobs', 'owner=alice', hub.apiKey, {
        'content-type': 'application/x-www-form-urlencoded',
      }),
      400,
      ErrorCode.INVALID_MESSAGE,
    );
  });

  it('missing or extra field', async () => {
    await expectError(hub.request('POST', '/v1/jobs', { name: 'x' }), 400, ErrorCode.INVALID_MESSAGE);
    await expectError(hub.request('POST', '/v1/jobs'), 400, ErrorCode.INVALID_MESSAGE);
    await expectError(
      hub.request('POST', '/v1/jobs', { owner: 'alice', colour: 'red' }),
      400,
      ErrorCode.INVALID_MESSAGE,
    );
    const job = await createJob();
    await expectError(publish(job.id, [{ kind: 'stage' }]), 400, ErrorCode.INVALID_MESSAGE);
    await expectError(publish(job.id, []), 400, ErrorCode.INVALID_MESSAGE);
  });

  it('unknown event kind', async () => {
    const job = await createJob();
    await expectError(publish(job.id, [{ kind: 'teleport' }]), 400, ErrorCode.INVALID_MESSAGE);
  });

  it('percent 150', async () => {
    const job = await createJob();
    await expectError(publish(job.id, [{ kind: 'progress', percent: 150 }]), 400, ErrorCode.INVALID_VALUE);
    expect((await hub.request('GET', `/v1/jobs/${job.id}`)).body.seq).toBe(1);
  });

  it('metadata over 16 KiB', async () => {
    const big = { blob: 'x'.repeat(17 * 1024) };
    await expectError(
      hub.request('POST', '/v1/jobs', { owner: 'alice', metadata: big }),
      413,
      ErrorCode.PAYLOAD_TOO_LARGE,
    );
    const job = await createJob();
    await expectError(
      publish(job.id, [{ kind: 'metadata', metadata: big }]),
      413,
      ErrorCode.PAYLOAD_TOO_LARGE,
    );
  });

  it('body over bodyBytes', async () => {
    const small = await startHub({ limits: { bodyBytes: 1024 } });
    try {
      const res = await small.request('POST', '/v1/jobs', { owner: 'alice', name: 'x'.repeat(2000) });
      expect(res.status).toBe(413);
      expect(res.body.error.code).toBe(ErrorCode.PAYLOAD_TOO_LARGE);
    } finally {
      await small.close();
    }
  });

  it('progress after completed', async () => {
    const job = await createJob();
    await publish(job.id, [{ kind: 'completed', result: { url: 'https://example.com/out.mp4' } }]);
    await expectError(publish(job.id, [{ kind: 'progress', percent: 10 }]), 409, ErrorCode.JOB_FINISHED);
    await expectError(hub.request('POST', `/v1/jobs/${job.id}/cancel`), 409, ErrorCode.JOB_FINISHED);
  });

  it('unknown job', async () => {
    const id = uid('missing');
    await expectError(publish(id, [{ kind: 'progress', percent: 10 }]), 404, ErrorCode.NOT_FOUND);
    await expectError(hub.request('GET', `/v1/jobs/${id}`), 404, ErrorCode.NOT_FOUND);
    await expectError(hub.request('GET', `/v1/jobs/${id}/events`), 404, ErrorCode.NOT_FOUND);
    await expectError(hub.request('POST', `/v1/jobs/${id}/pause`), 404, ErrorCode.NOT_FOUND);
    await expectError(hub.request('DELETE', `/v1/jobs/${id}`), 404, ErrorCode.NOT_FOUND);
  });

  it('deleted job', async () => {
    const job = await createJob();
    expect((await hub.request('DELETE', `/v1/jobs/${job.id}`)).status).toBe(204);
    await expectError(publish(job.id, [{ kind: 'progress', percent: 10 }]), 410, ErrorCode.JOB_DELETED);
    await expectError(hub.request('POST', `/v1/jobs/${job.id}/cancel`), 410, ErrorCode.JOB_DELETED);
  });

  it('duplicate id', async () => {
    const job = await createJob();
    await expectError(
      hub.request('POST', '/v1/jobs', { id: job.id, owner: 'alice' }),
      409,
      ErrorCode.JOB_EXISTS,
    );
  });

  it('bad path and query values', async () => {
    const job = await createJob();
    await expectError(hub.request('GET', '/v1/jobs/a%20b'), 400, ErrorCode.INVALID_MESSAGE);
    await expectError(
      hub.request('GET', `/v1/jobs/${job.id}/events?limit=0`),
      400,
      ErrorCode.INVALID_MESSAGE,
    );
    await expectError(
      hub.request('GET', `/v1/jobs/${job.id}/events?limit=1001`),
      400,
      ErrorCode.INVALID_MESSAGE,
    );
    await expectError(hub.request('GET', `/v1/jobs/${job.id}?wait=soon`), 400, ErrorCode.INVALID_MESSAGE);
    await expectError(hub.request('GET', '/v1/jobs?status=sleeping'), 400, ErrorCode.INVALID_MESSAGE);
    await expectError(hub.request('GET', '/v1/jobs?cursor=garbage'), 400, ErrorCode.INVALID_VALUE);
    await expectError(hub.request('GET', '/v1/jobs?createdAfter=yesterday'), 400, ErrorCode.INVALID_VALUE);
  });

  it('says what is wrong in words, not a regular expression', async () => {
    const id = await hub.request('POST', '/v1/jobs', { id: 'a b', owner: 'alice' });
    expect(id.status).toBe(400);
    expect(id.body.error.message).toBe('body/id: an id is 1 to 128 characters: letters, digits and . _ : -');
    const status = await hub.request('GET', '/v1/jobs?status=sleeping');
    expect(status.body.error.message).toBe(
      'querystring/status: a status or a comma-separated list of them: queued, running, paused, completed, failed, cancelled',
    );
    const time = await hub.request('GET', '/v1/jobs?createdAfter=yesterday');
    expect(time.body.error.message).toBe(
      'createdAfter must be a time such as 2026-12-04T20:00:00Z (got "yesterday")',
    );
    for (const res of [id, status]) expect(res.body.error.message).not.toMatch(/[\^$]/);
  });

  it('unknown route', async () => {
    await expectError(hub.request('GET', '/v2/nothing'), 404, ErrorCode.NOT_FOUND);
    await expectError(hub.request('PUT', '/v1/jobs'), 404, ErrorCode.NOT_FOUND);
  });

  it('counts error responses by code', async () => {
    await hub.request('POST', '/v1/jobs', '{');
    const metrics = await hub.request('GET', '/metrics', undefined, null);
    expect(metrics.body).toMatch(/headway_client_errors_total\{code="HW_ERR_BAD_JSON"\} [1-9]/);
  });
});

describe('server errors', () => {
  it('answers 503 STORE_UNAVAILABLE with Retry-After when the store refuses a commit', async () => {
    const job = await createJob();
    const store = hub.server.hub.store;
    const commit = store.commit;
    store.commit = async () => {
      throw new StoreUnavailableError('disk I/O error');
    };
    try {
      const res = await publish(job.id, [{ kind: 'progress', percent: 10 }]);
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe(ErrorCode.STORE_UNAVAILABLE);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      store.commit = commit;
    }
    // The retry succeeds once the store is back.
    expect((await publish(job.id, [{ kind: 'progress', percent: 10 }])).body.seq).toBe(2);
  });

  it('answers 500 INTERNAL without details for an unexpected failure', async () => {
    const core = hub.server.hub;
    const getJob = core.getJob;
    core.getJob = async () => {
      throw new Error('secret detail');
    };
    try {
      const res = await hub.request('GET', '/v1/jobs/anything');
      expect(res.status).toBe(500);
      expect(res.body.error.code).toBe(ErrorCode.INTERNAL);
      expect(res.body.error.message).not.toContain('secret');
    } finally {
      core.getJob = getJob;
    }
  });
});

describe('operations', () => {
  it('health, readiness and metrics are public', async () => {
    const health = await hub.request('GET', '/healthz', undefined, null);
    expect(health).toMatchObject({ status: 200, body: { status: 'ok' } });
    const ready = await hub.request('GET', '/readyz', undefined, null);
    expect(ready).toMatchObject({ status: 200, body: { status: 'ok', store: 'ok', bus: 'ok' } });
    const metrics = await hub.request('GET', '/metrics', undefined, null);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(metrics.body).toContain('headway_events_ingested_total');
  });

  it('is not ready while the store is down', async () => {
    const store = hub.server.hub.store;
    const ping = store.ping;
    store.ping = async () => false;
    try {
      const ready = await hub.request('GET', '/readyz', undefined, null);
      expect(ready).toMatchObject({ status: 503, body: { status: 'unavailable', store: 'down', bus: 'ok' } });
    } finally {
      store.ping = ping;
    }
  });

  it('publishes an OpenAPI document listing every route', async () => {
    const res = await hub.request('GET', '/openapi.json', undefined, null);
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.title).toBe('Headway');
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(Object.keys(doc.components.schemas).sort()).toEqual([
      'Control',
      'ErrorBody',
      'JobEvent',
      'JobState',
    ]);
    const routes: [string, string, number][] = [
      ['post', '/v1/jobs', 201],
      ['get', '/v1/jobs', 200],
      ['get', '/v1/jobs/{id}', 200],
      ['delete', '/v1/jobs/{id}', 204],
      ['post', '/v1/jobs/{id}/events', 200],
      ['get', '/v1/jobs/{id}/events', 200],
      ['post', '/v1/events', 200],
      ['post', '/v1/jobs/{id}/cancel', 200],
      ['post', '/v1/jobs/{id}/pause', 200],
      ['post', '/v1/jobs/{id}/resume', 200],
      ['post', '/v1/tokens', 201],
      ['get', '/v1/stats', 200],
      ['post', '/v1/webhooks', 201],
      ['get', '/v1/webhooks', 200],
      ['get', '/v1/webhooks/{id}/deliveries', 200],
      ['delete', '/v1/webhooks/{id}', 204],
      ['post', '/v1/webhooks/{id}/rotate-secret', 200],
      ['get', '/healthz', 200],
      ['get', '/readyz', 200],
      ['get', '/metrics', 200],
      ['get', '/openapi.json', 200],
      ['post', '/v1/session', 200],
      ['delete', '/v1/session', 204],
    ];
    for (const [method, path, ok] of routes) {
      const op = doc.paths[path]?.[method];
      expect(op, `${method} ${path}`).toBeDefined();
      expect(op.responses[String(ok)], `${method} ${path} ${ok}`).toBeDefined();
      // Clearing the session cookie needs no credentials.
      if (path.startsWith('/v1/') && !(method === 'delete' && path === '/v1/session')) {
        expect(op.security).toEqual([{ bearer: [] }]);
        expect(op.responses['401']).toBeDefined();
      }
      if (method === 'post' && path.startsWith('/v1/') && path !== '/v1/session') {
        expect(op.requestBody?.content?.['application/json']?.schema, `${method} ${path} body`).toBeDefined();
      }
      if (path.includes('{id}')) {
        expect(
          op.parameters.some((p: { in: string; name: string }) => p.in === 'path' && p.name === 'id'),
        ).toBe(true);
      }
    }
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops as object).map((m) => `${m} ${path}`),
    );
    expect(documented.sort()).toEqual(routes.map(([m, p]) => `${m} ${p}`).sort());
    // Every route is documented for people too.
    const docs = readdirSync(new URL('../../../docs/', import.meta.url))
      .filter((f) => f.endsWith('.md'))
      .map((f) => readFileSync(new URL(`../../../docs/${f}`, import.meta.url), 'utf8'))
      .join('\n');
    for (const path of Object.keys(doc.paths))
      expect(docs, path).toContain(path.replace(/\{(\w+)\}/g, ':$1'));
    const list = doc.paths['/v1/jobs'].get.parameters.map((p: { name: string }) => p.name);
    expect(list).toEqual(expect.arrayContaining(['owner', 'status', 'parent', 'limit', 'cursor']));
  });
});

describe('CORS', () => {
  let cors: TestHub;
  const allowed = 'https://app.example.com';
  beforeAll(async () => {
    cors = await startHub({ allowedOrigins: [allowed] });
  });
  afterAll(async () => {
    await cors?.close();
  });

  const preflight = (origin: string) =>
    fetch(`${cors.url}/v1/jobs`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });

  it('answers a preflight from an allowed origin', async () => {
    const res = await preflight(allowed);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(allowed);
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
    expect(res.headers.get('access-control-allow-methods')).toMatch(/DELETE/);
    expect(res.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
  });

  it('refuses a preflight and a request from another origin', async () => {
    const res = await preflight('https://evil.example.com');
    expect(res.status).toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(ErrorCode.ORIGIN_NOT_ALLOWED);

    const get = await cors.request('GET', '/v1/jobs', undefined, cors.apiKey, {
      origin: 'https://evil.example.com',
    });
    expect(get.status).toBe(403);
    expect(get.body.error.code).toBe(ErrorCode.ORIGIN_NOT_ALLOWED);
  });

  it('adds CORS headers to requests from an allowed origin and lets requests without Origin pass', async () => {
    const get = await cors.request('GET', '/v1/jobs', undefined, cors.apiKey, { origin: allowed });
    expect(get.status).toBe(200);
    expect(get.headers.get('access-control-allow-origin')).toBe(allowed);
    const plain = await cors.request('GET', '/v1/jobs');
    expect(plain.status).toBe(200);
    expect(plain.headers.get('access-control-allow-origin')).toBeNull();
  });
});
