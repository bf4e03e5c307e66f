/**
 * The REST API: the worker and back-end endpoints (create jobs, report events,
 * mint browser tokens), reads and control for browsers, long-poll, health,
 * readiness, metrics and the OpenAPI document generated from the route schemas.
 *
 * Request bodies are validated with the same TypeBox schemas (and the same
 * validator) as WebSocket messages, so one event is accepted or refused alike on
 * every transport. Every error leaves through one handler as
 * `{error: {code, message}}` with the status of its `HW_ERR_*` code.
 */
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import {
  ControlBody,
  CreateJobBody,
  type CreateJobInput,
  ErrorCode,
  type EventInput,
  JobId,
  type JobState,
  type JobStatus,
  PublishBody,
  PublishManyBody,
  TokenBody,
  UserId,
  validateEventInput,
} from '@headway/protocol';
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../auth.js';
import type { ServerContext } from '../context.js';
import { HeadwayError, notFound } from '../errors.js';
import { asHeadwayError, type ControlAction, type PublishManyItem, type PublishManyResult } from '../hub.js';
import { canControl, canReport, canSee, limitedUser } from '../policy.js';
import { type ListJobsQuery, StoreUnavailableError } from '../store/store.js';
import { bearerToken, sessionToken } from './credentials.js';
import { probeHealth } from './health.js';

/** Events per page of `GET /v1/jobs/:id/events` when `limit` is not given. */
export const DEFAULT_EVENTS_PAGE = 100;
/** Largest `limit` of `GET /v1/jobs/:id/events`. */
export const MAX_EVENTS_PAGE = 1000;
/** Jobs per page of `GET /v1/jobs` when `limit` is not given. */
export const DEFAULT_JOBS_PAGE = 50;
/** Largest `limit` of `GET /v1/jobs` (the store's page limit). */
export const MAX_JOBS_PAGE = 500;

// ---------------------------------------------------------------------------
// Response schemas: they document the API in /openapi.json; responses are
// serialized with JSON.stringify, like WebSocket frames (see `registerHttp`).
// The four with an `$id` are OpenAPI components, referenced by `$ref`.

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const Time = (description: string) => Type.String({ description: `${description} (ISO 8601)` });
const JsonObjectSchema = Type.Record(Type.String(), Type.Unknown());
const JobStatusSchema = Type.Union(
  (['queued', 'running', 'paused', 'completed', 'failed', 'cancelled'] as const).map((s) => Type.Literal(s)),
);
const Seq = Type.Integer({ minimum: 0, description: 'Per-job event sequence number, gapless from 1.' });

export const ControlSchema = Type.Object(
  {
    cancelRequested: Type.Boolean({
      description: 'A cancel was requested and the job has not finished yet.',
    }),
    paused: Type.Boolean({
      description: 'A pause was requested (or the job is paused) and no resume since.',
    }),
  },
  { $id: 'Control', description: "The job's control state: what a worker should act on." },
);
const ControlRef = Type.Ref('Control');

