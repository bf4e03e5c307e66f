/** Reporting events (one job, or many in one request) and reading a job's event log. */
import {
  DEFAULT_EVENTS_PAGE,
  ErrorCode,
  EventPageSchema,
  EventsQuery,
  IdParams,
  PublishBody,
  PublishManyBody,
  type PublishManyResult,
  PublishManyResultSchema,
  PublishResultSchema,
  validateEventInput,
} from '@headway/protocol';
import type { ServerContext } from '../../context.js';
import type { PublishManyItem } from '../../hub.js';
import { type HttpRoutes, type RouteAccess, requireKey } from './access.js';
import { AUTH_ERRORS, BEARER, errorResponses } from './openapi.js';

export function registerEventRoutes(routes: HttpRoutes, ctx: ServerContext, access: RouteAccess): void {
  const { hub } = ctx;
  const { principalOf, visibleJob } = access;

  routes.post(
    '/jobs/:id/events',
    {
      schema: {
        tags: ['events'],
        operationId: 'publish',
        summary: 'Report events of one job (API key).',
        description:
          'Applied in order and all-or-nothing; an event whose `key` was applied before is skipped, so ' +
          'a retried request is applied once. The answer comes after the events are stored.',
        security: BEARER,
        params: IdParams,
        body: PublishBody,
        response: {
          200: PublishResultSchema,
          ...errorResponses(...AUTH_ERRORS, 403, 409, 410, 413),
        },
      },
    },
    async function publish(request) {
      requireKey(principalOf(request));
      return hub.publish(request.params.id, request.body.events);
    },
  );

  routes.post(
    '/events',
    {
      schema: {
        tags: ['events'],
        operationId: 'publishMany',
        summary: 'Report events of many jobs (API key).',
        description:
          'Each event carries its `job`. Each job is applied in order and all-or-nothing; a job with an ' +
          'invalid event is not applied at all and gets an error result, the others are applied.',
        security: BEARER,
        body: PublishManyBody,
        response: { 200: PublishManyResultSchema, ...errorResponses(...AUTH_ERRORS, 403, 413) },
      },
    },
    async function publishMany(request) {
      requireKey(principalOf(request));
      const order: string[] = [];
      const invalid = new Map<string, { code: ErrorCode; message: string }>();
      const valid: PublishManyItem[] = [];
      for (const item of request.body.events as ({ job: string } & Record<string, unknown>)[]) {
        const { job, ...input } = item;
        if (!order.includes(job) && !invalid.has(job)) order.push(job);
        if (invalid.has(job)) continue;
        const checked = validateEventInput(input);
        if (checked.ok) valid.push({ ...checked.value, job });
        else invalid.set(job, { code: ErrorCode[checked.code], message: checked.message });
      }
      const applied = await hub.publishMany(valid.filter((item) => !invalid.has(item.job)));
      const byJob = new Map<string, PublishManyResult>(applied.map((r) => [r.job, r]));
      const results = order.map((job): PublishManyResult => {
        const error = invalid.get(job);
        return error ? { job, error } : byJob.get(job)!;
      });
      return { results };
    },
  );

  routes.get(
    '/jobs/:id/events',
    {
      schema: {
        tags: ['events'],
        operationId: 'getEvents',
        summary: "Read a job's events after a seq (history).",
        security: BEARER,
        params: IdParams,
        querystring: EventsQuery,
        response: { 200: EventPageSchema, ...errorResponses(...AUTH_ERRORS) },
      },
    },
    async function getEvents(request) {
      const principal = principalOf(request);
      const { id } = request.params;
      await visibleJob(principal, id);
      const limit = request.query.limit ?? DEFAULT_EVENTS_PAGE;
      const events = await hub.getEvents(id, request.query.since ?? 0, limit);
      // A full page means more may follow.
      return events.length === limit ? { events, next: events[events.length - 1]!.seq } : { events };
    },
  );
}
