/**
 * The auth matrix of the REST API: who may call which route, and that a job that
 * is not the caller's is indistinguishable from one that does not exist.
 */
import { ErrorCode } from '@headway/protocol';
import { startHub, TEST_JWT_SECRET, type TestHub } from '@headway/test-helpers';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let hub: TestHub;
let n = 0;
const uid = (prefix = 'job') => `${prefix}-${process.pid}-${++n}`;

/** Ids created in `beforeAll`: two users' jobs, a batch with a child and a grandchild. */
const ids = {
  alice: '',
  alice2: '',
  bob: '',
  batch: '',
  child: '',
  grandchild: '',
};

beforeAll(async () => {
  hub = await startHub();
  const create = async (body: Record<string, unknown>) => {
    const res = await hub.request('POST', '/v1/jobs', { id: uid(), ...body });
    expect(res.status).toBe(201);
    return res.body.id as string;
  };
  ids.alice = await create({ owner: 'alice' });
  ids.alice2 = await create({ owner: 'alice' });
  ids.bob = await create({ owner: 'bob' });
  ids.batch = await create({ owner: 'alice' });
  ids.child = await create({ owner: 'alice', parent: ids.batch });
  ids.grandchild = await create({ owner: 'alice', parent: ids.child });
  await hub.request('POST', `/v1/jobs/${ids.alice}/events`, { events: [{ kind: 'progress', percent: 5 }] });
});
afterAll(async () => {
  await hub?.close();
});

/** Every route under /v1 with a body that would be valid for an API key. */
function v1Routes(): [string, string, unknown?][] {
  const job = ids.alice;
  return [
    ['POST', '/v1/jobs', { owner: 'alice' }],
    ['GET', '/v1/jobs'],
    ['GET', `/v1/jobs/${job}`],
    ['GET', `/v1/jobs/${job}/events`],
    ['POST', `/v1/jobs/${job}/events`, { events: [{ kind: 'log', message: 'x' }] }],
    ['POST', '/v1/events', { events: [{ job, kind: 'log', message: 'x' }] }],
    ['POST', `/v1/jobs/${job}/pause`, {}],
    ['POST', `/v1/jobs/${job}/resume`, {}],
    ['POST', `/v1/jobs/${job}/cancel`, {}],
    ['DELETE', `/v1/jobs/${job}`],
    ['POST', '/v1/tokens', { user: 'alice' }],
  ];
}

function signed(secret: string, claims: Record<string, unknown>, exp: number, issuer = 'headway') {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject('alice')
    .setIssuer(issuer)
    .setIssuedAt(exp - 3600)
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(secret));
}

const now = () => Math.floor(Date.now() / 1000);

describe('credentials', () => {
  it('refuses every /v1 route without a token (401 UNAUTHORIZED)', async () => {
    for (const [method, path, body] of v1Routes()) {
      const res = await hub.request(method, path, body, null);
      expect({ route: `${method} ${path}`, status: res.status, code: res.body.error.code }).toEqual({
        route: `${method} ${path}`,
        status: 401,
        code: ErrorCode.UNAUTHORIZED,
      });
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
  });

  it('refuses an unauthenticated request before reading its body', async () => {
    const res = await hub.request('POST', '/v1/jobs', '{not json', null);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe(ErrorCode.UNAUTHORIZED);
  });

  it('refuses a malformed token or header', async () => {
    for (const credential of ['not-a-jwt', 'a.b.c', `${hub.apiKey}x`]) {
      const res = await hub.request('GET', `/v1/jobs/${ids.alice}`, undefined, credential);
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe(ErrorCode.UNAUTHORIZED);
    }
    const basic = await hub.request('GET', `/v1/jobs/${ids.alice}`, undefined, null, {
      authorization: `Basic ${hub.apiKey}`,
    });
    expect(basic.status).toBe(401);
    expect(basic.body.error.code).toBe(ErrorCode.UNAUTHORIZED);
  });

  it('refuses a token signed with another secret or by another issuer', async () => {
    const otherSecret = await signed('another-secret-that-is-long-enough-0123456789', {}, now() + 3600);
    const otherIssuer = await signed(TEST_JWT_SECRET, {}, now() + 3600, 'someone-else');
    for (const token of [otherSecret, otherIssuer]) {
      const res = await hub.request('GET', `/v1/jobs/${ids.alice}`, undefined, token);
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe(ErrorCode.UNAUTHORIZED);
    }
  });

  it('answers TOKEN_EXPIRED for an expired token', async () => {
    const expired = await signed(TEST_JWT_SECRET, {}, now() - 60);
    const res = await hub.request('GET', `/v1/jobs/${ids.alice}`, undefined, expired);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe(ErrorCode.TOKEN_EXPIRED);
    // The same token, not yet expired, is accepted: only the expiry made the difference.
    const valid = await signed(TEST_JWT_SECRET, {}, now() + 60);
    expect((await hub.request('GET', `/v1/jobs/${ids.alice}`, undefined, valid)).status).toBe(200);
  });

  it('leaves health, readiness, metrics and the OpenAPI document public', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
      expect((await hub.request('GET', path, undefined, null)).status).toBe(200);
    }
  });
});

