/**
 * The estimator's own state: what the reducer folds beside a job's public state
 * so that the ETA can be computed from time actually spent.
 *
 * It is internal. It is kept beside each state object in memory (a `WeakMap`,
 * so it goes with the state), which `JSON.stringify`, object spreads and deep
 * equality never see, so it never reaches a client, the bus or a REST answer; the
 * reducer attaches it to every state it returns, and the stores persist it
 * explicitly (`store/rows.ts`), so a reloaded job keeps its running times.
 *
 * Time comes only from the events (`at`), so replaying a job's log on any
 * process gives the same estimator.
 * - Running time is accounted only while the job is `running`: time queued or
 *   paused is not work, and a pause must not look like slow progress.
 * - Each stage's running time is recorded when the stage ends (with the stage's
 *   `total` when it counted units), which is what `history.ts` learns from.
 * - The gap between reports is smoothed in log space: it sets the job's own stall
 *   threshold.
 * - Once a quarter of a stage is done, the duration its pace projects is noted
 *   (the probe); when the stage ends, how far that projection was from the
 *   truth is kept, scaled to the projection's expected spread. The kind's history
 *   learns from it how far a live pace can be trusted (`liveNoise`).
 */
import type { JobEvent, JobState } from '@headway/protocol';
import { foldSample, type RateSample, resetUnitBasis, restartClock } from './rate.js';

/** Smoothing factor of the log gap between reports (about the last 10 gaps). */
const GAP_ALPHA = 0.1;
/** Finished stages remembered per job (a plan has at most 64). */
const MAX_DONE_STAGES = 64;
/** Events that show a worker is alive and reporting. */
const REPORTS: ReadonlySet<JobEvent['kind']> = new Set(['progress', 'stage', 'log', 'metadata']);

/** Fraction of a stage done at which its live projection is probed. */
export const PROBE_FRACTION = 0.25;

/**
 * The projection of the current stage's duration from its live pace, noted when
 * {@link PROBE_FRACTION} of it was done.
 */
export interface Probe {
  /** Fraction of the stage done at the probe. */
  f: number;
  /** Natural log of the projected running time of the stage, ms. */
  log: number;
}

/** One finished stage of the job: its name, running time, and the units it counted. */
export interface StageTime {
  name: string;
  /** Running time, ms. */
  ms: number;
  /** The stage's `total` when it reported counts. */
  total?: number;
}

export interface Estimator {
  /** Smoothed rate of the overall percent (and of units), for `eta.rate`. */
  rate: RateSample | null;
  /** Time up to which running time is accounted, ms since epoch. */
  clockAt: number;
  /** Running time of the job, ms. */
  activeMs: number;
  /** Running time within the current stage, ms. */
  stageActiveMs: number;
  /** Finished stages, in order of ending (a re-entered stage replaces its entry). */
  done: StageTime[];
  /** Time of the last report, ms since epoch; null before the first one. */
  lastReportAt: number | null;
  /** Smoothed natural log of the gap between reports in ms; null before the second report. */
  gapLog: number | null;
  /** Gaps measured. */
  gaps: number;
  /** The current stage's probe; null before it is taken (absent in estimators stored by older hubs). */
  probe?: Probe | null;
  /**
   * The probes of the stages that ended: the sum of their squared errors in log
   * space, each divided by the projection's expected variance shape (1 − f) / f,
   * and their number.
   */
  live?: LiveErrors;
}

/** Squared, scaled errors of a job's live projections (see {@link Estimator.live}). */
export interface LiveErrors {
  sumSquares: number;
  n: number;
}

/**
 * Each state's estimator, beside it rather than on it: a property (even a hidden
 * one) would change the shape of every state object and slow down the spreads
 * the reducer makes of them.
 */
const estimators = new WeakMap<JobState, Estimator>();

/** The estimator attached to `state`, or null (a state from the wire has none). */
export function estimatorOf(state: JobState): Estimator | null {
  return estimators.get(state) ?? null;
}

/** `state` with `estimator` attached out of sight (the same object). */
export function withEstimator<S extends JobState>(state: S, estimator: Estimator | null): S {
  if (estimator === null) estimators.delete(state);
  else estimators.set(state, estimator);
  return state;
}

function initial(at: number): Estimator {
  return {
    rate: null,
    clockAt: at,
    activeMs: 0,
    stageActiveMs: 0,
    done: [],
    lastReportAt: null,
    gapLog: null,
    gaps: 0,
    probe: null,
    live: { sumSquares: 0, n: 0 },
  };
}