export const JobStateSchema = Type.Object(
  {
    id: Type.String(),
    owner: Type.String({ description: 'The user who may watch and control the job.' }),
    name: Type.String(),
    parent: Nullable(Type.String({ description: 'Id of the batch this job belongs to.' })),
    status: JobStatusSchema,
    progress: Type.Object({
      percent: Type.Number({
        minimum: 0,
        maximum: 100,
        description: 'Overall percent, stage weights applied.',
      }),
      current: Type.Optional(Type.Number({ description: 'Units done.' })),
      total: Type.Optional(Type.Number({ description: 'Units in all.' })),
      unit: Type.Optional(Type.String({ description: 'Name of the unit: bytes, videos, frames …' })),
    }),
    stage: Nullable(
      Type.Object({
        name: Type.String(),
        index: Type.Integer({ description: '0-based position in the stage plan.' }),
        count: Type.Integer({ description: 'Number of stages.' }),
        percent: Type.Number({ description: 'Percent within this stage.' }),
      }),
    ),
    stages: Type.Array(
      Type.Object({
        name: Type.String(),
        weight: Type.Number(),
        startedAt: Nullable(Time('Start of the stage')),
        endedAt: Nullable(Time('End of the stage')),
      }),
    ),
    message: Nullable(Type.String()),
    eta: Nullable(
      Type.Object({
        seconds: Type.Number({ description: 'Estimated seconds remaining.' }),
        confidence: Type.Number({ minimum: 0, maximum: 1 }),
        rate: Type.Number({ description: 'Smoothed rate, `unit` per second.' }),
        unit: Type.String(),
      }),
    ),
    metadata: JsonObjectSchema,
    result: Type.Unknown({ description: 'Small JSON set by `completed`, or null.' }),
    error: Nullable(
      Type.Object({
        code: Type.String(),
        message: Type.String(),
        retryable: Type.Boolean(),
        stage: Nullable(Type.String()),
      }),
    ),
    control: ControlRef,
    children: Nullable(
      Type.Object(
        {
          total: Type.Integer(),
          completed: Type.Integer(),
          failed: Type.Integer(),
          cancelled: Type.Integer(),
          percentSum: Type.Number(),
        },
        { description: "Roll-up of a batch parent's children." },
      ),
    ),
    public: Type.Boolean(),
    createdAt: Time('Creation time'),
    updatedAt: Time('Time of the last event'),
    startedAt: Nullable(Time('First transition to running')),
    finishedAt: Nullable(Time('Time the job reached a terminal status')),
    seq: Type.Integer({ minimum: 1, description: 'Seq of the last event folded into this state.' }),
    estimator: Nullable(JsonObjectSchema),
  },
  { $id: 'JobState', description: 'A job and its current state.' },
);

export const JobEventSchema = Type.Object(
  {
    job: Type.String(),
    seq: Seq,
    kind: Type.String({
      description: 'created, progress, stage, log, metadata, paused, resumed, completed …',
    }),
    data: JsonObjectSchema,
    at: Time('Time the hub accepted the event'),
  },
  { $id: 'JobEvent', description: "One change to a job, as stored in the job's log." },
);

export const PublishResultSchema = Type.Object(
  {
    seq: Type.Integer({ minimum: 1, description: 'Seq of the job after the events were applied.' }),
    control: ControlRef,
  },
  { description: 'The events are stored; `control` tells the worker about cancel and pause requests.' },
);

const ErrorDetail = Type.Object({
  code: Type.Union(Object.values(ErrorCode).map((c) => Type.Literal(c))),
  message: Type.String({ description: 'For people; clients act on `code`.' }),
});
export const ErrorBodySchema = Type.Object(
  { error: ErrorDetail },
  { $id: 'ErrorBody', description: 'Every error response: a stable `HW_ERR_*` code and a message.' },
);

export const PublishManyResultSchema = Type.Object(
  {
    results: Type.Array(
      Type.Union([
        Type.Object({ job: Type.String(), seq: Type.Integer({ minimum: 1 }), control: ControlRef }),
        Type.Object({ job: Type.String(), error: ErrorDetail }),
      ]),
      { description: 'One result per job, in the order the jobs first appear in the request.' },
    ),
  },
  { description: 'Each job is applied all-or-nothing; one job failing does not fail the others.' },
);

export const JobListSchema = Type.Object(
  {
    jobs: Type.Array(Type.Ref('JobState')),
    next: Type.Optional(Type.String({ description: 'Cursor of the next page; absent on the last page.' })),
  },
  { description: 'Jobs by most recent update first.' },
);

export const EventPageSchema = Type.Object(
  {
    events: Type.Array(Type.Ref('JobEvent')),
    next: Type.Optional(
      Type.Integer({ description: 'Pass as `since` to get the next page; absent when no more followed.' }),
    ),
  },
  { description: 'Events in seq order.' },
);

export const TokenSchema = Type.Object(
  {
    token: Type.String({ description: 'Browser token (JWT); send as `Authorization: Bearer <token>`.' }),
    expiresAt: Time('Expiry'),
  },
  { description: 'The token was minted.' },
);

