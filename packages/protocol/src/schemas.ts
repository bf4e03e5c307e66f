/**
 * JSON schemas of the protocol (TypeBox), shared by the REST routes (which
 * publish them in /openapi.json) and the WebSocket message validator.
 */
import { type TSchema, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

/** Job ids: 1–128 characters of letters, digits and `._:-`. */
export const JobId = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:-]+$' });
/** User ids (token `sub`, job owner). */
export const UserId = Type.String({ minLength: 1, maxLength: 256 });
const Reason = Type.String({ maxLength: 1024 });
const Key = Type.String({ minLength: 1, maxLength: 256 });
const Message = Type.String({ maxLength: 4096 });
const JsonObject = Type.Record(Type.String(), Type.Unknown());

export const StageInputSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128 }),
    weight: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  },
  { additionalProperties: false },
);

export const CreateJobBody = Type.Object(
  {
    id: Type.Optional(JobId),
    owner: UserId,
    name: Type.Optional(Type.String({ maxLength: 256 })),
    parent: Type.Optional(JobId),
    stages: Type.Optional(Type.Array(StageInputSchema, { maxItems: 64 })),
    metadata: Type.Optional(JsonObject),
    public: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const NonNegative = Type.Number({ minimum: 0 });
export const ProgressInput = Type.Object(
  {
    kind: Type.Literal('progress'),
    key: Type.Optional(Key),
    percent: Type.Optional(Type.Number()),
    current: Type.Optional(NonNegative),
    total: Type.Optional(NonNegative),
    unit: Type.Optional(Type.String({ maxLength: 32 })),
    message: Type.Optional(Message),
  },
  { additionalProperties: false },
);
export const StageEventInput = Type.Object(
  {
    kind: Type.Literal('stage'),
    key: Type.Optional(Key),
    name: Type.String({ minLength: 1, maxLength: 128 }),
    message: Type.Optional(Message),
  },
  { additionalProperties: false },
);
export const LogInput = Type.Object(
  {
    kind: Type.Literal('log'),
    key: Type.Optional(Key),
    message: Message,
    level: Type.Optional(
      Type.Union([Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')]),
    ),
  },
  { additionalProperties: false },
);
export const MetadataInput = Type.Object(
  { kind: Type.Literal('metadata'), key: Type.Optional(Key), metadata: JsonObject },
  { additionalProperties: false },
);
export const CompletedInput = Type.Object(
  { kind: Type.Literal('completed'), key: Type.Optional(Key), result: Type.Optional(Type.Unknown()) },
  { additionalProperties: false },
);
export const FailedInput = Type.Object(
  {
    kind: Type.Literal('failed'),
    key: Type.Optional(Key),
    error: Type.Object(
      {
        code: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
        message: Message,
        retryable: Type.Optional(Type.Boolean()),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
const reasonEvent = <K extends string>(kind: K) =>
  Type.Object(
    { kind: Type.Literal(kind), key: Type.Optional(Key), reason: Type.Optional(Reason) },
    { additionalProperties: false },
  );
export const CancelledInput = reasonEvent('cancelled');
export const PausedInput = reasonEvent('paused');
export const ResumedInput = reasonEvent('resumed');

export const EventInputSchema = Type.Union([
  ProgressInput,
  StageEventInput,
  LogInput,
  MetadataInput,
  CompletedInput,
  FailedInput,
  CancelledInput,
  PausedInput,
  ResumedInput,
]);

/** Most events in one REST request. */
export const MAX_EVENTS_PER_REQUEST = 1000;

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

export const ControlBody = Type.Object({ reason: Type.Optional(Reason) }, { additionalProperties: false });

export const TokenBody = Type.Object(
  {
    user: UserId,
    jobs: Type.Optional(Type.Array(JobId, { maxItems: 100 })),
    ttl: Type.Optional(Type.Integer({ minimum: 1 })),
    admin: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

// ---------------------------------------------------------------------------
// WebSocket client messages

const SubId = Type.String({ minLength: 1, maxLength: 64 });
const Seq = Type.Integer({ minimum: 0 });

export const clientMessageSchemas = {
  auth: Type.Object(
    { type: Type.Literal('auth'), token: Type.String({ minLength: 1, maxLength: 8192 }) },
    { additionalProperties: false },
  ),
  subscribe: Type.Union([
    Type.Object(
      { type: Type.Literal('subscribe'), id: SubId, job: JobId, since: Type.Optional(Seq) },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        type: Type.Literal('subscribe'),
        id: SubId,
        scope: Type.Union([Type.Literal('user'), Type.Literal('all')]),
        since: Type.Optional(Type.Record(Type.String(), Seq)),
      },
      { additionalProperties: false },
    ),
  ]),
  unsubscribe: Type.Object({ type: Type.Literal('unsubscribe'), id: SubId }, { additionalProperties: false }),
  get_state: Type.Object(
    { type: Type.Literal('get_state'), id: SubId, job: JobId },
    { additionalProperties: false },
  ),
  ping: Type.Object(
    { type: Type.Literal('ping'), ts: Type.Optional(Type.Number()) },
    { additionalProperties: false },
  ),
  cancel: controlMessage('cancel'),
  pause: controlMessage('pause'),
  resume: controlMessage('resume'),
} satisfies Record<string, TSchema>;

function controlMessage<K extends string>(type: K) {
  return Type.Object(
    { type: Type.Literal(type), id: SubId, job: JobId, reason: Type.Optional(Reason) },
    { additionalProperties: false },
  );
}

export type ClientMessageType = keyof typeof clientMessageSchemas;

const compiled = Object.fromEntries(
  Object.entries(clientMessageSchemas).map(([type, schema]) => [type, TypeCompiler.Compile(schema)]),
) as unknown as Record<ClientMessageType, ReturnType<typeof TypeCompiler.Compile>>;

const eventCompiled = TypeCompiler.Compile(EventInputSchema);

export type ValidationResult<T> =
  | { ok: true; value: T }
  | { ok: false; code: 'UNKNOWN_TYPE' | 'INVALID_MESSAGE'; message: string };

/**
 * Validates a parsed client message. Distinguishes an unknown `type` from a known
 * type with bad fields, so each gets its own error code.
 */
export function validateClientMessage(value: unknown): ValidationResult<import('./types.js').ClientMessage> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'INVALID_MESSAGE', message: 'a message must be a JSON object' };
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') return { ok: false, code: 'INVALID_MESSAGE', message: 'missing "type"' };
  if (!Object.hasOwn(compiled, type)) {
    return { ok: false, code: 'UNKNOWN_TYPE', message: `unknown message type "${type.slice(0, 64)}"` };
  }
  const check = compiled[type as ClientMessageType];
  if (check.Check(value)) return { ok: true, value: value as import('./types.js').ClientMessage };
  const first = check.Errors(value).First();
  return {
    ok: false,
    code: 'INVALID_MESSAGE',
    message: first ? `${type}: ${first.path || '/'} ${first.message}` : `invalid ${type} message`,
  };
}

/** Validates one reported event (used for `POST /v1/events`, where each event is checked on its own). */
export function validateEventInput(value: unknown): ValidationResult<import('./types.js').EventInput> {
  if (eventCompiled.Check(value)) return { ok: true, value: value as import('./types.js').EventInput };
  const first = eventCompiled.Errors(value).First();
  return {
    ok: false,
    code: 'INVALID_MESSAGE',
    message: first ? `${first.path || '/'} ${first.message}` : 'invalid event',
  };
}
