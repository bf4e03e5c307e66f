/**
 * Events as a worker reports them, over REST (`POST /v1/jobs/:id/events`,
 * `POST /v1/events`) and the worker SDK. The hub turns each into a stored
 * event; `key` makes a retried report apply once.
 */
import { type Static, Type } from '@sinclair/typebox';
import { LogLevelSchema } from './job-event.js';
import { JsonObjectSchema, JsonSchema } from './json.js';

/** Free text of a pause, resume or cancel. */
export const Reason = Type.String({ maxLength: 1024 });
const Key = Type.String({ minLength: 1, maxLength: 256, description: 'Idempotency key: applied once.' });
const Message = Type.String({ maxLength: 4096 });
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
    level: Type.Optional(LogLevelSchema),
  },
  { additionalProperties: false },
);
export const MetadataInput = Type.Object(
  { kind: Type.Literal('metadata'), key: Type.Optional(Key), metadata: JsonObjectSchema() },
  { additionalProperties: false },
);
export const CompletedInput = Type.Object(
  { kind: Type.Literal('completed'), key: Type.Optional(Key), result: Type.Optional(JsonSchema()) },
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
function reasonEvent<K extends string>(kind: K) {
  return Type.Object(
    { kind: Type.Literal(kind), key: Type.Optional(Key), reason: Type.Optional(Reason) },
    { additionalProperties: false },
  );
}
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
/** An event as a worker reports it. */
export type EventInput = Static<typeof EventInputSchema>;
export type ReportableKind = EventInput['kind'];