const ProbeStatus = Type.Union([Type.Literal('ok'), Type.Literal('down')]);
export const ReadySchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  store: ProbeStatus,
  bus: ProbeStatus,
});

/** Schemas registered with `addSchema`: components of the OpenAPI document, referenced by `$id`. */
export const componentSchemas = [ControlSchema, ErrorBodySchema, JobEventSchema, JobStateSchema];

const errorDescriptions: Record<number, string> = {
  400: 'Invalid request: HW_ERR_BAD_JSON, HW_ERR_INVALID_MESSAGE or HW_ERR_INVALID_VALUE.',
  401: 'HW_ERR_UNAUTHORIZED (missing or invalid credentials) or HW_ERR_TOKEN_EXPIRED.',
  403: 'HW_ERR_FORBIDDEN: the credentials do not allow this operation (or HW_ERR_ORIGIN_NOT_ALLOWED).',
  404: 'HW_ERR_NOT_FOUND: no such job, or one the caller may not see.',
  409: 'HW_ERR_JOB_EXISTS, HW_ERR_JOB_FINISHED or HW_ERR_INVALID_TRANSITION.',
  410: 'HW_ERR_JOB_DELETED: the job was deleted; a worker reporting for it should stop.',
  413: 'HW_ERR_PAYLOAD_TOO_LARGE: the body, metadata or result is over its limit.',
  429: 'HW_ERR_TOO_MANY_CONNECTIONS: the user holds the maximum number of connections.',
  503: 'HW_ERR_STORE_UNAVAILABLE or HW_ERR_SHUTTING_DOWN; retry after `Retry-After` seconds.',
};

/** Error responses of a route, each documented with the codes it carries. */
function errorResponses(...statuses: number[]): Record<number, TSchema> {
  const responses: Record<number, TSchema> = {};
  for (const status of statuses) {
    responses[status] = Type.Ref('ErrorBody', { description: errorDescriptions[status] });
    if (status === 503) {
      Object.assign(responses[status], {
        headers: { 'retry-after': Type.Integer({ description: 'Seconds to wait before retrying.' }) },
      });
    }
  }
  return responses;
}

/** The errors every authenticated route may answer. */
const AUTH_ERRORS = [400, 401, 404, 503] as const;

// ---------------------------------------------------------------------------
// Request schemas that are REST-only (bodies come from the protocol package)

const IdParams = Type.Object({ id: JobId });
type IdParams = Static<typeof IdParams>;

const GetJobQuery = Type.Object(
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
  },
  { additionalProperties: false },
);
type GetJobQuery = Static<typeof GetJobQuery>;

const EventsQuery = Type.Object(
  {
    since: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'Events after this seq.' })),
    limit: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_EVENTS_PAGE, default: DEFAULT_EVENTS_PAGE }),
    ),
  },
  { additionalProperties: false },
);
type EventsQuery = Static<typeof EventsQuery>;

const STATUSES = 'queued|running|paused|completed|failed|cancelled';
const ListQuery = Type.Object(
  {
    owner: Type.Optional(UserId),
    status: Type.Optional(
      Type.String({
        pattern: `^(${STATUSES})(,(${STATUSES}))*$`,
        description: 'One status or a comma-separated list, e.g. `queued,running`.',
      }),
    ),
    parent: Type.Optional(JobId),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_JOBS_PAGE, default: DEFAULT_JOBS_PAGE })),
    cursor: Type.Optional(
      Type.String({ minLength: 1, maxLength: 1024, description: '`next` of the previous page.' }),
    ),
  },
  { additionalProperties: false },
);
type ListQuery = Static<typeof ListQuery>;

const BEARER = [{ bearer: [] }];
const PUBLIC: { [label: string]: readonly string[] }[] = [];

// ---------------------------------------------------------------------------

/**
 * Validates request parts with TypeBox's compiled checker, the validator the
 * WebSocket transport uses too. Querystring and params arrive as strings and are
 * converted first; an absent body counts as `{}` when the schema requires no field
 * (so `POST /v1/jobs/:id/cancel` works without a body).
 */
