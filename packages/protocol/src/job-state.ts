/**
 * A job's state: the fold of its events, as the hub stores it, answers it over
 * REST and sends it in `subscribed`, `state` and `event` messages.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { JOB_KIND, MAX_KIND_LENGTH } from './codes.js';
import { JsonObjectSchema, JsonSchema } from './json.js';

/** `schema` or null. */
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
/** An ISO 8601 time. */
export const IsoTime = (description: string) => Type.String({ description: `${description} (ISO 8601)` });

/** Every job status, in lifecycle order. */
export const JOB_STATUSES = ['queued', 'running', 'paused', 'completed', 'failed', 'cancelled'] as const;
export const JobStatusSchema = Type.Union(JOB_STATUSES.map((status) => Type.Literal(status)));
export type JobStatus = Static<typeof JobStatusSchema>;

export const ProgressSchema = Type.Object({
  percent: Type.Number({ minimum: 0, maximum: 100, description: 'Overall percent, stage weights applied.' }),
  current: Type.Optional(Type.Number({ description: 'Units done, when the worker reports counts.' })),
  total: Type.Optional(Type.Number({ description: 'Units in all.' })),
  unit: Type.Optional(Type.String({ description: 'Name of the unit: bytes, videos, frames …' })),
});
export type Progress = Static<typeof ProgressSchema>;

export const StageInfoSchema = Type.Object({
  name: Type.String(),
  index: Type.Integer({
    description: '0-based position in the stage plan (or in order of appearance without a plan).',
  }),
  count: Type.Integer({ description: 'Number of stages in the plan (or seen so far without a plan).' }),
  percent: Type.Number({ description: 'Percent within this stage, 0–100.' }),
});
export type StageInfo = Static<typeof StageInfoSchema>;

export const StagePlanEntrySchema = Type.Object({
  name: Type.String(),
  weight: Type.Number({ description: 'Relative weight of the stage in the overall percent; defaults to 1.' }),
  startedAt: Nullable(IsoTime('Start of the stage')),
  endedAt: Nullable(IsoTime('End of the stage (the next stage or a terminal event began)')),
});
export type StagePlanEntry = Static<typeof StagePlanEntrySchema>;

/** What an estimate rests on: finished jobs of the same kind, the live rate, both, or nothing yet. */
export const ETA_BASES = ['history', 'rate', 'both', 'none'] as const;
export const EtaBasisSchema = Type.Union(ETA_BASES.map((basis) => Type.Literal(basis)));
export type EtaBasis = Static<typeof EtaBasisSchema>;

export const EtaSchema = Type.Object({
  seconds: Type.Number({ description: 'Estimated seconds remaining (the middle of the interval).' }),
  confidence: Type.Number({
    minimum: 0,
    maximum: 1,
    description: 'Probability the hub gives to the true remaining time lying in [`low`, `high`].',
  }),
  rate: Type.Number({
    description: 'Smoothed rate: `unit` per second when the job reports counts, else percent per second.',
  }),
  unit: Type.String({ description: 'Unit of `rate`: the progress unit, or `percent`.' }),
  low: Type.Optional(Type.Number({ description: 'Lower end of the interval, seconds.' })),
  high: Type.Optional(Type.Number({ description: 'Upper end of the interval, seconds.' })),
  basis: Type.Optional(EtaBasisSchema),
});
export type Eta = Static<typeof EtaSchema>;

export const StalledSchema = Type.Object(
  { since: IsoTime('Time of the last report before the stall') },
  { description: 'A running job that has reported nothing for far longer than its usual gap.' },
);
export type Stalled = Static<typeof StalledSchema>;

export const JobKindSchema = Type.String({
  minLength: 1,
  maxLength: MAX_KIND_LENGTH,
  pattern: JOB_KIND.source,
  description: 'What sort of work the job is (`transcode`); jobs of one kind share learned durations.',
});

export const JobErrorSchema = Type.Object({
  code: Type.String(),
  message: Type.String(),
  retryable: Type.Boolean(),
  stage: Nullable(Type.String({ description: 'The stage the job was in when it failed.' })),
});
export type JobError = Static<typeof JobErrorSchema>;

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
export type Control = Static<typeof ControlSchema>;
/** `Control` by reference: the component of the OpenAPI document. */
export const ControlRef = Type.Unsafe<Control>(Type.Ref('Control'));

export const ChildrenSummarySchema = Type.Object(
  {
    total: Type.Integer(),
    completed: Type.Integer(),
    failed: Type.Integer(),
    cancelled: Type.Integer(),
    percentSum: Type.Number({
      description: "Sum of the children's overall percents; the parent's percent is `percentSum / total`.",
    }),
  },
  { description: "Roll-up of a batch parent's children." },
);
export type ChildrenSummary = Static<typeof ChildrenSummarySchema>;

export const JobStateSchema = Type.Object(
  {
    id: Type.String(),
    owner: Type.String({ description: 'The user who may watch and control the job.' }),
    name: Type.String(),
    kind: Type.Optional(Nullable(JobKindSchema)),
    parent: Nullable(Type.String({ description: 'Id of the batch this job belongs to.' })),
    status: JobStatusSchema,
    progress: ProgressSchema,
    stage: Nullable(StageInfoSchema),
    stages: Type.Array(StagePlanEntrySchema),
    message: Nullable(Type.String()),
    eta: Nullable(EtaSchema),
    stalled: Type.Optional(Nullable(StalledSchema)),
    metadata: JsonObjectSchema(),
    result: JsonSchema({ description: 'Small JSON set by `completed`, or null.' }),
    error: Nullable(JobErrorSchema),
    control: ControlRef,
    children: Nullable(ChildrenSummarySchema),
    public: Type.Boolean({ description: 'Watchable by anyone holding the job id (off by default).' }),
    createdAt: IsoTime('Creation time'),
    updatedAt: IsoTime('Time of the last event'),
    startedAt: Nullable(IsoTime('First transition to running')),
    finishedAt: Nullable(IsoTime('Time the job reached a terminal status')),
    seq: Type.Integer({ minimum: 1, description: 'Seq of the last event folded into this state.' }),
  },
  { $id: 'JobState', description: 'A job and its current state.' },
);
export type JobState = Static<typeof JobStateSchema>;

/** `JobState` by reference, with the description of the response that carries it. */
export const JobStateRef = (description?: string) =>
  Type.Unsafe<JobState>(Type.Ref('JobState', description === undefined ? {} : { description }));
