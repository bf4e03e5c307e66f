/** `POST /v1/tokens`: a back end mints a browser token scoped to a user or to jobs. */
import { ErrorCode, TokenBody, TokenSchema } from '@headway/protocol';
import type { ServerContext } from '../../context.js';
import { HeadwayError } from '../../errors.js';
import { type HttpRoutes, type RouteAccess, requireKey } from './access.js';
import { AUTH_ERRORS, BEARER, errorResponses } from './openapi.js';

export function registerTokenRoutes(routes: HttpRoutes, ctx: ServerContext, access: RouteAccess): void {
  const { auth, options } = ctx;
  const limits = options.limits;

  routes.post(
    '/tokens',
    {
      schema: {
        tags: ['tokens'],
        operationId: 'mintToken',
        summary: 'Mint a browser token (API key).',
        description:
          'Scoped to a user (all jobs it owns), or with `jobs` to those jobs and their children; `admin` ' +
          'sees everything. `ttl` in seconds defaults to the server setting (1 hour) and may not exceed ' +
          'its maximum (7 days by default: HW_ERR_INVALID_VALUE).',
        security: BEARER,
        body: TokenBody,
        response: { 201: TokenSchema, ...errorResponses(...AUTH_ERRORS, 403) },
      },
    },
    async function mintToken(request, reply) {
      requireKey(access.principalOf(request));
      const { user, jobs, admin, ttl = limits.tokenTtlSeconds } = request.body;
      if (ttl > limits.maxTokenTtlSeconds) {
        throw new HeadwayError(
          ErrorCode.INVALID_VALUE,
          `ttl is ${ttl} s; the limit is ${limits.maxTokenTtlSeconds} s`,
        );
      }
      return reply.code(201).send(await auth.mint({ user, jobs, admin, ttl }));
    },
  );
}
