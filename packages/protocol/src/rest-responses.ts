/**
 * What the REST API answers. The hub publishes these schemas in
 * `/openapi.json` and its route handlers are typed by them; a test checks real
 * responses against them. The four with an `$id` (`componentSchemas`) are
 * OpenAPI components, referenced by `$ref`.
 */
import { type Static, Type } from '@sinclair/typebox';
import { ErrorCode } from './codes.js';
import { JobEventRef, JobEventSchema } from './job-event.js';
import {
  ControlRef,
  ControlSchema,
  IsoTime,
  JobStateRef,
  JobStateSchema,
  JobStatusSchema,
} from './job-state.js';

export const PublishResultSchema = Type.Object(
  {
    seq: Type.Integer({ minimum: 1, description: 'Seq of the job after the events were applied.' }),
    control: ControlRef,
  },
  { description: 'The events are stored; `control` tells the worker about cancel and pause requests.' },
);
export type PublishResult = Static<typeof PublishResultSchema>;

/**
 * A long-poll's answer with `state=delta`: the fields of the job's state that
 * changed after `since` (the delta rule of `event` messages: every top-level
 * field whose value differs, a removed one as null), folded as
 * `{ ...state, ...patch }` onto the state the client has at `since`. An empty
 * patch with `seq` = `since`: nothing changed in the time waited.
 */
export const JobPatchAnswerSchema = Type.Object(
  {
    id: Type.String({ description: 'The job.' }),
    since: Type.Integer({ minimum: 0, description: 'The seq the patch applies to.' }),
    seq: Type.Integer({ minimum: 0, description: 'The seq of the state after the patch.' }),
    patch: Type.Object(
      {},
      { additionalProperties: true, description: 'The fields of the job state that changed.' },
    ),
  },
  { description: 'The fields of the job’s state that changed after `since`.' },
);
export type JobPatchAnswer = Static<typeof JobPatchAnswerSchema>;

const ErrorCodeSchema = Type.Union(Object.values(ErrorCode).map((code) => Type.Literal(code)));
export const ErrorDetailSchema = Type.Object({
  code: ErrorCodeSchema,
  message: Type.String({ description: 'For people; clients act on `code`.' }),
});
export const ErrorBodySchema = Type.Object(
  { error: ErrorDetailSchema },
  { $id: 'ErrorBody', description: 'Every error response: a stable `HW_ERR_*` code and a message.' },
);
export type ErrorBody = Static<typeof ErrorBodySchema>;
/** `ErrorBody` by reference, with the description of the response that carries it. */
export const ErrorBodyRef = (description?: string) =>
  Type.Unsafe<ErrorBody>(Type.Ref('ErrorBody', description === undefined ? {} : { description }));

export const PublishManyResultSchema = Type.Object(
  {
    results: Type.Array(
      Type.Union([
        Type.Object({ job: Type.String(), seq: Type.Integer({ minimum: 1 }), control: ControlRef }),
        Type.Object({ job: Type.String(), error: ErrorDetailSchema }),
      ]),
      { description: 'One result per job, in the order the jobs first appear in the request.' },
    ),
  },
  { description: 'Each job is applied all-or-nothing; one job failing does not fail the others.' },
);
/** The outcome for one job of `POST /v1/events`. */
export type PublishManyResult = Static<typeof PublishManyResultSchema>['results'][number];

export const StatusCountsSchema = Type.Record(JobStatusSchema, Type.Integer({ minimum: 0 }), {
  description: 'Jobs per status.',
});
export type StatusCounts = Static<typeof StatusCountsSchema>;

export const JobListSchema = Type.Object(
  {
    jobs: Type.Array(JobStateRef()),
    next: Type.Optional(Type.String({ description: 'Cursor of the next page; absent on the last page.' })),
    counts: Type.Optional(StatusCountsSchema),
  },
  {
    description:
      'Jobs by most recent update (or creation, with `order=created`) first; with `counts=true`, the jobs ' +
      'matching every filter but `status`, per status.',
  },
);
export type JobList = Static<typeof JobListSchema>;

export const EventPageSchema = Type.Object(
  {
    events: Type.Array(JobEventRef),
    next: Type.Optional(
      Type.Integer({ description: 'Pass as `since` to get the next page; absent when no more followed.' }),
    ),
  },
  { description: 'Events in seq order.' },
);
export type EventPage = Static<typeof EventPageSchema>;

export const TokenSchema = Type.Object(
  {
    token: Type.String({ description: 'Browser token (JWT); send as `Authorization: Bearer <token>`.' }),
    expiresAt: IsoTime('Expiry'),
  },
  { description: 'The token was minted.' },
);
export type MintedToken = Static<typeof TokenSchema>;

export const HealthSchema = Type.Object({ status: Type.Literal('ok') }, { description: 'Alive.' });

/** A store's or bus's answer to a readiness probe. */
export const ProbeStatusSchema = Type.Union([Type.Literal('ok'), Type.Literal('down')]);
export type ProbeStatus = Static<typeof ProbeStatusSchema>;
export const ReadySchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  store: ProbeStatusSchema,
  bus: ProbeStatusSchema,
});
export type Ready = Static<typeof ReadySchema>;

/** Schemas registered with `addSchema`: components of the OpenAPI document, referenced by `$id`. */
export const componentSchemas = [ControlSchema, ErrorBodySchema, JobEventSchema, JobStateSchema];
