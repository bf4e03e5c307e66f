/**
 * What both ETA estimators reason with: normal estimates in log space, where
 * durations of work are roughly normal, combined by their precision; and the
 * projection of a duration from a live pace.
 */

/**
 * Log-sd of a stage's duration projected from its own pace when half done, before
 * a kind's history shows better; scales as √((1 − f) / f).
 */
export const LIVE_NOISE = 0.45;
/** Smallest fraction of a stage (or job) done before its pace is extrapolated. */
export const MIN_FRACTION = 0.01;

/** A normal estimate in log space. */
export interface LogEstimate {
  mean: number;
  var: number;
}

/** The live projection of a duration from `elapsed` ms at `fraction` done, or null too early. */
export function liveProjection(
  elapsed: number,
  fraction: number,
  jitter: number,
  noise2: number,
): LogEstimate | null {
  if (!(fraction >= MIN_FRACTION) || !(elapsed > 0) || fraction >= 1) {
    return fraction >= 1 && elapsed > 0 ? { mean: Math.log(elapsed), var: 0.001 } : null;
  }
  const noise = noise2 * ((1 - fraction) / fraction) + 0.1 * Math.min(1, jitter) ** 2;
  return { mean: Math.log(elapsed / fraction), var: noise };
}

/** Precision-weighted mean of independent normal estimates; null for none. */
export function combine(estimates: readonly LogEstimate[]): LogEstimate | null {
  let precision = 0;
  let sum = 0;
  for (const e of estimates) {
    if (!Number.isFinite(e.mean)) continue;
    const p = 1 / Math.max(e.var, 1e-6);
    precision += p;
    sum += p * e.mean;
  }
  return precision > 0 ? { mean: sum / precision, var: 1 / precision } : null;
}
