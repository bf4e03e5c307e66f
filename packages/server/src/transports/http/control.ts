/** `POST /v1/jobs/:id/cancel`, `…/pause`, `…/resume`: for API keys, and for browsers on the jobs they see. */
import { ControlBody, IdParams, JobStateRef } from '@headway/protocol';
import type { ServerContext } from '../../context.js';
import { notFound } from '../../errors.js';
import type { ControlAction } from '../../hub.js';
import { canControl } from '../../policy.js';
import type { HttpRoutes, RouteAccess } from './access.js';
import { AUTH_ERRORS, BEARER, errorResponses } from './openapi.js';

const summaries: Record<ControlAction, string> = {
  cancel: 'Request a cancel; a queued job is cancelled at once, unfinished children are cancelled too.',
  pause: 'Request a pause.',
  resume: 'Request a resume.',
};

export function registerControlRoutes(routes: HttpRoutes, ctx: ServerContext, access: RouteAccess): void {
  const { hub } = ctx;
  const { principalOf, visibleJob } = access;

  for (const action of ['cancel', 'pause', 'resume'] as const) {
    routes.post(
      `/jobs/:id/${action}`,
      {
        schema: {
          tags: ['control'],
          operationId: `${action}Job`,
          summary: summaries[action],
          description: 'API keys, and browser tokens for the jobs they can see. The body is optional.',
          security: BEARER,
          params: IdParams,
          body: ControlBody,
          response: {
            200: JobStateRef('The job after the request.'),
            ...errorResponses(...AUTH_ERRORS, 409, 410),
          },
        },
      },
      async function controlJob(request) {
        const principal = principalOf(request);
        const { id } = request.params;
        if (principal.kind === 'user') {
          const state = await visibleJob(principal, id);
          if (!canControl(principal, state)) throw notFound(id);
        }
        const by = principal.kind === 'user' ? principal.user : principal.id;
        // The validator turns an absent body into `{}`; the guard keeps to the type Fastify declares.
        return hub.control(id, action, request.body?.reason, by);
      },
    );
  }
}
