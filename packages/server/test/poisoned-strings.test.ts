/**
 * Strings no store keeps (NUL, lone surrogates) and values nested too deep are
 * refused with 400 HW_ERR_INVALID_VALUE at validation, on every transport and
 * every store, and never fail another worker's write.
 */
import { ErrorCode, MAX_JSON_DEPTH } from '@headway/protocol';
import {
  connect,
  dropSchema,
  POSTGRES_URL,
  requirePostgres,
  startHub,
  type TestHub,
  uniqueName,
} from '@headway/test-helpers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const postgres = await requirePostgres();

const NUL = 'a\u0000b';
const LONE_HIGH = 'a\ud800b';
const LONE_LOW = '\udc00';

/** `{a: {a: … {a: 1}}}`, `levels` objects deep. */
function nested(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}

const stores = [
  { name: 'SQLite', skip: false, options: () => ({}) },
  {
    name: 'PostgreSQL',
    skip: postgres.skip,
    options: () => ({ postgresUrl: POSTGRES_URL, postgresSchema: uniqueName('hw_poison') }),
  },
];

describe.each(stores)('poisoned strings on $name', ({ skip, options }) => {
  let hub: TestHub;
  let schema: string | undefined;
  beforeAll(async () => {
    if (skip) return;
    const opts = options();
    schema = (opts as { postgresSchema?: string }).postgresSchema;
    hub = await startHub(opts);
  });
  afterAll(async () => {
    await hub?.close();
    if (schema) await dropSchema(schema);
  });

  async function created(id: string): Promise<void> {
    expect((await hub.post('/v1/jobs', { id, owner: 'u1', name: 'fine' })).status).toBe(201);
  }

  it.skipIf(skip)('refuses a NUL or a lone surrogate in any string of a job', async () => {
    const bodies = [
      { id: uniqueName('j'), owner: 'u1', name: NUL },
      { id: uniqueName('j'), owner: LONE_HIGH, name: 'x' },
      { id: uniqueName('j'), owner: 'u1', name: 'x', metadata: { note: LONE_LOW } },
      { id: uniqueName('j'), owner: 'u1', name: 'x', metadata: { [NUL]: 1 } },
      { id: uniqueName('j'), owner: 'u1', name: 'x', metadata: { list: ['ok', ['deeper', NUL]] } },
    ];
    for (const body of bodies) {
      const res = await hub.post('/v1/jobs', body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe(ErrorCode.INVALID_VALUE);
    }
  });

  it.skipIf(skip)('refuses them in events, alone or in a batch of many jobs', async () => {
    const id = uniqueName('j');
    await created(id);
    const events = [
      { kind: 'log', message: NUL },
      { kind: 'progress', current: 1, total: 2, unit: LONE_HIGH },
      { kind: 'metadata', metadata: { x: LONE_LOW } },
    ];
    for (const event of events) {
      const res = await hub.post(`/v1/jobs/${id}/events`, { events: [event] });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe(ErrorCode.INVALID_VALUE);
    }
    const many = await hub.post('/v1/events', { events: [{ job: id, kind: 'log', message: NUL }] });
    expect(many.status).toBe(400);
    expect(many.body.error.code).toBe(ErrorCode.INVALID_VALUE);
    expect((await hub.get(`/v1/jobs/${id}`)).body.seq).toBe(1);
  });

  it.skipIf(skip)(`refuses values nested deeper than ${MAX_JSON_DEPTH} levels, however deep`, async () => {
    for (const levels of [MAX_JSON_DEPTH + 1, 4_100]) {
      const res = await hub.post('/v1/jobs', {
        id: uniqueName('deep'),
        owner: 'u1',
        name: 'deep',
        metadata: nested(levels) as Record<string, unknown>,
      });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe(ErrorCode.INVALID_VALUE);
    }
    // Within the limit (the body and `metadata` count as two levels): accepted and readable.
    const id = uniqueName('deep');
    const ok = await hub.post('/v1/jobs', {
      id,
      owner: 'u1',
      name: 'deep',
      metadata: nested(MAX_JSON_DEPTH - 2) as Record<string, unknown>,
    });
    expect(ok.status).toBe(201);
    expect((await hub.get(`/v1/jobs/${id}/events`)).status).toBe(200);
  });

  it.skipIf(skip)('refuses them in WebSocket messages', async () => {
    const client = await connect(`${hub.wsUrl}?token=${await hub.token('u1')}`);
    await client.next('welcome');
    client.send({ type: 'subscribe', id: NUL, job: 'x' });
    expect((await client.next('error')).code).toBe(ErrorCode.INVALID_VALUE);
    client.sendRaw(`{"type":"subscribe","id":"s","scope":"user","since":{"\\ud800":1}}`);
    expect((await client.next('error')).code).toBe(ErrorCode.INVALID_VALUE);
    await client.close();
  });

  it.skipIf(skip)("bad requests among good ones never fail another worker's write", async () => {
    const jobs = Array.from({ length: 8 }, () => uniqueName('good'));
    await Promise.all(jobs.map(created));
    const statuses: number[] = [];
    const bad: number[] = [];
    await Promise.all([
      ...jobs.map(async (id) => {
        for (let n = 1; n <= 10; n++) {
          const res = await hub.post(`/v1/jobs/${id}/events`, { events: [{ kind: 'progress', percent: n }] });
          statuses.push(res.status);
        }
      }),
      (async () => {
        for (let n = 0; n < 20; n++) {
          const res = await hub.post(`/v1/jobs/${jobs[n % jobs.length]}/events`, {
            events: [{ kind: 'log', message: n % 2 ? NUL : LONE_HIGH }],
          });
          bad.push(res.status);
        }
      })(),
    ]);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(bad.every((s) => s === 400)).toBe(true);
    for (const id of jobs) expect((await hub.get(`/v1/jobs/${id}`)).body.seq).toBe(11);
  });
});