/**
 * Fold one event into the estimator: account the running time since the last
 * event, close a stage that ended, note a report and fold the rate.
 * @param prev the state before the event; @param next the state after it.
 */
export function track(
  prev: JobState | null,
  next: JobState,
  event: JobEvent,
  at: number = Date.parse(event.at),
): Estimator {
  const before = prev === null ? null : estimatorOf(prev);
  const e: Estimator = before === null ? initial(at) : { ...before };
  if (!Number.isFinite(at)) return e;

  if (prev?.status === 'running' && at > e.clockAt) {
    e.activeMs += at - e.clockAt;
    e.stageActiveMs += at - e.clockAt;
  }
  e.clockAt = Math.max(e.clockAt, at);

  const left = prev?.stage ?? null;
  const entered = event.kind === 'stage' || (next.stage?.index ?? -1) !== (left?.index ?? -1);
  if (entered) {
    if (left !== null && prev !== null) {
      e.done = recordStage(e.done, left.name, e.stageActiveMs, prev);
      scoreProbe(e, e.stageActiveMs);
    }
    e.stageActiveMs = 0;
    e.probe = null;
  }
  const finished = prev !== null && prev.finishedAt === null && next.finishedAt !== null;
  if (finished && next.stage !== null) e.done = recordStage(e.done, next.stage.name, e.stageActiveMs, prev);
  // A job without stages is probed as one stage; only a completed stage or job has a true duration.
  if (finished && next.status === 'completed')
    scoreProbe(e, next.stage === null ? e.activeMs : e.stageActiveMs);

  if (REPORTS.has(event.kind)) {
    if (e.lastReportAt !== null && prev?.status === 'running' && at > e.lastReportAt) {
      const gap = Math.log(at - e.lastReportAt);
      e.gapLog = e.gapLog === null ? gap : e.gapLog + GAP_ALPHA * (gap - e.gapLog);
      e.gaps += 1;
    }
    e.lastReportAt = at;
  } else if (event.kind === 'resumed') {
    // The pause was not a silence of the worker.
    e.lastReportAt = at;
  }

  if (event.kind === 'progress' || event.kind === 'children') {
    if (!e.probe && next.status === 'running') takeProbe(e, next);
    const resetUnits =
      prev !== null &&
      (next.progress.unit !== prev.progress.unit || next.progress.total !== prev.progress.total);
    e.rate = foldSample(
      e.rate,
      { at, percent: next.progress.percent, current: next.progress.current ?? null },
      resetUnits,
    );
  } else if (event.kind === 'stage') {
    e.rate = resetUnitBasis(e.rate);
  } else if (event.kind === 'resumed') {
    e.rate = restartClock(e.rate, at);
  }
  return e;
}

/** Note the current stage's projected duration once {@link PROBE_FRACTION} of it is done. */
function takeProbe(e: Estimator, next: JobState): void {
  const staged = next.stage !== null;
  const f = (staged ? (next.stage?.percent ?? 0) : next.progress.percent) / 100;
  const ms = staged ? e.stageActiveMs : e.activeMs;
  if (f >= PROBE_FRACTION && f < 1 && ms > 0) e.probe = { f, log: Math.log(ms / f) };
}

/** Score the probe of a stage (or job) that ended after `ms` of running time. */
function scoreProbe(e: Estimator, ms: number): void {
  const probe = e.probe;
  e.probe = null;
  if (!probe || !(ms > 0)) return;
  const error = probe.log - Math.log(ms);
  const live = e.live ?? { sumSquares: 0, n: 0 };
  e.live = { sumSquares: live.sumSquares + (error * error * probe.f) / (1 - probe.f), n: live.n + 1 };
}

function recordStage(done: StageTime[], name: string, ms: number, prev: JobState): StageTime[] {
  const entry: StageTime = { name, ms };
  if (prev.progress.total !== undefined && prev.progress.total > 0) entry.total = prev.progress.total;
  const rest = done.filter((d) => d.name !== name);
  rest.push(entry);
  return rest.length > MAX_DONE_STAGES ? rest.slice(rest.length - MAX_DONE_STAGES) : rest;
}

/** Running time of the job at `at` (ms since epoch), counting on from the last event while it runs. */
export function activeAt(
  e: Estimator,
  status: JobState['status'],
  at: number,
): { job: number; stage: number } {
  const extra = status === 'running' && at > e.clockAt ? at - e.clockAt : 0;
  return { job: e.activeMs + extra, stage: e.stageActiveMs + extra };
}
