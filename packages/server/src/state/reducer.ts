/**
 * The job reducer: a job's state is the fold of its events.
 *
 * `reduce` is pure: it reads only the previous state and the event (time comes
 * from `event.at`, never from a clock), returns a new object and never modifies
 * its inputs; unchanged sub-objects are shared, so states must be treated as
 * immutable. Replaying a job's log on any process gives the same state.
 * `prepareEvent` and `prepareControl` (`prepare.ts`) validate a request against
 * the current state and return the event to append; `reduce` then trusts it.
 *
 * Statuses
 * - `queued` → `running` on the first `progress`, `stage`, `log` or `metadata`
 *   event (and on a `children` event once a child has progress or has finished);
 *   `startedAt` is set at the first transition to `running`.
 * - `paused` is accepted from `running` or `queued` (→ `paused`); `resumed` only
 *   from `paused` (→ `running`); anything else is HW_ERR_INVALID_TRANSITION.
 * - `progress`, `stage`, `log`, `metadata` are accepted while paused; the status
 *   stays `paused`.
 * - `completed`, `failed`, `cancelled` are accepted from any non-terminal status.
 * - Any reported event on a terminal job is HW_ERR_JOB_FINISHED. When folding,
 *   a terminal job only takes `deleted` (seq and time only) and `children` (the
 *   summary is recorded; percent and status stay as the job ended).
 *
 * Control
 * - `cancel_requested` sets `control.cancelRequested`; any terminal event clears
 *   it, and `control.paused` as well (a finished job is neither).
 * - `pause_requested` sets `control.paused` (the user's wish; the worker's own
 *   `paused` only changes the status, so a late acknowledgement cannot undo a resume);
 *   `resume_requested` and the worker's `resumed` clear it.
 * - `prepareControl`: any action on a terminal job is HW_ERR_JOB_FINISHED. cancel:
 *   null when already requested; a `queued` job is cancelled at once (`cancelled`,
 *   since no worker is there to acknowledge); else `cancel_requested`. pause:
 *   null when `control.paused`, else `pause_requested`. resume: null unless
 *   `control.paused` or the status is `paused`, else `resume_requested`. The requesting user goes into
 *   `by`, also of the `cancelled` event of a queued job.
 *
 * Progress
 * - `percent` must be a finite number 0–100; `current` and `total` finite and
 *   non-negative; `current > total` is refused; a report without `percent` and
 *   without `current` is refused (all HW_ERR_INVALID_VALUE).
 * - `total` and `unit` are sticky: a report that omits them keeps the previous
 *   ones (a `total` only while the unit is unchanged); `current` is per report.
 *   A `stage` event clears all three, since a new stage counts other things.
 * - Without `percent`, the percent is `current / total × 100` (total 0 → 0), and
 *   stays as it was when no total is known (a count of unknown extent).
 * - `message` replaces `state.message` (`progress` and `stage`); `log` never does.
 * - Every percent is clamped to 0–100 and rounded to 2 decimals.
 *
 * Stages
 * - With a plan (from `created`), a reported percent is the percent within the
 *   current stage, kept in `stage.percent`; the overall percent is
 *   (weights before the stage + weight × stage percent / 100) / total weight × 100.
 *   Within a plan the overall percent never goes backwards: a lower report is
 *   accepted and shown in `stage.percent`, but only an explicit `stage` event for
 *   an earlier stage moves the overall percent back.
 * - Progress before any `stage` event counts as within the first stage, which it starts.
 * - A `stage` event must name a stage of the plan. It (re)starts that stage
 *   (`startedAt` = event time, `endedAt` null, `stage.percent` 0), ends the stage
 *   being left, and moves the overall percent to the start of the stage.
 * - Without a plan, the reported percent is the overall percent and
 *   `stage.percent` mirrors it. A `stage` event records the stage in `stages`
 *   with weight 0 (so that a plan, whose weights are all positive, stays
 *   recognisable); a name seen before is re-entered in place, and `count` is the
 *   number of distinct stages seen so far. The overall percent is unchanged.
 * - `completed` sets the percent (and the stage percent) to 100; every terminal
 *   event ends the current stage and sets `finishedAt`; `failed` and `cancelled`
 *   keep the percent.
 *
 * Other events
 * - `failed`: `error` = {code (default `FAILED`), message, retryable (default
 *   false), stage: the current stage's name or null}. `completed`: `result`
 *   (default null).
 * - `metadata`: shallow merge into `state.metadata`; a key set to null is removed.
 * - `log`: {message, level (default `info`)}; changes nothing but the status of
 *   a queued job.
 * - `children` (a batch parent, see `rollup.ts`; a finished child counts 100%
 *   whatever its outcome): `children` = the summary, percent =
 *   percentSum / total (0 without children), ETA folded from that percent.
 * - `deleted`: only `seq` and `updatedAt` change (it is never stored).
 *
 * ETA (see `eta.ts`)
 * - Folded from the overall percent and `current` on `progress` and `children`
 *   events. A `stage` event forgets the count basis; `resumed` restarts the
 *   estimator's clock so that a pause is not measured as slow progress.
 * - `eta` is null while paused (the rate is kept for the resume) and once finished.
 */
