/**
 * The session cookie: a browser token carried by an HttpOnly cookie, for clients
 * that cannot send a credential themselves (a page that opens `new
 * WebSocket('/ws/alice')` bare, a `fetch` without headers).
 *
 * The cookie is ambient: the browser attaches it to any request to the hub,
 * including one started by another site. Two things keep another site from
 * riding it: `SameSite=Lax` (no cookie on cross-site subrequests) and the Origin
 * check that every WebSocket upgrade and every browser REST request passes
 * (`OriginPolicy`), so a cookie-authenticated connection is accepted only from an
 * allowed origin (cross-site WebSocket hijacking).
 *
 * Only browser tokens go into the cookie, never API keys: `POST /v1/session`
 * refuses an API key, and the REST API verifies a cookie as a browser token.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ErrorCode } from '@headway/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Principal } from '../../auth.js';
import type { ServerContext } from '../../context.js';
import { HeadwayError } from '../../errors.js';
import { bearerToken, SESSION_COOKIE, sessionToken } from '../credentials.js';

/**
 * Who sends a dialect's HTTP request: the `Authorization: Bearer` credential, else
 * the session cookie (a browser token only), else `extra` (a `?token=`); null when
 * the request carries none of them.
 * @throws HeadwayError UNAUTHORIZED or TOKEN_EXPIRED for a credential that does not verify.
 */
export async function requestPrincipal(
  ctx: ServerContext,
  headers: IncomingHttpHeaders,
  extra?: string | null,
): Promise<Principal | null> {
  const header = bearerToken(headers.authorization);
  if (header !== null) return ctx.auth.authenticate(header);
  const cookie = sessionToken(headers.cookie);
  if (cookie !== null) return ctx.auth.verifyToken(cookie);
  if (extra) return ctx.auth.authenticate(extra);
  return null;
}

/** A `Set-Cookie` value for the session cookie; `maxAge` 0 deletes it. */
export function sessionCookie(token: string, maxAgeSeconds: number, secure: boolean): string {
  const attributes = [
    `${SESSION_COOKIE}=${token}`,
    'HttpOnly',
    'SameSite=Lax',
    'Path=/',
    `Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}`,
  ];
  if (secure) attributes.push('Secure');
  return attributes.join('; ');
}

/**
 * Whether the browser reached the hub over https: TLS on this socket, or a proxy
 * in front that says so. The header is trusted for this only: a client that lies
 * about it merely gets a cookie it will not send over plain http.
 */
function isHttps(request: FastifyRequest): boolean {
  if (request.protocol === 'https') return true;
  const forwarded = request.headers['x-forwarded-proto'];
  const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim().toLowerCase();
  return first === 'https';
}

/**
 * `POST /v1/session` (a browser token as `Authorization: Bearer`) sets the
 * session cookie to that token for its lifetime; `DELETE /v1/session` clears it.
 * An application's back end may set the same cookie itself when it shares the
 * hub's host (a reverse proxy) or a parent domain.
 */
export function registerSession(app: FastifyInstance, ctx: ServerContext): void {
  const errorBody = {
    type: 'object',
    properties: {
      error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } },
    },
  };
  const createSchema = {
    summary: 'Put a browser token in the HttpOnly session cookie.',
    description:
      'Sets the `headway_token` cookie (HttpOnly, SameSite=Lax, Secure over https) to the bearer browser ' +
      "token for the token's lifetime, for clients that cannot send a token themselves. API keys are refused.",
    security: [{ bearer: [] }],
    response: {
      200: {
        description: 'The cookie is set.',
        type: 'object',
        properties: { user: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' } },
        required: ['user', 'expiresAt'],
      },
      401: { description: 'No credentials, or invalid ones.', ...errorBody },
      403: { description: 'An API key cannot be put in the cookie.', ...errorBody },
    },
  };
  const deleteSchema = {
    summary: 'Clear the session cookie.',
    response: { 204: { description: 'The cookie is cleared.', type: 'null' } },
  };

  app.post('/v1/session', { schema: createSchema }, async function createSession(request, reply) {
    const token = bearerToken(request.headers.authorization);
    if (token === null) throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'missing credentials');
    const principal = await ctx.auth.authenticate(token);
    if (principal.kind !== 'user') {
      throw new HeadwayError(ErrorCode.FORBIDDEN, 'only a browser token can be put in the session cookie');
    }
    const now = Math.floor(Date.now() / 1000);
    const maxAge = principal.exp === null ? ctx.options.limits.tokenTtlSeconds : principal.exp - now;
    reply.header('set-cookie', sessionCookie(token, maxAge, isHttps(request)));
    reply.header('cache-control', 'no-store');
    return {
      user: principal.user,
      expiresAt: new Date((now + Math.max(0, maxAge)) * 1000).toISOString(),
    };
  });

  app.delete('/v1/session', { schema: deleteSchema }, async function deleteSession(request, reply) {
    reply.header('set-cookie', sessionCookie('', 0, isHttps(request)));
    return reply.code(204).send();
  });
}
