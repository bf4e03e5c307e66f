/**
 * Browser-token verification against forged and malformed tokens: every one is
 * refused with UNAUTHORIZED (or TOKEN_EXPIRED when only the time is wrong), and
 * a well-formed token is accepted, so that each refusal is for its own reason.
 */
import { createHmac } from 'node:crypto';
import { ErrorCode } from '@headway/protocol';
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { Auth } from '../src/auth.js';
import { HeadwayError } from '../src/errors.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const OTHER = 'another-secret-that-is-long-enough-987654321';
const now = () => Math.floor(Date.now() / 1000);
const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A compact token with any header and payload, HMAC-SHA256-signed with `secret`. */
function forge(header: unknown, payload: unknown, secret = SECRET): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

const HEADER = { alg: 'HS256', typ: 'JWT' };
const claims = (extra: Record<string, unknown> = {}) => ({
  sub: 'alice',
  iss: 'headway',
  iat: now(),
  exp: now() + 600,
  ...extra,
});

async function codeOf(auth: Auth, token: string): Promise<string> {
  try {
    await auth.verifyToken(token);
    return 'accepted';
  } catch (err) {
    expect(err).toBeInstanceOf(HeadwayError);
    return (err as HeadwayError).code;
  }
}

describe('browser token verification', () => {
  // No cache: each token is verified afresh.
  const auth = new Auth({ jwtSecret: SECRET, apiKeys: [], tokenCacheSize: 0 });

  it('accepts a token it minted and one signed elsewhere with the same secret and claims', async () => {
    const { token } = await auth.mint({ user: 'alice', jobs: ['j1'], ttl: 600 });
    expect(await auth.verifyToken(token)).toMatchObject({ kind: 'user', user: 'alice', admin: false });
    const elsewhere = await new SignJWT({ role: 'admin' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('bob')
      .setIssuer('headway')
      .setExpirationTime(now() + 60)
      .sign(new TextEncoder().encode(SECRET));
    expect(await auth.verifyToken(elsewhere)).toMatchObject({ user: 'bob', admin: true });
    expect(await codeOf(auth, forge(HEADER, claims()))).toBe('accepted');
  });

  const forged: [string, () => string][] = [
    ['another secret', () => forge(HEADER, claims(), OTHER)],
    ['alg none, no signature', () => `${b64({ alg: 'none' })}.${b64(claims())}.`],
    ['alg none, with a signature', () => forge({ alg: 'none' }, claims())],
    ['alg HS512 signed with HS256', () => forge({ alg: 'HS512' }, claims())],
    ['alg RS256 signed with the secret as an HMAC key', () => forge({ alg: 'RS256' }, claims())],
    ['no alg', () => forge({ typ: 'JWT' }, claims())],
    ['a critical extension', () => forge({ ...HEADER, crit: ['exp'] }, claims())],
    ['an unencoded payload', () => forge({ ...HEADER, b64: false, crit: ['b64'] }, claims())],
    [
      'the payload swapped after signing',
      () => {
        const [h, , s] = forge(HEADER, claims()).split('.');
        return `${h}.${b64(claims({ sub: 'mallory' }))}.${s}`;
      },
    ],
    [
      'the header swapped after signing',
      () => {
        const [, p, s] = forge(HEADER, claims()).split('.');
        return `${b64({ alg: 'HS256', typ: 'JOSE' })}.${p}.${s}`;
      },
    ],
    [
      // 32 bytes take 43 characters, whose last one carries 2 unused bits: the
      // same bytes, spelled differently.
      'a signature whose last character differs only in its unused bits',
      () => {
        const token = forge(HEADER, claims());
        const last = token.at(-1)!;
        const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
        const twin = alphabet[alphabet.indexOf(last) ^ 1]!;
        expect(Buffer.from(token.slice(token.lastIndexOf('.') + 1).slice(0, -1) + twin, 'base64url')).toEqual(
          Buffer.from(token.slice(token.lastIndexOf('.') + 1), 'base64url'),
        );
        return token.slice(0, -1) + twin;
      },
    ],
    ['a truncated signature', () => forge(HEADER, claims()).slice(0, -4)],
    ['a signature with bytes appended', () => `${forge(HEADER, claims())}AAAA`],
    ['an empty signature', () => forge(HEADER, claims()).replace(/\.[^.]*$/, '.')],
    ['four segments', () => `${forge(HEADER, claims())}.x`],
    [
      'a header that is not JSON',
      () => {
        const input = `${b64('{alg')}.${b64(claims())}`;
        return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
      },
    ],
    ['a payload that is not an object', () => forge(HEADER, ['alice'])],
    ['another issuer', () => forge(HEADER, claims({ iss: 'someone-else' }))],
    ['no issuer', () => forge(HEADER, claims({ iss: undefined }))],
    ['no exp', () => forge(HEADER, claims({ exp: undefined }))],
    ['exp as a string', () => forge(HEADER, claims({ exp: String(now() + 600) }))],
    ['nbf in the future', () => forge(HEADER, claims({ nbf: now() + 300 }))],
    ['nbf as a string', () => forge(HEADER, claims({ nbf: 'now' }))],
    ['iat as a string', () => forge(HEADER, claims({ iat: 'today' }))],
    ['no subject', () => forge(HEADER, claims({ sub: undefined }))],
    ['an empty subject', () => forge(HEADER, claims({ sub: '' }))],
    ['a lifetime past the maximum', () => forge(HEADER, claims({ exp: now() + 30 * 24 * 3600 }))],
    ['jobs that are not a list of ids', () => forge(HEADER, claims({ jobs: 'j1' }))],
    ['whitespace around it', () => ` ${forge(HEADER, claims())} `],
  ];

  it.each(forged)('refuses a token with %s (UNAUTHORIZED)', async (_name, make) => {
    expect(await codeOf(auth, make())).toBe(ErrorCode.UNAUTHORIZED);
  });

  it('answers TOKEN_EXPIRED for a valid token past its exp, and only then', async () => {
    expect(await codeOf(auth, forge(HEADER, claims({ exp: now() - 1 })))).toBe(ErrorCode.TOKEN_EXPIRED);
    expect(await codeOf(auth, forge(HEADER, claims({ exp: now() })))).toBe(ErrorCode.TOKEN_EXPIRED);
    // Expired and forged: the forgery is what is reported.
    expect(await codeOf(auth, forge(HEADER, claims({ exp: now() - 1 }), OTHER))).toBe(ErrorCode.UNAUTHORIZED);
  });
});

describe('API keys beside tokens', () => {
  it('takes an API key with the shape of a token as that key, and still verifies tokens', async () => {
    const auth = new Auth({ jwtSecret: SECRET, apiKeys: ['worker.key.one', 'plain-key'] });
    expect(await auth.authenticate('worker.key.one')).toMatchObject({ kind: 'key' });
    expect(await auth.authenticate('plain-key')).toMatchObject({ kind: 'key' });
    const { token } = await auth.mint({ user: 'alice', ttl: 600 });
    expect(await auth.authenticate(token)).toMatchObject({ kind: 'user', user: 'alice' });
    await expect(auth.authenticate('worker.key.two')).rejects.toMatchObject({ code: ErrorCode.UNAUTHORIZED });
  });

  it('refuses a credential that is neither a key nor a token, naming it an API key', async () => {
    const auth = new Auth({ jwtSecret: SECRET, apiKeys: ['plain-key'] });
    expect(await auth.authenticate(forge(HEADER, claims()))).toMatchObject({ kind: 'user', user: 'alice' });
    await expect(auth.authenticate('plain-key-2')).rejects.toThrow('invalid API key');
    await expect(auth.authenticate('a.b.c')).rejects.toMatchObject({ code: ErrorCode.UNAUTHORIZED });
  });
});
