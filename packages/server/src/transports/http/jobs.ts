/** `/v1/jobs`: create, read (and long-poll), list and delete jobs. */
import {
  CreateJobBody,
  DEFAULT_JOBS_PAGE,
  ErrorCode,
  GetJobQuery,
  IdParams,
  JOB_STATUSES,
  JobListQuery,
  JobListSchema,
  JobPatchAnswerSchema,
  JobStateRef,
  type JobStatus,
} from '@headway/protocol';
import { Type } from '@sinclair/typebox';
import type { ServerContext } from '../../context.js';
import { HeadwayError, notFound } from '../../errors.js';
import { canSee } from '../../policy.js';
import { statePatch } from '../../state-patch.js';
import type { ListJobsQuery } from '../../store/store.js';
import { type HttpRoutes, type RouteAccess, requireKey } from './access.js';
import { longPoll } from './long-poll.js';
import { AUTH_ERRORS, BEARER, errorResponses } from './openapi.js';

export function registerJobRoutes(routes: HttpRoutes, ctx: ServerContext, access: RouteAccess): void {
  const { hub } = ctx;
  const { principalOf, visibleJob } = access;

  routes.post(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'createJob',
        summary: 'Create a job (API key).',
        description: 'The id is generated when absent. A job under a `parent` counts in its roll-up.',
        security: BEARER,
        body: CreateJobBody,
        response: {
          201: JobStateRef('The job was created.'),
          ...errorResponses(...AUTH_ERRORS, 403, 409, 413),
        },
      },
    },
    async function createJob(request, reply) {
      requireKey(principalOf(request));
      const state = await hub.createJob(request.body);
      return reply
        .code(201)
        .header('location', `/v1/jobs/${encodeURIComponent(state.id)}`)
        .send(state);
    },
  );

  routes.get(
    '/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'getJob',
        summary: 'Read a job; long-poll with `wait` and `since`.',
        description:
          'With `wait`, the answer comes as soon as the job has an event after `since` (default: its ' +
          'current seq), or after `wait` seconds with the unchanged state. With `state=delta` and a ' +
          '`since` equal to the job’s seq at the request, only the fields that changed come back.',
        security: BEARER,
        params: IdParams,
        querystring: GetJobQuery,
        response: {
          200: Type.Union([JobStateRef('The job.'), JobPatchAnswerSchema]),
          ...errorResponses(...AUTH_ERRORS, 429),
        },
      },
    },
    async function getJob(request, reply) {
      const principal = principalOf(request);
      const { id } = request.params;
      const state = await visibleJob(principal, id);
      const { since, wait } = request.query;
      if (wait === undefined || wait <= 0) return state;
      const from = since ?? state.seq;
      const changed = await longPoll(ctx, request, reply, principal, { id, since: from, seconds: wait });
      if (!changed || !canSee(principal, changed)) throw notFound(id);
      // A patch needs the state the client has: the one read here, when it is at `since`.
      if (request.query.state === 'delta' && from === state.seq) {
        return { id, since: from, seq: changed.seq, patch: statePatch(state, changed) };
      }
      return changed;
    },
  );

  routes.get(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'listJobs',
        summary:
          'Search and list jobs: by a part of the id, name or owner, by owner, status, kind, parent and ' +
          'time, most recently updated (or created) first, page by page, with counts per status.',
        description:
          'A user token lists only its own jobs (another `owner` gives an empty list); a job-scoped ' +
          'token lists its jobs (and, with `parent` set to one of them, that job’s children). API keys ' +
          'and admin tokens list all jobs.',
        security: BEARER,
        querystring: JobListQuery,
        response: { 200: JobListSchema, ...errorResponses(...AUTH_ERRORS) },
      },
    },
    async function listJobs(request) {
      const principal = principalOf(request);
      const q = request.query;
      const query: ListJobsQuery = { limit: q.limit ?? DEFAULT_JOBS_PAGE };
      if (q.q !== undefined) query.search = q.q;
      if (q.owner !== undefined) query.owner = q.owner;
      if (q.status !== undefined) query.status = [...new Set(q.status.split(','))] as JobStatus[];
      if (q.kind !== undefined) query.kind = q.kind;
      if (q.parent !== undefined) query.parent = q.parent;
      if (q.kind !== undefined) query.kind = q.kind;
      if (q.createdAfter !== undefined) query.createdAfter = timeParam('createdAfter', q.createdAfter);
      if (q.createdBefore !== undefined) query.createdBefore = timeParam('createdBefore', q.createdBefore);
      if (q.updatedAfter !== undefined) query.updatedAfter = timeParam('updatedAfter', q.updatedAfter);
      if (q.updatedBefore !== undefined) query.updatedBefore = timeParam('updatedBefore', q.updatedBefore);
      if (q.order !== undefined) query.order = q.order;
      if (q.counts) query.counts = true;
      if (q.cursor !== undefined) query.cursor = q.cursor;
      if (principal.kind === 'user' && !principal.admin) {
        if (principal.jobs) {
          // The children of a listed job are visible too; the parent filter keeps the page to them.
          if (q.parent === undefined || !principal.jobs.has(q.parent)) {
            if (principal.jobs.size === 0) return nothingListed(query);
            query.ids = [...principal.jobs];
          }
        } else {
          if (q.owner !== undefined && q.owner !== principal.user) return nothingListed(query);
          query.owner = principal.user;
        }
      }
      const page = await hub.listJobs(query);
      const jobs = page.jobs.filter((job) => canSee(principal, job));
      return {
        jobs,
        ...(page.next === undefined ? {} : { next: page.next }),
        ...(page.counts === undefined ? {} : { counts: page.counts }),
      };
    },
  );

  routes.delete(
    '/jobs/:id',
    {
      schema: {
        tags: ['jobs'],
        operationId: 'deleteJob',
        summary: 'Delete a job with its descendants and their logs (API key).',
        description: 'Subscribers receive a final `deleted` event; later reports get HW_ERR_JOB_DELETED.',
        security: BEARER,
        params: IdParams,
        response: {
          // No body: typed as `undefined` so that `send()` takes none.
          204: Type.Unsafe<undefined>(Type.Null({ description: 'Deleted.' })),
          ...errorResponses(...AUTH_ERRORS, 403, 410),
        },
      },
    },
    async function deleteJob(request, reply) {
      requireKey(principalOf(request));
      await hub.deleteJob(request.params.id);
      return reply.code(204).send();
    },
  );
}

/** A time of the list's query string in ms since epoch; its name and an example when it is no time. */
function timeParam(name: string, value: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    throw new HeadwayError(
      ErrorCode.INVALID_VALUE,
      `${name} must be a time such as 2026-12-04T20:00:00Z (got "${value.slice(0, 64)}")`,
    );
  }
  return ms;
}

/** The answer for a query this principal can see nothing of: no jobs, and none of any status. */
function nothingListed(query: ListJobsQuery) {
  if (!query.counts) return { jobs: [] };
  return {
    jobs: [],
    counts: Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>,
  };
}
