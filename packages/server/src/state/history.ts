/**
 * What the hub learns about a kind of job from the jobs of that kind that
 * completed: a compact summary of running times, in log space (durations of
 * work are roughly log-normal: a job twice as big takes twice as long, and the
 * spread is a factor rather than a number of seconds).
 *
 * Per kind:
 * - `total`: log of the job's running time (queued and paused time excluded);
 * - per stage name: `share`, the log of the stage's part of the job's running
 *   time (what lets measured stages predict the stages still to come, whatever
 *   the stage weights say); `ms`, the log of its running time; and `perUnit`, the
 *   log of its running time per unit of its `total` (how it scales with bytes or
 *   frames);
 * - `gap`: log of each job's typical gap between reports, for stall detection;
 * - `live`: how far a stage's live pace, a quarter of the way through, projected
 *   its duration from the truth (the mean squared log error, scaled to the
 *   spread expected at that point): a kind whose stages keep their pace earns
 *   trust in its live projections, a bumpy one loses it.
 *
 * Bounded: every statistic weighs at most {@link MAX_WEIGHT} jobs (older jobs
 * fade, so a kind that gets slower is followed), and a summary keeps at most
 * {@link MAX_STAGES} stage names.
 */
import type { Estimator } from './estimator.js';

/** Jobs a statistic weighs at most: beyond that, each new job counts as much as this many old ones combined / this. */
export const MAX_WEIGHT = 50;
/** Stage names kept per kind (a plan has at most 64 stages). */
export const MAX_STAGES = 64;
/** Finished jobs needed before a statistic is used. */
export const MIN_JOBS = 2;

/** Mean and variance of a log quantity, weighted towards recent jobs. */
export interface LogStats {
  /** Jobs folded, at most {@link MAX_WEIGHT}. */
  n: number;
  mean: number;
  /** Variance (population form; see {@link sampleVariance}). */
  var: number;
}

/**
 * How a stage's log duration y follows the job's log running time x: weighted
 * means, variances and covariance, from which `eta.ts` takes the regression
 * y ≈ my + b (x − mx) with b = vxy / vxx. A stage of fixed cost has b ≈ 0 (its
 * duration says little about the job's); one that grows with the job has b ≈ 1.
 */
export interface StageFit {
  n: number;
  mx: number;
  my: number;
  vxx: number;
  vxy: number;
  vyy: number;
}

export interface StageHistory {
  share: LogStats;
  ms: LogStats;
  perUnit?: LogStats;
  fit?: StageFit;
}

/** Everything the hub keeps about one kind. Plain JSON, a few KB at most. */
export interface KindSummary {
  /** Completed jobs learned from (not capped). */
  jobs: number;
  total: LogStats;
  gap: LogStats | null;
  /** Per job, the mean scaled squared error of its live projections (not a log: `mean` is a variance). */
  live?: LogStats;
  stages: Record<string, StageHistory>;
}

/** What one completed job teaches: its running time, its stages', and its gap between reports. */
export interface DurationSample {
  totalMs: number;
  stages: { name: string; ms: number; total?: number }[];
  /** Typical gap between reports, ms; absent with fewer than 2 gaps. */
  gapMs?: number;
  /** Mean scaled squared error of the job's live projections; absent when none was scored. */
  liveError?: number;
}

/** The sample of a job that completed, from its estimator; null when it ran no measurable time. */
export function durationSample(estimator: Estimator | null): DurationSample | null {
  if (estimator === null || !(estimator.activeMs > 0)) return null;
  const sample: DurationSample = {
    totalMs: estimator.activeMs,
    stages: estimator.done.filter((s) => s.ms > 0).map((s) => ({ ...s })),
  };
  if (estimator.gapLog !== null && estimator.gaps >= 2) sample.gapMs = Math.exp(estimator.gapLog);
  const live = estimator.live;
  if (live !== undefined && live.n > 0) sample.liveError = live.sumSquares / live.n;
  return sample;
}

/** Fold a completed job into a kind's summary (null: the kind's first job). Returns a new summary. */
export function learn(summary: KindSummary | null, sample: DurationSample): KindSummary {
  const totalLog = Math.log(sample.totalMs);
  const stages: Record<string, StageHistory> = { ...(summary?.stages ?? {}) };
  for (const s of sample.stages) {
    const prev = stages[s.name];
    if (prev === undefined && Object.keys(stages).length >= MAX_STAGES) continue;
    const next: StageHistory = {
      share: fold(prev?.share ?? null, Math.log(s.ms) - totalLog),
      ms: fold(prev?.ms ?? null, Math.log(s.ms)),
      fit: foldFit(prev?.fit ?? null, totalLog, Math.log(s.ms)),
    };
    const perUnit =
      s.total !== undefined && s.total > 0
        ? fold(prev?.perUnit ?? null, Math.log(s.ms / s.total))
        : undefined;
    if (perUnit) next.perUnit = perUnit;
    else if (prev?.perUnit) next.perUnit = prev.perUnit;
    stages[s.name] = next;
  }
  const next: KindSummary = {
    jobs: (summary?.jobs ?? 0) + 1,
    total: fold(summary?.total ?? null, totalLog),
    gap:
      sample.gapMs !== undefined && sample.gapMs > 0
        ? fold(summary?.gap ?? null, Math.log(sample.gapMs))
        : (summary?.gap ?? null),
    stages,
  };
  const live =
    sample.liveError !== undefined && Number.isFinite(sample.liveError)
      ? fold(summary?.live ?? null, sample.liveError)
      : summary?.live;
  if (live) next.live = live;
  return next;
}

function fold(stats: LogStats | null, x: number): LogStats {
  if (stats === null) return { n: 1, mean: x, var: 0 };
  const n = Math.min(stats.n + 1, MAX_WEIGHT);
  const delta = x - stats.mean;
  const mean = stats.mean + delta / n;
  return { n, mean, var: stats.var + (delta * (x - mean) - stats.var) / n };
}

function foldFit(fit: StageFit | null, x: number, y: number): StageFit {
  if (fit === null) return { n: 1, mx: x, my: y, vxx: 0, vxy: 0, vyy: 0 };
  const n = Math.min(fit.n + 1, MAX_WEIGHT);
  const dx = x - fit.mx;
  const dy = y - fit.my;
  const mx = fit.mx + dx / n;
  const my = fit.my + dy / n;
  return {
    n,
    mx,
    my,
    vxx: fit.vxx + (dx * (x - mx) - fit.vxx) / n,
    vxy: fit.vxy + (dx * (y - my) - fit.vxy) / n,
    vyy: fit.vyy + (dy * (y - my) - fit.vyy) / n,
  };
}

/** The unbiased variance of `stats` (the population form scaled by n / (n − 1)). */
export function sampleVariance(stats: LogStats): number {
  return stats.n < 2 ? 0 : (stats.var * stats.n) / (stats.n - 1);
}

/** Whether `stats` rests on enough jobs to be used. */
export function usable(stats: LogStats | null | undefined): stats is LogStats {
  return stats != null && stats.n >= MIN_JOBS && Number.isFinite(stats.mean);
}

/** Check the shape of a summary read back from the store; null for anything else. */
export function asKindSummary(value: unknown): KindSummary | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Partial<KindSummary>;
  if (typeof v.jobs !== 'number' || !isStats(v.total) || typeof v.stages !== 'object' || v.stages === null) {
    return null;
  }
  return value as KindSummary;
}

function isStats(value: unknown): value is LogStats {
  const s = value as LogStats | null;
  return typeof s === 'object' && s !== null && typeof s.n === 'number' && typeof s.mean === 'number';
}
