/**
 * Readings of a job's state that several dialects share, and the events they
 * pass over. Every seed field is computed from the state (and the event) alone,
 * so that one delivery encodes to the same bytes for every connection of a dialect.
 */
import type { EventKind, JobState, Json } from '@headway/protocol';

/**
 * Event kinds that change nothing the seeds show: log lines, requests to
 * cancel, pause or resume (the seeds show what the worker then does), and
 * stalls (no seed protocol has a field for one; task-subscribe sends the
 * lowered confidence as a `time_estimate`).
 */
export const UNSHOWN_KINDS: ReadonlySet<EventKind> = new Set([
  'log',
  'cancel_requested',
  'pause_requested',
  'resume_requested',
  'stalled',
  'unstalled',
]);

/**
 * A percent as the whole number the seeds send (`"progress": 45`). Rounded down,
 * so that a job shows 100 only once it has completed.
 */
export function wholePercent(percent: number): number {
  return Math.max(0, Math.min(100, Math.floor(percent)));
}

/**
 * Seconds remaining as a whole number, or null while there is no estimate. A job
 * of a known kind has one from its creation; a paused job's stands still.
 */
export function etaSeconds(state: JobState): number | null {
  return state.eta === null ? null : Math.max(0, Math.round(state.eta.seconds));
}

/**
 * The current stage's name; before the first stage, the job's status (`queued`,
 * `running`), since the seeds' clients expect a string there.
 */
export function stageName(state: JobState): string {
  return state.stage?.name ?? state.status;
}

/**
 * The stage that the stage event at `at` left: the one whose `endedAt` is that
 * time (the reducer ends the stage being left at the event's time). Before the
 * first stage, the status the job had then: `queued` when this event started it.
 */
export function leftStage(state: JobState, at: string): string {
  let left: JobState['stages'][number] | null = null;
  for (let i = 0; i < state.stages.length; i++) {
    const s = state.stages[i]!;
    if (i === state.stage?.index || s.endedAt !== at) continue;
    // Several stages ended in the same millisecond: the latest started was left last.
    if (left === null || (s.startedAt ?? '') >= (left.startedAt ?? '')) left = s;
  }
  if (left !== null) return left.name;
  return state.startedAt === at ? 'queued' : 'running';
}

/**
 * A field the worker reported in the job's `result` (an object), else in its
 * `metadata`, under any of `names`; undefined when absent.
 */
export function reported(state: JobState, ...names: string[]): Json | undefined {
  const result = state.result;
  for (const source of [result, state.metadata]) {
    if (typeof source !== 'object' || source === null || Array.isArray(source)) continue;
    for (const name of names) {
      const value = (source as Record<string, Json>)[name];
      if (value !== undefined && value !== null) return value;
    }
  }
  return undefined;
}

/** A reported string field, or undefined. A `result` that is a string counts as `result_url`-like fields. */
export function reportedString(state: JobState, ...names: string[]): string | undefined {
  const value = reported(state, ...names);
  if (typeof value === 'string') return value;
  return undefined;
}

/** A reported number field, or undefined. */
export function reportedNumber(state: JobState, ...names: string[]): number | undefined {
  const value = reported(state, ...names);
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** The URL of a completed job's result: a string `result`, or a URL field of the result or metadata. */
export function resultUrl(state: JobState, ...names: string[]): string | undefined {
  if (typeof state.result === 'string') return state.result;
  return reportedString(state, ...names);
}

/** Seconds from the job's start (or creation) to its end, or to now while it runs. */
export function elapsedSeconds(state: JobState): number {
  const start = Date.parse(state.startedAt ?? state.createdAt);
  const end = state.finishedAt === null ? Date.now() : Date.parse(state.finishedAt);
  return Math.max(0, Math.round((end - start) / 1000));
}
