/**
 * Events: one change to a job, appended to its log with a gapless `seq`, sent
 * to subscribers and read back as history.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { TERMINAL_STATUSES } from './codes.js';
import { ChildrenSummarySchema, IsoTime, JobErrorSchema } from './job-state.js';
import { JsonObjectSchema, JsonSchema } from './json.js';

export const LogLevelSchema = Type.Union([
  Type.Literal('debug'),
  Type.Literal('info'),
  Type.Literal('warn'),
  Type.Literal('error'),
]);
export type LogLevel = Static<typeof LogLevelSchema>;

const Reason = Type.Optional(Type.String());
const Requested = Type.Object({ reason: Reason, by: Type.Optional(Type.String()) });

/** Event data by kind, as stored in the log and sent on the wire. */
export const EventDataSchemas = {
  created: Type.Object({
    owner: Type.String(),
    name: Type.String(),
    kind: Type.Optional(Type.String()),
    parent: Type.Union([Type.String(), Type.Null()]),
    stages: Type.Array(Type.Object({ name: Type.String(), weight: Type.Number() })),
    metadata: JsonObjectSchema(),
    public: Type.Boolean(),
  }),
  progress: Type.Object({
    percent: Type.Optional(Type.Number()),
    current: Type.Optional(Type.Number()),
    total: Type.Optional(Type.Number()),
    unit: Type.Optional(Type.String()),
    message: Type.Optional(Type.String()),
  }),
  stage: Type.Object({ name: Type.String(), message: Type.Optional(Type.String()) }),
  log: Type.Object({ message: Type.String(), level: LogLevelSchema }),
  metadata: Type.Object({ metadata: JsonObjectSchema() }),
  paused: Type.Object({ reason: Reason }),
  resumed: Type.Object({ reason: Reason }),
  completed: Type.Object({ result: Type.Optional(JsonSchema()) }),
  failed: Type.Object({ error: JobErrorSchema }),
  cancelled: Requested,
  cancel_requested: Requested,
  pause_requested: Requested,
  resume_requested: Requested,
  /** A change in a batch parent's roll-up of its children. */
  children: ChildrenSummarySchema,
  /** The job was deleted; the last event a subscriber receives for it. Not stored. */
  deleted: Type.Record(Type.String(), Type.Never()),
} satisfies Record<string, TSchema>;

export type EventKind = keyof typeof EventDataSchemas;
export type EventDataMap = { [K in EventKind]: Static<(typeof EventDataSchemas)[K]> };

/** Every event kind. */
export const EVENT_KINDS = Object.keys(EventDataSchemas) as EventKind[];
export const EventKindSchema = Type.Union(EVENT_KINDS.map((kind) => Type.Literal(kind)));

/** Kinds after which a job has no more events: its terminal statuses, and deletion. */
export const TERMINAL_KINDS: readonly EventKind[] = [
  ...(TERMINAL_STATUSES as readonly EventKind[]),
  'deleted',
];

export const JobEventSchema = Type.Object(
  {
    job: Type.String(),
    seq: Type.Integer({ minimum: 0, description: 'Per-job event sequence number, gapless from 1.' }),
    kind: EventKindSchema,
    data: Type.Union(Object.values(EventDataSchemas), { description: 'The data of the event’s `kind`.' }),
    at: IsoTime('Time the hub accepted the event'),
  },
  { $id: 'JobEvent', description: "One change to a job, as stored in the job's log." },
);

/** One event; `JobEvent<'progress'>` narrows `kind` and `data` together. */
export type JobEvent<K extends EventKind = EventKind> = Omit<
  Static<typeof JobEventSchema>,
  'kind' | 'data'
> & {
  kind: K;
  data: EventDataMap[K];
};
/** `JobEvent` by reference: the component of the OpenAPI document. */
export const JobEventRef = Type.Unsafe<JobEvent>(Type.Ref('JobEvent'));
