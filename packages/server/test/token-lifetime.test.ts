/**
 * Browser tokens end when they say: a connection is closed with the "refresh
 * the token" code at its token's `exp` (not at the next heartbeat), on every
 * transport; and only well-formed tokens with a bounded lifetime, carried where
 * they belong, are accepted.
 */
import { createHash } from 'node:crypto';
import { CloseCode, ErrorCode } from '@headway/protocol';
import {
  connect,
  startHub,
  TEST_API_KEY,
  TEST_JWT_SECRET,
  type TestHub,
  waitFor,
} from '@headway/test-helpers';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** Generous: the close is due within a second of `exp`, but the machine may be busy. */
const CLOSED_WITHIN_MS = 15_000;
let hub: TestHub;

beforeAll(async () => {
  // A heartbeat far beyond the tests' waits: only the expiry timer can close a connection in time.
  hub = await startHub({ limits: { heartbeatMs: 600_000, connectionsPerUser: 1 } });
  expect((await hub.post('/v1/jobs', { id: 'exp-job', owner: 'alice', name: 'x' })).status).toBe(201);
});
afterAll(async () => {
  await hub?.close();
});

/**
 * A token for `alice` that expires in one to two seconds: `exp` is in whole
 * seconds from the current one, so a ttl of 1 may leave only milliseconds,
 * too few to reach `subscribed` before the close.
 */
const shortToken = () => hub.token('alice', { ttl: 2 });

function sign(claims: Record<string, unknown>, exp: number | null): Promise<string> {
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('alice')
    .setIssuer('headway');
  if (exp !== null) jwt.setExpirationTime(exp);
  return jwt.sign(new TextEncoder().encode(TEST_JWT_SECRET));
}

/** Read an SSE response until the server's `close` frame; resolves with its code. */
async function sseCloseCode(res: Response): Promise<number> {
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
    const match = /event: close\ndata: (.*)\n/.exec(text);
    if (match) return (JSON.parse(match[1]!) as { code: number }).code;
  }
  throw new Error(`stream ended without a close frame: ${text}`);
}

describe('a connection ends at its token’s expiry', () => {
  it('native WebSocket: closed with TOKEN_EXPIRED', async () => {
    const client = await connect(`${hub.wsUrl}?token=${await shortToken()}`);
    await client.next('welcome');
    client.send({ type: 'subscribe', id: 's', job: 'exp-job' });
    await client.next('subscribed');
    const { code } = await waitFor(() => client.closed, 'the close', CLOSED_WITHIN_MS);
    expect(code).toBe(CloseCode.TOKEN_EXPIRED);
  });

  it('user-progress dialect (seed 0): closed with its policy-violation code', async () => {
    const client = await connect(`${hub.url.replace(/^http/, 'ws')}/ws/alice?token=${await shortToken()}`);
    await waitFor(() => client.received.length > 0, 'the snapshot of alice’s jobs');
    const { code } = await waitFor(() => client.closed, 'the close', CLOSED_WITHIN_MS);
    expect(code).toBe(1008);
  });

  it('SSE: the stream ends with a TOKEN_EXPIRED close frame', async () => {
    const res = await fetch(`${hub.url}/v1/stream?job=exp-job&token=${await shortToken()}`);
    expect(res.status).toBe(200);
    expect(await sseCloseCode(res)).toBe(CloseCode.TOKEN_EXPIRED);
  });

  it('long-poll: the wait ends with 401 TOKEN_EXPIRED', async () => {
    const res = await hub.get('/v1/jobs/exp-job?since=1&wait=60', await shortToken());
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe(ErrorCode.TOKEN_EXPIRED);
  });
});

describe('tokens and where they are carried', () => {
  it('refuses a token without exp, one that lives too long, and a jobs claim that is not a list', async () => {
    const now = Math.floor(Date.now() / 1000);
    const tokens = [
      await sign({}, null),
      await sign({}, now + 8 * 24 * 3600),
      await sign({ jobs: 'exp-job' }, now + 60),
      await sign({ jobs: { 0: 'exp-job' } }, now + 60),
      await sign({ jobs: ['exp-job', 7] }, now + 60),
    ];
    for (const token of tokens) {
      const res = await hub.get('/v1/jobs/exp-job', token);
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe(ErrorCode.UNAUTHORIZED);
    }
    expect((await hub.get('/v1/jobs/exp-job', await sign({ jobs: ['exp-job'] }, now + 60))).status).toBe(200);
  });

  it('the session cookie carries browser tokens only: an API key there is refused', async () => {
    const cookie = `headway_token=${TEST_API_KEY}`;
    const ws = await connect(hub.wsUrl, { headers: { cookie } });
    expect((await waitFor(() => ws.closed, 'the close')).code).toBe(CloseCode.TOKEN_INVALID);
    const sse = await fetch(`${hub.url}/v1/stream?scope=all`, { headers: { cookie } });
    expect(sse.status).toBe(401);
    expect(((await sse.json()) as { error: { code: string } }).error.code).toBe(ErrorCode.UNAUTHORIZED);
    const rest = await hub.request('GET', '/v1/jobs/exp-job', undefined, null, { cookie });
    expect(rest.status).toBe(401);
  });

  it('dialects do not count API-key connections against a user, nor share a user named key:…', async () => {
    const keyUser = `key:${createHash('sha256').update(TEST_API_KEY).digest('hex').slice(0, 8)}`;
    const dialect = (token: string) => connect(`${hub.url.replace(/^http/, 'ws')}/ws/alice?token=${token}`);
    // The per-user limit is 1. Each user-progress connection admitted gets alice's job first.
    const clients = [
      await dialect(TEST_API_KEY),
      await dialect(TEST_API_KEY),
      await dialect(await hub.token('alice')),
    ];
    for (const c of clients) await waitFor(() => c.received.length > 0, 'the snapshot');
    const user = await connect(`${hub.wsUrl}?token=${await hub.token(keyUser)}`);
    expect((await user.next('welcome')).type).toBe('welcome');
    for (const c of clients) expect(c.ws.readyState).toBe(c.ws.OPEN);
    await Promise.all([...clients, user].map((c) => c.close()));
  });
});