describe('isolation', () => {
  /** A job of another user answers exactly like a job that does not exist. */
  async function expectHidden(credential: string, id: string) {
    const missing = uid('missing');
    const routes = (job: string): [string, string, unknown?][] => [
      ['GET', `/v1/jobs/${job}`],
      ['GET', `/v1/jobs/${job}?wait=0.05`],
      ['GET', `/v1/jobs/${job}/events`],
      ['POST', `/v1/jobs/${job}/cancel`, {}],
      ['POST', `/v1/jobs/${job}/pause`],
      ['POST', `/v1/jobs/${job}/resume`],
    ];
    const hidden = routes(id);
    const absent = routes(missing);
    for (let i = 0; i < hidden.length; i++) {
      const [method, path, body] = hidden[i]!;
      const a = await hub.request(method, path, body, credential);
      const b = await hub.request(absent[i]![0], absent[i]![1], absent[i]![2], credential);
      expect({ route: `${method} ${path}`, status: a.status, code: a.body.error.code }).toEqual({
        route: `${method} ${path}`,
        status: 404,
        code: ErrorCode.NOT_FOUND,
      });
      expect(b.status).toBe(a.status);
      expect(b.body.error.code).toBe(a.body.error.code);
      // Same message once each id is blanked out: nothing tells the two apart.
      expect(a.body.error.message.replaceAll(id, '<id>')).toBe(
        b.body.error.message.replaceAll(missing, '<id>'),
      );
      expect(a.body.error.message).not.toContain('bob');
      expect(a.body.error.message).not.toContain('alice');
      expect(Object.keys(a.body)).toEqual(Object.keys(b.body));
    }
  }

  it("hides another user's job exactly like a missing one", async () => {
    await expectHidden(await hub.token('alice'), ids.bob);
    await expectHidden(await hub.token('bob'), ids.alice);
  });

  it('lets a user token read and control its own jobs', async () => {
    const token = await hub.token('alice');
    expect((await hub.request('GET', `/v1/jobs/${ids.alice}`, undefined, token)).status).toBe(200);
    expect((await hub.request('GET', `/v1/jobs/${ids.alice}/events`, undefined, token)).status).toBe(200);
    const paused = await hub.request('POST', `/v1/jobs/${ids.alice}/pause`, { reason: 'lunch' }, token);
    expect(paused.status).toBe(200);
    expect(paused.body.control.paused).toBe(true);
    const resumed = await hub.request('POST', `/v1/jobs/${ids.alice}/resume`, undefined, token);
    expect(resumed.body.control.paused).toBe(false);
    const log = (await hub.request('GET', `/v1/jobs/${ids.alice}/events`, undefined, token)).body.events;
    const request = log.find((e: { kind: string }) => e.kind === 'pause_requested');
    expect(request.data.by).toBe('alice');
  });

  it('limits a job-scoped token to its jobs and their children', async () => {
    const token = await hub.token('alice', { jobs: [ids.batch] });
    expect((await hub.request('GET', `/v1/jobs/${ids.batch}`, undefined, token)).status).toBe(200);
    // A child of the listed job is allowed.
    expect((await hub.request('GET', `/v1/jobs/${ids.child}`, undefined, token)).status).toBe(200);
    expect((await hub.request('GET', `/v1/jobs/${ids.child}/events`, undefined, token)).status).toBe(200);
    // Another job of the same owner is not.
    await expectHidden(token, ids.alice2);

    const list = await hub.request('GET', '/v1/jobs', undefined, token);
    expect(list.body.jobs.map((j: { id: string }) => j.id)).toEqual([ids.batch]);
    const children = await hub.request('GET', `/v1/jobs?parent=${ids.batch}`, undefined, token);
    expect(children.body.jobs.map((j: { id: string }) => j.id)).toEqual([ids.child]);
    const elsewhere = await hub.request('GET', `/v1/jobs?parent=${ids.child}`, undefined, token);
    expect(elsewhere.body.jobs).toEqual([]);
  });

  it('refuses every worker endpoint to browser tokens, admin included (403 FORBIDDEN)', async () => {
    const own = ids.alice;
    const worker: [string, string, unknown?][] = [
      ['POST', '/v1/jobs', { owner: 'alice' }],
      ['POST', `/v1/jobs/${own}/events`, { events: [{ kind: 'log', message: 'x' }] }],
      ['POST', '/v1/events', { events: [{ job: own, kind: 'log', message: 'x' }] }],
      ['DELETE', `/v1/jobs/${own}`],
      ['POST', '/v1/tokens', { user: 'alice' }],
    ];
    for (const token of [await hub.token('alice'), await hub.token('root', { admin: true })]) {
      for (const [method, path, body] of worker) {
        const res = await hub.request(method, path, body, token);
        expect({ route: `${method} ${path}`, status: res.status, code: res.body.error.code }).toEqual({
          route: `${method} ${path}`,
          status: 403,
          code: ErrorCode.FORBIDDEN,
        });
      }
    }
    expect((await hub.request('GET', `/v1/jobs/${own}`)).body.seq).toBeGreaterThan(1);
  });

  it('lists only the user’s own jobs for a user token', async () => {
    const token = await hub.token('bob');
    const own = await hub.request('GET', '/v1/jobs', undefined, token);
    expect(own.status).toBe(200);
    expect(own.body.jobs.map((j: { id: string }) => j.id)).toEqual([ids.bob]);
    const explicit = await hub.request('GET', '/v1/jobs?owner=bob', undefined, token);
    expect(explicit.body.jobs.map((j: { id: string }) => j.id)).toEqual([ids.bob]);
    const other = await hub.request('GET', '/v1/jobs?owner=alice', undefined, token);
    expect(other.status).toBe(200);
    expect(other.body.jobs).toEqual([]);
  });

  it('lets an admin token list, read and control all jobs', async () => {
    const token = await hub.token('root', { admin: true });
    const list = await hub.request('GET', '/v1/jobs?limit=500', undefined, token);
    const listed = new Set(list.body.jobs.map((j: { id: string }) => j.id));
    for (const id of [ids.alice, ids.bob, ids.batch, ids.child]) expect(listed.has(id)).toBe(true);
    expect((await hub.request('GET', `/v1/jobs?owner=bob`, undefined, token)).body.jobs).toHaveLength(1);
    expect((await hub.request('GET', `/v1/jobs/${ids.bob}`, undefined, token)).status).toBe(200);
    const paused = await hub.request('POST', `/v1/jobs/${ids.bob}/pause`, undefined, token);
    expect(paused.status).toBe(200);
    expect(paused.body.control.paused).toBe(true);
  });

  it('lets an API key call everything', async () => {
    const job = (await hub.request('POST', '/v1/jobs', { id: uid(), owner: 'carol' })).body.id;
    const calls: [string, string, unknown, number][] = [
      ['GET', '/v1/jobs', undefined, 200],
      ['GET', `/v1/jobs/${job}`, undefined, 200],
      ['GET', `/v1/jobs/${job}/events`, undefined, 200],
      ['POST', `/v1/jobs/${job}/events`, { events: [{ kind: 'progress', percent: 1 }] }, 200],
      ['POST', '/v1/events', { events: [{ job, kind: 'log', message: 'x' }] }, 200],
      ['POST', `/v1/jobs/${job}/pause`, undefined, 200],
      ['POST', `/v1/jobs/${job}/resume`, undefined, 200],
      ['POST', `/v1/jobs/${job}/cancel`, undefined, 200],
      ['POST', '/v1/tokens', { user: 'carol', jobs: [job] }, 201],
      ['DELETE', `/v1/jobs/${job}`, undefined, 204],
    ];
    for (const [method, path, body, status] of calls) {
      const res = await hub.request(method, path, body);
      expect({ route: `${method} ${path}`, status: res.status }).toEqual({
        route: `${method} ${path}`,
        status,
      });
    }
  });
});
