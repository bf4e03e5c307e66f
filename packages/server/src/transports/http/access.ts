/**
 * Who is calling a `/v1` route, and what it may see: the principal of each
 * request (from its bearer credential or the session cookie), checked once in
 * an `onRequest` hook and read by the handlers.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ErrorCode, type JobState } from '@headway/protocol';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { Auth, Principal } from '../../auth.js';
import { HeadwayError, notFound } from '../../errors.js';
import type { Hub } from '../../hub.js';
import { canReport, canSee } from '../../policy.js';
import { bearerToken, sessionToken } from '../credentials.js';

/** A Fastify scope whose route types come from the TypeBox schemas of the routes. */
export type HttpRoutes = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** What the route handlers need to know about the caller. */
export interface RouteAccess {
  /** The request's principal; HW_ERR_UNAUTHORIZED outside the authenticated scope. */
  principalOf(request: FastifyRequest): Principal;
  /** The job's state, or the one NOT_FOUND for a job that is missing or not the caller's. */
  visibleJob(principal: Principal, id: string): Promise<JobState>;
}

/** Refuse anything but an API key (workers and back ends). */
export function requireKey(principal: Principal): void {
  if (!canReport(principal)) throw new HeadwayError(ErrorCode.FORBIDDEN, 'this operation needs an API key');
}

/**
 * The access checks of the REST API, and the `onRequest` hook that
 * authenticates each request of the scope it is added to.
 */
export function createAccess(hub: Hub, auth: Auth) {
  const principals = new WeakMap<FastifyRequest, Principal>();

  async function authenticate(request: FastifyRequest): Promise<void> {
    // Without an Authorization header, the session cookie (a browser token only, never an API key).
    const header = bearerToken(request.headers.authorization) ?? undefined;
    const cookie = header === undefined ? sessionToken(request.headers.cookie) : null;
    principals.set(request, await (cookie !== null ? auth.verifyToken(cookie) : auth.authenticate(header)));
  }

  function principalOf(request: FastifyRequest): Principal {
    const principal = principals.get(request);
    if (!principal) throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'missing credentials');
    return principal;
  }

  async function visibleJob(principal: Principal, id: string): Promise<JobState> {
    const state = await hub.getJob(id);
    if (!state || !canSee(principal, state)) throw notFound(id);
    return state;
  }

  return { authenticate, principalOf, visibleJob };
}