import type {
  ChildrenSummary,
  EtaSample,
  EventDataMap,
  JobEvent,
  JobState,
  JobStatus,
  JsonObject,
  Progress,
} from '@headway/protocol';
import { ErrorCode, TERMINAL_STATUSES } from '@headway/protocol';
import { HeadwayError } from '../errors.js';
import { estimateEta, foldSample, resetUnitBasis, restartClock } from './eta.js';
import { estimatorOf, withEstimator } from './hidden-estimator.js';
import {
  endStage,
  enterStage,
  hasPlan,
  percentOf,
  planEntries,
  roundPercent,
  weightedPercent,
} from './stages.js';

/** True for `completed`, `failed` and `cancelled`: the job takes no more reported events. */
export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/**
 * Fold one event into a job's state. `state` is null only for `created`.
 * Returns a new state with `seq` = event.seq and `updatedAt` = event.at.
 * @throws HeadwayError JOB_EXISTS for `created` on an existing state, INTERNAL for
 * another event without a state, JOB_FINISHED for a reported event on a terminal job.
 */
export function reduce(state: JobState | null, event: JobEvent): JobState {
  if (event.kind === 'created') {
    if (state !== null) throw new HeadwayError(ErrorCode.JOB_EXISTS, `job "${event.job}" already exists`);
    return hide(initialState(event as JobEvent<'created'>));
  }
  if (state === null) {
    throw new HeadwayError(ErrorCode.INTERNAL, `event "${event.kind}" folded before the job was created`);
  }
  const base: Folding = { ...state, seq: event.seq, updatedAt: event.at, estimator: estimatorOf(state) };
  if (isTerminal(state.status)) {
    if (event.kind === 'deleted') return hide(base);
    if (event.kind === 'children') return hide({ ...base, children: { ...(event.data as ChildrenSummary) } });
    throw finished(state);
  }
  const next = apply(base, event);
  return hide({ ...next, eta: estimateEta(next.estimator, next.progress, next.status) });
}

/** A state while it is folded: the estimator in plain sight. */
type Folding = JobState & { estimator: EtaSample | null };

/** The folded state as the hub keeps it: the estimator out of every JSON of the job. */
function hide(folded: Folding): JobState {
  const { estimator, ...state } = folded;
  return withEstimator(state, estimator);
}

function apply(s: Folding, event: JobEvent): Folding {
  const at = event.at;
  switch (event.kind) {
    case 'progress':
      return applyProgress(s, event.data as EventDataMap['progress'], at);
    case 'stage':
      return applyStage(s, event.data as EventDataMap['stage'], at);
    case 'log':
      return start(s, at);
    case 'metadata':
      return {
        ...start(s, at),
        metadata: mergeMetadata(s.metadata, (event.data as EventDataMap['metadata']).metadata),
      };
    case 'paused':
      // `control.paused` stays what the user asked for: a resume requested while the
      // worker was on its way to pausing must not be undone by its acknowledgement.
      return { ...s, status: 'paused' };
    case 'resumed':
      return {
        ...s,
        status: 'running',
        startedAt: s.startedAt ?? at,
        control: { ...s.control, paused: false },
        estimator: restartClock(s.estimator, Date.parse(at)),
      };
    case 'completed': {
      const ended = finish(s, 'completed', at);
      return {
        ...ended,
        progress: { ...ended.progress, percent: 100 },
        stage: ended.stage === null ? null : { ...ended.stage, percent: 100 },
        result: (event.data as EventDataMap['completed']).result ?? null,
      };
    }
    case 'failed':
      return { ...finish(s, 'failed', at), error: { ...(event.data as EventDataMap['failed']).error } };
    case 'cancelled':
      return finish(s, 'cancelled', at);
    case 'cancel_requested':
      return { ...s, control: { ...s.control, cancelRequested: true } };
    case 'pause_requested':
      return { ...s, control: { ...s.control, paused: true } };
    case 'resume_requested':
      return { ...s, control: { ...s.control, paused: false } };
    case 'children':
      return applyChildren(s, event.data as ChildrenSummary, at);
    case 'deleted':
      return s;
    case 'created':
      throw new HeadwayError(ErrorCode.JOB_EXISTS, `job "${s.id}" already exists`);
    default:
      throw new HeadwayError(ErrorCode.INTERNAL, `unknown event kind "${(event as JobEvent).kind}"`);
  }
}

