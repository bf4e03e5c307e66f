/**
 * The ETA of a job whose kind has no history yet (`basis: 'rate'`): its own pace
 * over its running time. Without a stage plan the overall percent is
 * extrapolated. With one, the rest of the current stage blends that stage's own
 * pace (trusted more as more of it is done) with the job's average pace per unit
 * of declared weight, and the stages to come take the geometric mean of the
 * paces per unit of weight measured so far. The variance grows with how little
 * is done, with a change of pace, and with how far the declared weights have
 * proven off.
 */
import type { EtaBasis, JobState } from '@headway/protocol';
import { activeAt, type Estimator } from './estimator.js';
import { combine, LIVE_NOISE, type LogEstimate, liveProjection, MIN_FRACTION } from './eta-model.js';
import { MIN_SAMPLE_INTERVAL_MS } from './rate.js';
import { hasPlan } from './stages.js';

/** Log-sd of a job's pace extrapolated from the overall percent when half done; scales as √((1 − f) / f). */
export const RATE_NOISE = 0.1;
/**
 * Log-variance of a stage's time per unit of declared weight around the job's
 * average, before the job's own stages show it (declared weights are often off
 * by a factor of two or three), and the number of stages this prior counts for.
 */
export const WEIGHT_PRIOR_VAR = 0.8;
export const WEIGHT_PRIOR_JOBS = 2;

/** The estimate from the job's own pace at `at`, or null too early (under one rate sample of running time, or 1 % done). */
export function fromRate(
  e: Estimator,
  s: JobState,
  at: number,
): { seconds: number; var: number; basis: EtaBasis } | null {
  const overall = s.progress.percent / 100;
  const t = activeAt(e, s.status, at);
  const running = t.job;
  // Less running time than one rate sample is start-up noise, not a pace to extrapolate.
  if (running < MIN_SAMPLE_INTERVAL_MS) return null;
  if (!(overall >= MIN_FRACTION) || overall >= 1) return null;
  const perJobMs = running / overall;
  const paceVar = RATE_NOISE * RATE_NOISE * ((1 - overall) / overall) + driftVar(e.rate, overall, running);
  if (!hasPlan(s.stages)) return { seconds: (perJobMs * (1 - overall)) / 1000, var: paceVar, basis: 'rate' };

  // With a plan: the rest of the current stage, then the stages to come at the
  // typical pace per unit of weight of the stages measured so far.
  const index = s.stage?.index ?? 0;
  const f = (s.stage?.percent ?? 0) / 100;
  const weight = s.stages[index]?.weight ?? 0;
  const paces = finishedPaces(s, e, index);
  const spread = paceSpread(paces);
  const sum = s.stages.reduce((a, x) => a + x.weight, 0) || 1;
  const done: number[] = [];
  const future: number[] = [];
  for (const [i, stage] of s.stages.entries()) {
    if (i < index) done.push(stage.weight);
    else if (i > index) future.push(stage.weight);
    else if (f > 0) done.push(stage.weight * f);
  }
  const pace = futurePace(paces, weight, t.stage, f, perJobMs / sum);
  const futureMs = pace * future.reduce((a, w) => a + w, 0);
  const futureVar = paceVar + spread * (concentration(future) + concentration(done));
  const byWeightsMs = (perJobMs * weight * (1 - f)) / sum;
  const own =
    s.stage === null ? null : liveProjection(t.stage, f, e.rate?.jitter ?? 0, LIVE_NOISE * LIVE_NOISE);
  const current = currentStageRest(own, f, byWeightsMs, paceVar + spread);
  const remaining = current.ms + futureMs;
  if (!(remaining > 0)) return { seconds: 0, var: futureVar, basis: 'rate' };
  const a = current.ms / remaining;
  const b = futureMs / remaining;
  return { seconds: remaining / 1000, var: a * a * current.var + b * b * futureVar, basis: 'rate' };
}

/** One measured stage's log running time per unit of its declared weight, and that weight. */
interface Pace {
  log: number;
  weight: number;
}

