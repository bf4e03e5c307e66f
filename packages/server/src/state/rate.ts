/**
 * The live rate: a pure fold of progress samples into a smoothed rate.
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

/** Samples closer than this to the previous one are merged into the next. */
export const MIN_SAMPLE_INTERVAL_MS = 250;
/** Time constant of the exponential smoothing, seconds. */
export const RATE_TIME_CONSTANT_S = 10;
/** Upper bound of one measured deviation, so that a single stall cannot poison the jitter for long. */
export const MAX_DEVIATION = 4;

/** The smoothed rate of a job's progress, as folded so far. */
export interface RateSample {
  /** Time (ms since epoch) of the last sample. */
  at: number;
  /** Overall percent at the last sample. */
  percent: number;
  /** Units done at the last sample, when counted. */
  current: number | null;
  /** Smoothed overall percent per second. */
  percentRate: number;
  /** Smoothed units per second, when counted. */
  unitRate: number | null;
  /** Smoothed relative deviation of the instantaneous rate from the smoothed rate. */
  jitter: number;
  /** Number of samples folded. */
  samples: number;
}

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
export function foldSample(prev: RateSample | null, point: EtaPoint, resetUnits = false): RateSample {
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
export function resetUnitBasis(estimator: RateSample | null): RateSample | null {
  return estimator === null ? null : { ...estimator, current: null, unitRate: null };
}

/**
 * Restart the clock at `at` without a sample: used when a paused job resumes, so
 * that the time spent paused is not measured as slow progress.
 */
export function restartClock(estimator: RateSample | null, at: number): RateSample | null {
  if (estimator === null || !Number.isFinite(at) || at <= estimator.at) return estimator;
  return { ...estimator, at };
}

function deviation(measured: number, smoothed: number): number {
  const scale = Math.abs(smoothed);
  if (scale < 1e-12) return measured === 0 ? 0 : MAX_DEVIATION;
  return Math.min(MAX_DEVIATION, Math.abs(measured - smoothed) / scale);
}

/** Four significant digits: enough for a display, and rates range from bytes/s to fractions of a percent/s. */
export function roundRate(rate: number): number {
  if (!Number.isFinite(rate) || rate === 0) return 0;
  return Number(rate.toPrecision(4));
}