function typeboxValidator({ schema, httpPart }: { schema: TSchema; httpPart?: string }) {
  const check = TypeCompiler.Compile(schema);
  const convert = httpPart === 'querystring' || httpPart === 'params';
  const emptyBodyAllowed = httpPart === 'body' && Value.Check(schema, {});
  return function validate(data: unknown) {
    let value = data;
    if (convert) value = Value.Convert(schema, value);
    else if ((value === null || value === undefined) && emptyBodyAllowed) value = {};
    if (check.Check(value)) return { value };
    const first = check.Errors(value).First();
    const where = `${httpPart ?? 'request'}${first?.path ?? ''}`;
    return { error: new Error(first ? `${where}: ${first.message}` : `invalid ${where}`) };
  };
}

/** Map any error to its status and `HW_ERR_*` code. */
function classify(err: FastifyError | HeadwayError | Error): HeadwayError {
  if (err instanceof HeadwayError) return err;
  if (err instanceof StoreUnavailableError) return asHeadwayError(err);
  const code = (err as FastifyError).code;
  switch (code) {
    case 'FST_ERR_VALIDATION':
      return new HeadwayError(ErrorCode.INVALID_MESSAGE, err.message);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new HeadwayError(ErrorCode.BAD_JSON, 'the body is not valid JSON');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HeadwayError(ErrorCode.PAYLOAD_TOO_LARGE, 'the body is larger than the limit');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new HeadwayError(ErrorCode.INVALID_MESSAGE, 'unsupported content type; send application/json');
  }
  // Other request-level failures Fastify detects (bad Content-Length, bad URL …).
  const status = (err as FastifyError).statusCode;
  if (code?.startsWith('FST_') && status !== undefined && status >= 400 && status < 500) {
    return new HeadwayError(ErrorCode.INVALID_MESSAGE, err.message);
  }
  return new HeadwayError(ErrorCode.INTERNAL, 'internal error', { cause: err });
}

/**
 * Register the REST API, CORS, the error handler and the OpenAPI document on
 * `app`. Call before `listen`.
 */