/** The paces of the stages before `index` that this job finished. */
function finishedPaces(s: JobState, e: Estimator, index: number): Pace[] {
  const paces: Pace[] = [];
  for (const [i, stage] of s.stages.entries()) {
    if (i >= index) break;
    const ms = e.done.find((d) => d.name === stage.name)?.ms;
    if (ms !== undefined && ms > 0 && stage.weight > 0)
      paces.push({ log: Math.log(ms / stage.weight), weight: stage.weight });
  }
  return paces;
}

/**
 * The pace per unit of weight of the stages to come: the geometric mean of the
 * paces of the stages measured so far, each weighted by the weight it has done
 * (the current stage, of weight `weight`, by the fraction `f` of it done in
 * `stageMs`), rather than the job's average, which the slowest stage done
 * dominates. Falls back to `average` before any stage has a pace.
 */
function futurePace(
  paces: readonly Pace[],
  weight: number,
  stageMs: number,
  f: number,
  average: number,
): number {
  let logs = 0;
  let weights = 0;
  for (const p of paces) {
    logs += p.weight * p.log;
    weights += p.weight;
  }
  const w = weight * f;
  if (weight > 0 && f >= MIN_FRACTION && stageMs > 0 && w > 0) {
    logs += w * Math.log(stageMs / f / weight);
    weights += w;
  }
  return weights > 0 ? Math.exp(logs / weights) : average;
}

/**
 * The rest of the current stage, `f` of it done: by the job's average pace per
 * unit of weight (`byWeightsMs`, with log-variance `byWeightsVar`), which takes
 * the declared weight at its word, blended with the stage's own projected
 * duration (`own`), which says how fast this stage really goes and is trusted
 * more as more of it is done. Each is weighted by its precision.
 */
function currentStageRest(
  own: LogEstimate | null,
  f: number,
  byWeightsMs: number,
  byWeightsVar: number,
): { ms: number; var: number } {
  if (!(byWeightsMs > 0)) return { ms: 0, var: byWeightsVar };
  const estimates = [{ mean: Math.log(byWeightsMs), var: byWeightsVar }];
  if (own) estimates.push({ mean: own.mean + Math.log(1 - f), var: own.var });
  const rest = combine(estimates) as LogEstimate;
  return { ms: Math.exp(rest.mean), var: rest.var };
}

/**
 * How far the recent pace (the smoothed rate) is from the average pace so far,
 * squared in log space: a job that keeps its pace is extrapolated with
 * confidence, one whose pace has changed is not.
 */
function driftVar(rate: Estimator['rate'], overall: number, runningMs: number): number {
  if (rate === null || rate.samples < 3 || !(rate.percentRate > 0)) return 0;
  const average = (overall * 100) / (runningMs / 1000);
  const d = Math.log(rate.percentRate / average);
  return d * d;
}

/**
 * Extrapolating the overall percent takes the declared stage weights at their
 * word: each stage still to run is assumed to go at the job's average pace per
 * unit of weight. Each stage's pace per weight is taken to vary around that
 * average by a log-variance learned from the stages this job has finished,
 * pooled with {@link WEIGHT_PRIOR_VAR}: this is that variance.
 */
function paceSpread(paces: readonly Pace[]): number {
  let squares = 0;
  if (paces.length >= 2) {
    const mean = paces.reduce((a, p) => a + p.log, 0) / paces.length;
    for (const p of paces) squares += (p.log - mean) ** 2;
  }
  const dof = Math.max(0, paces.length - 1);
  return (WEIGHT_PRIOR_JOBS * WEIGHT_PRIOR_VAR + squares) / (WEIGHT_PRIOR_JOBS + dof);
}

/** Σw² / (Σw)²: 1 for one stage, 1/n for n equal ones; 0 for none. */
function concentration(weights: readonly number[]): number {
  let sum = 0;
  let squares = 0;
  for (const w of weights) {
    sum += w;
    squares += w * w;
  }
  return sum > 0 ? squares / (sum * sum) : 0;
}
