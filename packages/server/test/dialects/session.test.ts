/**
 * The session cookie: set and cleared by the hub, honoured by the REST API, the
 * native WebSocket and the dialects, and refused to a page of another site
 * (cross-site WebSocket hijacking).
 */
import { ErrorCode } from '@headway/protocol';
import { connect, startHub, type TestHub, waitFor } from '@headway/test-helpers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE } from '../../src/transports/dialects/index.js';
import { createJob, uniqueId, wsBase } from './helpers.js';

const APP = 'https://app.example.com';
const EVIL = 'https://evil.example';

describe('session cookie', () => {
  let hub: TestHub;
  let alice: string;
  let job: string;

  beforeAll(async () => {
    hub = await startHub({ allowedOrigins: [APP] });
    alice = await hub.token('alice');
    job = uniqueId('session');
    await createJob(hub, { id: job, owner: 'alice' });
  });
  afterAll(async () => {
    await hub?.close();
  });

  const cookie = (token: string) => `${SESSION_COOKIE}=${token}`;

  it('POST /v1/session sets an HttpOnly, SameSite=Lax cookie for the token lifetime', async () => {
    const token = await hub.token('alice', { ttl: 600 });
    const res = await hub.request<{ user: string; expiresAt: string }>(
      'POST',
      '/v1/session',
      undefined,
      token,
    );
    expect(res.status).toBe(200);
    expect(res.body.user).toBe('alice');
    const set = res.headers.get('set-cookie')!;
    expect(set.startsWith(`${SESSION_COOKIE}=${token};`)).toBe(true);
    const attributes = set.split(';').map((a) => a.trim());
    expect(attributes).toEqual(expect.arrayContaining(['HttpOnly', 'SameSite=Lax', 'Path=/']));
    expect(attributes).not.toContain('Secure');
    const maxAge = Number(attributes.find((a) => a.startsWith('Max-Age='))!.slice(8));
    expect(maxAge).toBeGreaterThan(590);
    expect(maxAge).toBeLessThanOrEqual(600);
  });

  it('marks the cookie Secure when the browser came over https (a proxy says so)', async () => {
    const res = await fetch(`${hub.url}/v1/session`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice}`, 'x-forwarded-proto': 'https' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')!.split('; ')).toContain('Secure');
  });

  it('refuses API keys, missing and invalid credentials', async () => {
    const key = await hub.request<{ error: { code: string } }>('POST', '/v1/session', undefined);
    expect(key.status).toBe(403);
    expect(key.body.error.code).toBe(ErrorCode.FORBIDDEN);
    expect(key.headers.get('set-cookie')).toBeNull();
    const none = await hub.request<{ error: { code: string } }>('POST', '/v1/session', undefined, null);
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe(ErrorCode.UNAUTHORIZED);
    const bad = await hub.request<{ error: { code: string } }>('POST', '/v1/session', undefined, 'nope');
    expect(bad.status).toBe(401);
    expect(bad.body.error.code).toBe(ErrorCode.UNAUTHORIZED);
  });

  it('DELETE /v1/session clears the cookie', async () => {
    const res = await hub.request('DELETE', '/v1/session', undefined, null);
    expect(res.status).toBe(204);
    const set = res.headers.get('set-cookie')!;
    expect(set.startsWith(`${SESSION_COOKIE}=;`)).toBe(true);
    expect(set.split('; ')).toContain('Max-Age=0');
  });

  it('authenticates REST requests; a job of another user stays not found', async () => {
    const own = await fetch(`${hub.url}/v1/jobs/${job}`, { headers: { cookie: cookie(alice) } });
    expect(own.status).toBe(200);
    const bob = await hub.token('bob');
    const other = await fetch(`${hub.url}/v1/jobs/${job}`, { headers: { cookie: cookie(bob) } });
    expect(other.status).toBe(404);
    expect(((await other.json()) as { error: { code: string } }).error.code).toBe(ErrorCode.NOT_FOUND);
    // The Authorization header wins over the cookie.
    const header = await fetch(`${hub.url}/v1/jobs/${job}`, {
      headers: { cookie: cookie(bob), authorization: `Bearer ${alice}` },
    });
    expect(header.status).toBe(200);
  });

  it('never takes an API key from the cookie', async () => {
    const res = await fetch(`${hub.url}/v1/jobs/${job}`, { headers: { cookie: cookie(hub.apiKey) } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(ErrorCode.UNAUTHORIZED);
  });

  it('authenticates a native WebSocket from an allowed origin', async () => {
    const client = await connect(hub.wsUrl, { headers: { cookie: cookie(alice), origin: APP } });
    try {
      const welcome = await client.next('welcome');
      expect(welcome.user).toBe('alice');
    } finally {
      await client.close();
    }
  });

  it.each([
    ['the native endpoint', '/v1/ws'],
    ['user-progress', '/ws/alice'],
    ['task-subscribe', `/ws/progress/${'t'}`],
    ['job-stream', `/api/v1/jobs/${'j'}/stream`],
    ['download-status', `/ws/download/${'j'}`],
    ['user-dashboard', '/api/ws/progress'],
  ])('refuses a cross-site upgrade of %s that carries the cookie (403)', async (_name, path) => {
    const refused = await connect(`${wsBase(hub)}${path}`, {
      headers: { cookie: cookie(alice), origin: EVIL },
    }).then(
      () => null,
      (err: { status?: number }) => err,
    );
    expect(refused?.status).toBe(403);
  });

  it('accepts the same cookie-authenticated dialect upgrade from the allowed origin', async () => {
    const client = await connect(`${wsBase(hub)}/ws/alice`, {
      headers: { cookie: cookie(alice), origin: APP },
    });
    try {
      // Authenticated as alice: her active job comes at once.
      const first = await waitFor(
        () => (client.received as unknown as { job_id?: string }[]).find((m) => m.job_id === job),
        "alice's job",
      );
      expect(first).toMatchObject({ job_id: job, status: 'queued', progress: 0 });
    } finally {
      await client.close();
    }
  });
});
