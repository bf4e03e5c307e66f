/**
 * What the REST API accepts: path parameters, query strings and bodies. The
 * hub validates requests with these schemas and publishes them in
 * `/openapi.json`; the worker SDK and the client build requests of these types.
 */
import { type Static, Type } from '@sinclair/typebox';
import { EventInputSchema, Reason } from './event-input.js';
import { JobId, UserId } from './ids.js';
import { JOB_STATUSES, JobKindSchema } from './job-state.js';
import { JsonObjectSchema } from './json.js';

/** Most events in one REST request. */
export const MAX_EVENTS_PER_REQUEST = 1000;
/** Events per page of `GET /v1/jobs/:id/events` when `limit` is not given. */
export const DEFAULT_EVENTS_PAGE = 100;
/** Largest `limit` of `GET /v1/jobs/:id/events`. */
export const MAX_EVENTS_PAGE = 1000;
/** Jobs per page of `GET /v1/jobs` when `limit` is not given. */
export const DEFAULT_JOBS_PAGE = 50;
/** Largest `limit` of `GET /v1/jobs` (the store's page limit). */
export const MAX_JOBS_PAGE = 500;

/**
 * Largest stage weight. Weights are relative, so this costs no plan anything, and
 * it keeps their sum finite (weights of 1e308 would add up to Infinity and freeze
 * the overall percent at 0).
 */
export const MAX_STAGE_WEIGHT = 1_000_000;

export const StageInputSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128 }),
    weight: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description: `Relative weight in the overall percent, at most ${MAX_STAGE_WEIGHT} (else HW_ERR_INVALID_VALUE); default 1.`,
      }),
    ),
  },
  { additionalProperties: false },
);
export type StageInput = Static<typeof StageInputSchema>;

/** `POST /v1/jobs`. */
export const CreateJobBody = Type.Object(
  {
    id: Type.Optional(JobId),
    owner: UserId,
    name: Type.Optional(Type.String({ maxLength: 256 })),
    kind: Type.Optional(JobKindSchema),
    parent: Type.Optional(JobId),
    stages: Type.Optional(Type.Array(StageInputSchema, { maxItems: 64 })),
    metadata: Type.Optional(JsonObjectSchema()),
    public: Type.Optional(Type.Boolean({ description: 'Watchable by anyone who holds the job id.' })),
  },
  { additionalProperties: false },
);
export type CreateJobInput = Static<typeof CreateJobBody>;

/** `POST /v1/jobs/:id/events`. */
export const PublishBody = Type.Object(
  { events: Type.Array(EventInputSchema, { minItems: 1, maxItems: MAX_EVENTS_PER_REQUEST }) },
  { additionalProperties: false },
);

/** `POST /v1/events`: events of many jobs. Validated per event so that one bad event fails only its job. */
export const PublishManyBody = Type.Object(
  {
    events: Type.Array(Type.Object({ job: JobId, kind: Type.String() }, { additionalProperties: true }), {
      minItems: 1,
      maxItems: MAX_EVENTS_PER_REQUEST,
    }),
  },
  { additionalProperties: false },
);

/** `POST /v1/jobs/:id/cancel`, `…/pause`, `…/resume`; the body is optional. */
export const ControlBody = Type.Object({ reason: Type.Optional(Reason) }, { additionalProperties: false });

/** `POST /v1/tokens`. */
export const TokenBody = Type.Object(
  {
    user: UserId,
    jobs: Type.Optional(Type.Array(JobId, { maxItems: 100 })),
    ttl: Type.Optional(Type.Integer({ minimum: 1 })),
    admin: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

/** `:id` of the job routes. */
export const IdParams = Type.Object({ id: JobId });

/** `GET /v1/jobs/:id`: a read, or a long-poll with `wait`. */
export const GetJobQuery = Type.Object(
  {
    since: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: 'Long-poll: wait for an event after this seq (default: current).',
      }),
    ),
    wait: Type.Optional(
      Type.Number({
        minimum: 0,
        description: 'Long-poll: seconds to wait for a change; capped by the server (default 60 s).',
      }),
    ),
    state: Type.Optional(
      Type.Union([Type.Literal('full'), Type.Literal('delta')], {
        description:
          'Long-poll: `delta` answers with only the fields of the state that changed after `since` ' +
          '(`{id, since, seq, patch}`) when `since` is the job’s seq at the request; `full` (default) ' +
          'answers with the whole state.',
      }),
    ),
  },
  { additionalProperties: false },
);

/** `GET /v1/jobs/:id/events`. */
export const EventsQuery = Type.Object(
  {
    since: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'Events after this seq.' })),
    limit: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_EVENTS_PAGE, default: DEFAULT_EVENTS_PAGE }),
    ),
  },
  { additionalProperties: false },
);

const STATUS = `(${JOB_STATUSES.join('|')})`;
/** A point in time in a query string. */
const Time = (description: string) => Type.String({ minLength: 1, maxLength: 64, description });
/** `GET /v1/jobs`. */
export const JobListQuery = Type.Object(
  {
    q: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        description: 'A part of the id, name or owner, in any case (e.g. `video-1`, `lecture`).',
      }),
    ),
    owner: Type.Optional(UserId),
    status: Type.Optional(
      Type.String({
        pattern: `^${STATUS}(,${STATUS})*$`,
        errorMessage: `a status or a comma-separated list of them: ${JOB_STATUSES.join(', ')}`,
        description: 'One status or a comma-separated list, e.g. `queued,running`.',
      }),
    ),
    parent: Type.Optional(JobId),
    kind: Type.Optional(JobKindSchema),
    createdAfter: Type.Optional(Time('Jobs created at or after this time (ISO 8601).')),
    createdBefore: Type.Optional(Time('Jobs created before this time (ISO 8601).')),
    updatedAfter: Type.Optional(Time('Jobs last updated at or after this time (ISO 8601).')),
    updatedBefore: Type.Optional(Time('Jobs last updated before this time (ISO 8601).')),
    order: Type.Optional(
      Type.Union([Type.Literal('updated'), Type.Literal('created')], {
        default: 'updated',
        description: 'Most recently `updated` (default) or `created` first.',
      }),
    ),
    counts: Type.Optional(
      Type.Boolean({ description: 'Also count the jobs matching every filter but `status`, per status.' }),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_JOBS_PAGE, default: DEFAULT_JOBS_PAGE })),
    cursor: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1024,
        description: '`next` of the previous page (same query).',
      }),
    ),
  },
  { additionalProperties: false },
);
