/**
 * The ETA estimator: a pure fold of progress samples into a smoothed rate.
 *
 * Time comes only from the events (`at`), never from a clock, so that replaying a
 * job's log reproduces the same estimate on any process.
 *
 * - Samples closer than {@link MIN_SAMPLE_INTERVAL_MS} to the previous one do not
 *   update the rate and do not move the sample point: a burst of updates is
 *   measured from the older point by the next sample that is far enough away.
 *   Dividing a tiny step by a tiny interval would otherwise swing the rate wildly.
 * - The rate is an exponentially weighted average whose factor depends on the time
 *   between samples (alpha = 1 − exp(−dt / {@link RATE_TIME_CONSTANT_S} s)), so that
 *   the smoothing is the same whether a worker reports ten times a second or once
 *   a minute. The first measured rate is taken as is rather than averaged with 0,
 *   which would make the first estimates absurdly long.
 * - `jitter` is the smoothed relative deviation of each measured rate from the
 *   smoothed rate; it lowers the confidence of a bumpy job.
 * - Progress that goes backwards (a restarted stage or retry) moves the sample
 *   point without touching the rates: the pace before the restart is the best
 *   guess for the redo. The same holds for `current` going backwards.
 * - The unit rate (`current` per second) starts over when the unit or the total
 *   changes, since counts of different things cannot be compared.
 */
import {
  type Eta,
  type EtaSample,
  type JobStatus,
  type Progress,
  TERMINAL_STATUSES,
} from '@headway/protocol';

/** Samples closer than this to the previous one are merged into the next. */
export const MIN_SAMPLE_INTERVAL_MS = 250;
/** Time constant of the exponential smoothing, seconds. */
export const RATE_TIME_CONSTANT_S = 10;
/** Samples that give the confidence half its weight: confidence grows as samples / (samples + 4). */
export const CONFIDENCE_SAMPLES = 4;
/** Upper bound of one measured deviation, so that a single stall cannot poison the jitter for long. */
export const MAX_DEVIATION = 4;

/** One observation of a job's progress. */
export interface EtaPoint {
  /** Time of the observation, ms since epoch. */
  at: number;
  /** Overall percent. */
  percent: number;
  /** Units done, or null when the job does not report counts. */
  current: number | null;
}

/**
 * Fold one observation into the estimator. Returns a new object (or `prev`
 * itself when nothing changes).
 * @param resetUnits the unit or total changed: the unit rate starts over from this point.
 */
export function foldSample(prev: EtaSample | null, point: EtaPoint, resetUnits = false): EtaSample {
  if (prev === null) {
    return {
      at: point.at,
      percent: point.percent,
      current: point.current,
      percentRate: 0,
      unitRate: null,
      jitter: 0,
      samples: 1,
    };
  }
  if (!Number.isFinite(point.at)) return prev;
  const elapsedMs = point.at - prev.at;
  if (elapsedMs < MIN_SAMPLE_INTERVAL_MS) {
    // The sample point stays, but counts of another unit must not be measured against it.
    return resetUnits ? { ...prev, current: null, unitRate: null } : prev;
  }
  const dt = elapsedMs / 1000;
  const alpha = 1 - Math.exp(-dt / RATE_TIME_CONSTANT_S);

  let { percentRate, jitter, samples } = prev;
  if (point.percent >= prev.percent) {
    const measured = (point.percent - prev.percent) / dt;
    if (samples < 2) {
      percentRate = measured;
    } else {
      jitter += alpha * (deviation(measured, percentRate) - jitter);
      percentRate += alpha * (measured - percentRate);
    }
    samples += 1;
  }

  let unitRate = prev.unitRate;
  if (resetUnits || point.current === null) {
    unitRate = null;
  } else if (prev.current !== null && point.current >= prev.current) {
    const measured = (point.current - prev.current) / dt;
    unitRate = unitRate === null ? measured : unitRate + alpha * (measured - unitRate);
  }

  return {
    at: point.at,
    percent: point.percent,
    current: point.current,
    percentRate,
    unitRate,
    jitter,
    samples,
  };
}

/** Forget the count basis (a new stage counts other things) while keeping the percent rate. */
export function resetUnitBasis(estimator: EtaSample | null): EtaSample | null {
  return estimator === null ? null : { ...estimator, current: null, unitRate: null };
}

/**
 * Restart the clock at `at` without a sample: used when a paused job resumes, so
 * that the time spent paused is not measured as slow progress.
 */
export function restartClock(estimator: EtaSample | null, at: number): EtaSample | null {
  if (estimator === null || !Number.isFinite(at) || at <= estimator.at) return estimator;
  return { ...estimator, at };
}

/**
 * The ETA shown to clients. Null when there is no rate yet (fewer than 2 samples,
 * or no progress measured), when the job is paused (the rate is kept for when it
 * resumes; a countdown that does not count down would mislead), and once the job
 * has finished.
 */
export function estimateEta(estimator: EtaSample | null, progress: Progress, status: JobStatus): Eta | null {
  if (status === 'paused' || TERMINAL_STATUSES.includes(status)) {
    return null;
  }
  if (estimator === null || estimator.samples < 2 || !(estimator.percentRate > 0)) return null;
  const remaining = Math.max(0, 100 - progress.percent);
  const seconds = Math.round(remaining / estimator.percentRate);
  const confidence = clamp01(
    estimator.samples / (estimator.samples + CONFIDENCE_SAMPLES) / (1 + Math.max(0, estimator.jitter)),
  );
  const counted = estimator.unitRate !== null;
  return {
    seconds,
    confidence: Math.round(confidence * 100) / 100,
    rate: roundRate(counted ? (estimator.unitRate as number) : estimator.percentRate),
    // A rate in units needs a unit name even when the worker gave none.
    unit: counted ? (progress.unit ?? 'units') : 'percent',
  };
}

function deviation(measured: number, smoothed: number): number {
  const scale = Math.abs(smoothed);
  if (scale < 1e-12) return measured === 0 ? 0 : MAX_DEVIATION;
  return Math.min(MAX_DEVIATION, Math.abs(measured - smoothed) / scale);
}

function clamp01(value: number): number {
  if (!Number.isFinite(value)) return 0;
  return Math.min(1, Math.max(0, value));
}

/** Four significant digits: enough for a display, and rates range from bytes/s to fractions of a percent/s. */
function roundRate(rate: number): number {
  if (!Number.isFinite(rate) || rate === 0) return 0;
  return Number(rate.toPrecision(4));
}