function initialState(event: JobEvent<'created'>): Folding {
  const d = event.data;
  return {
    id: event.job,
    owner: d.owner,
    name: d.name,
    kind: d.kind ?? null,
    parent: d.parent,
    status: 'queued',
    progress: { percent: 0 },
    stage: null,
    stages: planEntries(d.stages),
    message: null,
    eta: null,
    metadata: { ...d.metadata },
    result: null,
    error: null,
    control: { cancelRequested: false, paused: false },
    children: null,
    public: d.public,
    createdAt: event.at,
    updatedAt: event.at,
    startedAt: null,
    finishedAt: null,
    seq: event.seq,
    estimator: null,
  };
}

/** A worker's first sign of life moves a queued job to running. */
function start(s: Folding, at: string): Folding {
  if (s.status !== 'queued') return s;
  return { ...s, status: 'running', startedAt: s.startedAt ?? at };
}

function finish(s: Folding, status: JobStatus, at: string): Folding {
  return {
    ...s,
    status,
    finishedAt: at,
    stages: endStage(s.stages, s.stage, at),
    control: { cancelRequested: false, paused: false },
  };
}

/** Counts after a report: `current` is per report; `total` and `unit` carry over (a total only within the same unit). */
export function resolveCounts(
  prev: Progress,
  d: { current?: number; total?: number; unit?: string },
): { current?: number; total?: number; unit?: string } {
  const sameUnit = d.unit === undefined || d.unit === prev.unit;
  return {
    current: d.current,
    total: d.total ?? (sameUnit ? prev.total : undefined),
    unit: d.unit ?? prev.unit,
  };
}

function applyProgress(s: Folding, d: EventDataMap['progress'], at: string): Folding {
  let stages = s.stages;
  let stage = s.stage;
  const planned = hasPlan(stages);
  if (planned && stage === null) ({ stages, stage } = enterStage(stages, null, stages[0].name, at));

  const counts = resolveCounts(s.progress, d);
  const computed =
    d.percent ??
    (counts.current !== undefined && counts.total !== undefined
      ? percentOf(counts.current, counts.total)
      : undefined);
  let reported: number;
  if (computed !== undefined) reported = roundPercent(computed);
  else if (planned && stage !== null) reported = stage.percent;
  else reported = s.progress.percent;

  const overall =
    planned && stage !== null
      ? Math.max(s.progress.percent, weightedPercent(stages, stage.index, reported))
      : reported;

  const progress: Progress = { percent: overall };
  if (counts.current !== undefined) progress.current = counts.current;
  if (counts.total !== undefined) progress.total = counts.total;
  if (counts.unit !== undefined) progress.unit = counts.unit;

  const resetUnits =
    (d.unit !== undefined && d.unit !== s.progress.unit) ||
    (d.total !== undefined && d.total !== s.progress.total);
  const estimator = foldSample(
    s.estimator,
    { at: Date.parse(at), percent: overall, current: counts.current ?? null },
    resetUnits,
  );

  return {
    ...start(s, at),
    progress,
    stages,
    stage: stage === null ? null : { ...stage, percent: reported },
    message: d.message !== undefined ? d.message : s.message,
    estimator,
  };
}

function applyStage(s: Folding, d: EventDataMap['stage'], at: string): Folding {
  const { stages, stage } = enterStage(s.stages, s.stage, d.name, at);
  const percent = hasPlan(stages) ? weightedPercent(stages, stage.index, 0) : s.progress.percent;
  return {
    ...start(s, at),
    progress: { percent },
    stages,
    stage,
    message: d.message !== undefined ? d.message : s.message,
    estimator: resetUnitBasis(s.estimator),
  };
}

function applyChildren(s: Folding, d: ChildrenSummary, at: string): Folding {
  const percent = d.total > 0 ? roundPercent(d.percentSum / d.total) : 0;
  const moving = d.percentSum > 0 || d.completed + d.failed + d.cancelled > 0;
  const next = moving ? start(s, at) : s;
  return {
    ...next,
    children: { ...d },
    progress: { ...s.progress, percent },
    estimator: foldSample(s.estimator, { at: Date.parse(at), percent, current: null }),
  };
}

function mergeMetadata(current: JsonObject, patch: JsonObject): JsonObject {
  const merged: JsonObject = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

/** The error of a reported event or a control action on a job that has ended. */
export function finished(state: JobState): HeadwayError {
  return new HeadwayError(ErrorCode.JOB_FINISHED, `job "${state.id}" has already ${state.status}`);
}