export async function registerHttp(app: FastifyInstance, ctx: ServerContext): Promise<void> {
  const { hub, auth, metrics, options } = ctx;
  const limits = options.limits;
  const principals = new WeakMap<FastifyRequest, Principal>();

  function sendError(reply: FastifyReply, err: HeadwayError): FastifyReply {
    metrics.clientErrors.inc({ code: err.code });
    if (err.status === 503 && err.retryAfter !== undefined)
      reply.header('retry-after', String(err.retryAfter));
    if (err.status === 401) {
      reply.header(
        'www-authenticate',
        err.code === ErrorCode.TOKEN_EXPIRED ? 'Bearer error="invalid_token"' : 'Bearer realm="headway"',
      );
    }
    return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
  }

  // Set before any plugin adds a route: a route keeps the error handler in force when it was added.
  app.setErrorHandler(function handleError(err: FastifyError | HeadwayError, request, reply) {
    const mapped = classify(err);
    if (mapped.code === ErrorCode.INTERNAL) request.log.error({ err }, 'request failed');
    else if (mapped.status >= 500) request.log.warn({ code: mapped.code }, mapped.message);
    return sendError(reply, mapped);
  });

  app.setNotFoundHandler(function handleNotFound(request, reply) {
    return sendError(
      reply,
      new HeadwayError(ErrorCode.NOT_FOUND, `no route ${request.method} ${request.url.split('?')[0]}`),
    );
  });

  // Registered before any route so that its onRoute hook sees every route schema.
  await app.register(swagger, {
    // Components keep their `$id` as their name instead of `def-N`.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Headway',
        version: '1',
        description:
          'Real-time progress hub for long-running jobs. Workers and back ends authenticate with an API key; ' +
          'browsers with a token minted by `POST /v1/tokens`. Errors are `{error: {code, message}}` with a ' +
          'stable `HW_ERR_*` code.',
      },
      tags: [
        { name: 'jobs', description: 'Create, read, list and delete jobs.' },
        { name: 'events', description: 'Report progress; read the event log.' },
        { name: 'control', description: 'Cancel, pause and resume.' },
        { name: 'tokens', description: 'Browser tokens.' },
        { name: 'operations', description: 'Health, readiness, metrics and this document.' },
      ],
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'An API key (workers, back ends) or a browser token from `POST /v1/tokens`.',
          },
        },
      },
    },
  });

  // A browser request from an origin outside the allow-list is refused before
  // anything else runs, preflights included (a refused preflight makes the
  // browser drop the request). Requests without Origin are not from browsers.
  app.addHook('onRequest', function checkOrigin(request, _reply, done) {
    const origin = request.headers.origin;
    if (origin === undefined || ctx.origins.allows(origin, request.headers.host)) {
      done();
      return;
    }
    done(new HeadwayError(ErrorCode.ORIGIN_NOT_ALLOWED, 'origin not allowed'));
  });

  await app.register(cors, {
    delegator: (request, callback) => {
      callback(null, {
        origin: ctx.origins.allows(request.headers.origin, request.headers.host),
        credentials: true,
        methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
        allowedHeaders: ['Authorization', 'Content-Type'],
        exposedHeaders: ['Retry-After', 'Location'],
        maxAge: 600, // 10 minutes
      });
    },
  });

  await app.register(async function headwayApi(api) {
    api.setValidatorCompiler(typeboxValidator);
    // Responses are serialized like WebSocket frames; the response schemas document them.
    api.setSerializerCompiler(() => (data) => JSON.stringify(data));
    api.removeAllContentTypeParsers();
    const parseJson = api.getDefaultJsonParser('error', 'error');
    api.addContentTypeParser(
      'application/json',
      { parseAs: 'string' },
      function parseBody(request, body, done) {
        // An empty body with a JSON content type is "no body", as for the control routes.
        if (body === '') done(null, undefined);
        else parseJson(request, body as string, done);
      },
    );

    for (const schema of componentSchemas) api.addSchema(schema);
    registerOperations(api);
    await api.register(
      async function v1(routes) {
        routes.addHook('onRequest', async function authenticate(request) {
          // Without an Authorization header, the session cookie (a browser token only, never an API key).
          const header = bearerToken(request.headers.authorization) ?? undefined;
          const cookie = header === undefined ? sessionToken(request.headers.cookie) : null;
          principals.set(
            request,
            await (cookie !== null ? auth.verifyToken(cookie) : auth.authenticate(header)),
          );
        });
        registerJobs(routes);
        registerEvents(routes);
        registerControl(routes);
        registerTokens(routes);
      },
      { prefix: '/v1' },
    );
  });

  function principalOf(request: FastifyRequest): Principal {
    const principal = principals.get(request);
    if (!principal) throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'missing credentials');
    return principal;
  }

  function requireKey(principal: Principal): void {
    if (!canReport(principal)) throw new HeadwayError(ErrorCode.FORBIDDEN, 'this operation needs an API key');
  }

  /** The job's state, or the one NOT_FOUND for a job that is missing or not the caller's. */
  async function visibleJob(principal: Principal, id: string): Promise<JobState> {
    const state = await hub.getJob(id);
    if (!state || !canSee(principal, state)) throw notFound(id);
    return state;
  }

  /**
   * Wait up to `seconds` for the job to pass `since`, ending early when the
   * client goes away. Counts as one of the user's connections while it waits.
   */
  async function longPoll(
    request: FastifyRequest,
    reply: FastifyReply,
    principal: Principal,
    id: string,
    since: number,
    seconds: number,
  ): Promise<JobState | null> {
    const user = limitedUser(principal);
    if (user !== null && !(await ctx.connections.acquire(user))) {
      throw new HeadwayError(ErrorCode.TOO_MANY_CONNECTIONS, 'too many open connections for this user');
    }
    const controller = new AbortController();
    const abort = () => controller.abort();
    request.raw.once('close', abort);
    reply.raw.once('close', abort);
    metrics.connections.inc({ transport: 'long-poll' });
    try {
      const timeoutMs = Math.min(seconds, limits.longPollMaxSeconds) * 1000;
      return await hub.waitForChange(id, since, timeoutMs, controller.signal);
    } finally {
      metrics.connections.dec({ transport: 'long-poll' });
      request.raw.off('close', abort);
      reply.raw.off('close', abort);
      if (user !== null) ctx.connections.release(user);
    }
  }

  // -------------------------------------------------------------------------

  function registerOperations(api: FastifyInstance): void {
    api.get(
      '/healthz',
      {
        schema: {
          tags: ['operations'],
          operationId: 'health',
          summary: 'Liveness: the process is up.',
          security: PUBLIC,
          response: { 200: Type.Object({ status: Type.Literal('ok') }, { description: 'Alive.' }) },
        },
      },
      async () => ({ status: 'ok' as const }),
    );

    api.get(
      '/readyz',
      {
        schema: {
          tags: ['operations'],
          operationId: 'ready',
          summary: 'Readiness: the store and the bus answer.',
          security: PUBLIC,
          response: {
            200: Type.Object(ReadySchema.properties, { description: 'Ready to serve.' }),
            503: Type.Object(ReadySchema.properties, { description: 'The store or the bus is down.' }),
          },
        },
      },
      async (_request, reply) => {
        const [store, bus] = await Promise.all([
          probeHealth(() => hub.store.ping()),
          probeHealth(() => hub.bus.ping()),
        ]);
        const ready = store === 'ok' && bus === 'ok';
        return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', store, bus });
      },
    );

    api.get(
      '/metrics',
      {
        schema: {
          tags: ['operations'],
          operationId: 'metrics',
          summary: 'Prometheus metrics.',
          security: PUBLIC,
          produces: ['text/plain'],
          response: { 200: Type.String({ description: 'Prometheus text exposition format.' }) },
        },
      },
      async (_request, reply) => {
        const text = await metrics.registry.metrics();
        return reply.type(metrics.registry.contentType).send(text);
      },
    );

    api.get(
      '/openapi.json',
      {
        schema: {
          tags: ['operations'],
          operationId: 'openapi',
          summary: 'This OpenAPI document.',
          security: PUBLIC,
          response: {
            200: Type.Object({}, { additionalProperties: true, description: 'OpenAPI 3.1 document.' }),
          },
        },
      },
      async () => app.swagger(),
    );
  }

  function registerJobs(routes: FastifyInstance): void {
    routes.post<{ Body: Static<typeof CreateJobBody> }>(
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
            201: Type.Ref('JobState', { description: 'The job was created.' }),
            ...errorResponses(...AUTH_ERRORS, 403, 409, 413),
          },
        },
      },
      async (request, reply) => {
        requireKey(principalOf(request));
        const state = await hub.createJob(request.body as CreateJobInput);
        return reply
          .code(201)
          .header('location', `/v1/jobs/${encodeURIComponent(state.id)}`)
          .send(state);
      },
    );

    routes.get<{ Params: IdParams; Querystring: GetJobQuery }>(
      '/jobs/:id',
      {
        schema: {
          tags: ['jobs'],
          operationId: 'getJob',
          summary: 'Read a job; long-poll with `wait` and `since`.',
          description:
            'With `wait`, the answer comes as soon as the job has an event after `since` (default: its ' +
            'current seq), or after `wait` seconds with the unchanged state.',
          security: BEARER,
          params: IdParams,
          querystring: GetJobQuery,
          response: {
            200: Type.Ref('JobState', { description: 'The job.' }),
            ...errorResponses(...AUTH_ERRORS, 429),
          },
        },
      },
      async (request, reply) => {
        const principal = principalOf(request);
        const { id } = request.params;
        const state = await visibleJob(principal, id);
        const { since, wait } = request.query;
        if (wait === undefined || wait <= 0) return state;
        const changed = await longPoll(request, reply, principal, id, since ?? state.seq, wait);
        if (!changed || !canSee(principal, changed)) throw notFound(id);
        return changed;
      },
    );

    routes.get<{ Querystring: ListQuery }>(
      '/jobs',
      {
        schema: {
          tags: ['jobs'],
          operationId: 'listJobs',
          summary: 'List jobs by owner, status and parent, most recently updated first.',
          description:
            'A user token lists only its own jobs (another `owner` gives an empty list); a job-scoped ' +
            'token lists its jobs (and, with `parent` set to one of them, that job’s children). API keys ' +
            'and admin tokens list all jobs.',
          security: BEARER,
          querystring: ListQuery,
          response: { 200: JobListSchema, ...errorResponses(...AUTH_ERRORS) },
        },
      },
      async (request) => {
        const principal = principalOf(request);
        const q = request.query;
        const query: ListJobsQuery = { limit: q.limit ?? DEFAULT_JOBS_PAGE };
        if (q.owner !== undefined) query.owner = q.owner;
        if (q.status !== undefined) query.status = [...new Set(q.status.split(','))] as JobStatus[];
        if (q.parent !== undefined) query.parent = q.parent;
        if (q.cursor !== undefined) query.cursor = q.cursor;
        if (principal.kind === 'user' && !principal.admin) {
          if (principal.jobs) {
            // The children of a listed job are visible too; the parent filter keeps the page to them.
            if (q.parent === undefined || !principal.jobs.has(q.parent)) {
              if (principal.jobs.size === 0) return { jobs: [] };
              query.ids = [...principal.jobs];
            }
          } else {
            if (q.owner !== undefined && q.owner !== principal.user) return { jobs: [] };
            query.owner = principal.user;
          }
        }
        const page = await hub.listJobs(query);
        const jobs = page.jobs.filter((job) => canSee(principal, job));
        return page.next === undefined ? { jobs } : { jobs, next: page.next };
      },
    );

    routes.delete<{ Params: IdParams }>(
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
            204: Type.Null({ description: 'Deleted.' }),
            ...errorResponses(...AUTH_ERRORS, 403, 410),
          },
        },
      },
      async (request, reply) => {
        requireKey(principalOf(request));
        await hub.deleteJob(request.params.id);
        return reply.code(204).send();
      },
    );
  }

  function registerEvents(routes: FastifyInstance): void {
    routes.post<{ Params: IdParams; Body: Static<typeof PublishBody> }>(
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
      async (request) => {
        requireKey(principalOf(request));
        return hub.publish(request.params.id, request.body.events as EventInput[]);
      },
    );

    routes.post<{ Body: Static<typeof PublishManyBody> }>(
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
      async (request) => {
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

    routes.get<{ Params: IdParams; Querystring: EventsQuery }>(
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
      async (request) => {
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

  function registerControl(routes: FastifyInstance): void {
    const summaries: Record<ControlAction, string> = {
      cancel: 'Request a cancel; a queued job is cancelled at once, unfinished children are cancelled too.',
      pause: 'Request a pause.',
      resume: 'Request a resume.',
    };
    for (const action of ['cancel', 'pause', 'resume'] as const) {
      routes.post<{ Params: IdParams; Body: Static<typeof ControlBody> | undefined }>(
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
              200: Type.Ref('JobState', { description: 'The job after the request.' }),
              ...errorResponses(...AUTH_ERRORS, 409, 410),
            },
          },
        },
        async (request) => {
          const principal = principalOf(request);
          const { id } = request.params;
          if (principal.kind === 'user') {
            const state = await visibleJob(principal, id);
            if (!canControl(principal, state)) throw notFound(id);
          }
          const by = principal.kind === 'user' ? principal.user : principal.id;
          return hub.control(id, action, request.body?.reason, by);
        },
      );
    }
  }

  function registerTokens(routes: FastifyInstance): void {
    routes.post<{ Body: Static<typeof TokenBody> }>(
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
      async (request, reply) => {
        requireKey(principalOf(request));
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
}
