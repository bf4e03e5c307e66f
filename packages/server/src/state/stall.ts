/**
 * When a running job counts as stalled: it has reported nothing for far longer
 * than its usual gap between reports. The usual gap is the job's own (once it
 * has reported a few times), else its kind's, else unknown.
 *
 * threshold = max(`minMs`, `factor` × usual gap), or `defaultMs` when no gap is known.
 */
import type { EventDataMap, JobState } from '@headway/protocol';
import { estimatorOf } from './estimator.js';
import { type KindSummary, usable } from './history.js';

export interface StallOptions {
  /** A job is stalled after this many times its usual gap between reports. Default 10. */
  factor: number;
  /** Never stalled sooner than this after its last report, ms. Default 3000 (3 s). */
  minMs: number;
  /** Threshold of a job whose usual gap is unknown (no own gaps, no history), ms. Default 60,000 (1 min). */
  defaultMs: number;
  /** How often the hub looks for stalled jobs, ms; 0 disables stall detection. Default 1000 (1 s). */
  checkMs: number;
}

export const stallDefaults: StallOptions = {
  factor: 10,
  minMs: 3_000, // 3 seconds
  defaultMs: 60_000, // 1 minute
  checkMs: 1_000, // 1 second
};

/** Gaps a job must have reported before its own gap replaces its kind's. */
export const OWN_GAPS = 3;

/** The job's stall threshold in ms. */
export function stallThreshold(state: JobState, history: KindSummary | null, options: StallOptions): number {
  const estimator = estimatorOf(state);
  let gapLog: number | null = null;
  if (estimator !== null && estimator.gapLog !== null && estimator.gaps >= OWN_GAPS)
    gapLog = estimator.gapLog;
  else if (history !== null && usable(history.gap)) gapLog = history.gap.mean;
  if (gapLog === null) return options.defaultMs;
  return Math.round(Math.max(options.minMs, options.factor * Math.exp(gapLog)));
}

/**
 * When the job will count as stalled (ms since epoch), or null when it cannot:
 * it is not running, is already stalled, or has not reported yet.
 */
export function stallDeadline(
  state: JobState,
  history: KindSummary | null,
  options: StallOptions,
): number | null {
  const last = estimatorOf(state)?.lastReportAt ?? null;
  if (state.status !== 'running' || state.stalled || last === null) return null;
  return last + stallThreshold(state, history, options);
}

/** The `stalled` event's data when the job is stalled at `now`, else null. */
export function stallAt(
  state: JobState,
  history: KindSummary | null,
  options: StallOptions,
  now: number,
): EventDataMap['stalled'] | null {
  const deadline = stallDeadline(state, history, options);
  const last = estimatorOf(state)?.lastReportAt;
  if (deadline === null || deadline > now || last == null) return null;
  return { since: new Date(last).toISOString(), thresholdMs: stallThreshold(state, history, options) };
}
