/**
 * The ETA: how long a job still needs, with an interval and the confidence the
 * hub gives it. Pure: it reads the job's state, its estimator (running time and
 * stage times, `estimator.ts`), its kind's history (`history.ts`) and the time
 * of the event being folded.
 *
 * Everything is reasoned in log space, where durations are roughly normal:
 * 1. The job's total running time D gets a prior from its kind's history, and
 *    one piece of evidence per measured stage: a finished stage that took `ms`
 *    says log D ≈ log ms − (its usual log share); the current stage projects its
 *    own duration from its live pace (elapsed / fraction done, more trusted as
 *    the fraction grows, and more by a kind whose live paces have proven right)
 *    and from its `total` × the history's time per unit.
 *    The pieces are weighted by their precision (1 / variance), so each counts
 *    as much as it has proven itself.
 * 2. The current stage's remaining time blends its live projection with what
 *    the history and the job's own pace so far predict for it; each stage still
 *    to come takes D × its usual share. This is how stage weights that disagree
 *    with measured durations are corrected for the ETA (the percent keeps the
 *    weights the worker declared).
 * 3. Without history, the estimate extrapolates the job's own pace over its
 *    running time (`basis: 'rate'`): with a stage plan, the rest of the current
 *    stage blends that stage's own pace with the job's average pace per unit of
 *    weight, and the stages to come take the geometric mean of the paces per
 *    unit of weight measured so far; without one, the overall percent is
 *    extrapolated (`eta-rate.ts`).
 * 4. The interval is the median × e^(±h) with h = min({@link MAX_HALF_WIDTH},
 *    z₀.₉ σ), and the confidence is the probability of that interval under the
 *    model (at most 0.9): an uncertain estimate gets a lower confidence rather
 *    than an unreadably wide interval. A stalled job's σ grows, so its
 *    confidence falls; a paused job's running time stands still, so its
 *    estimate does not count down.
 */
import type { Eta, EtaBasis, JobState } from '@headway/protocol';
import { TERMINAL_STATUSES } from '@headway/protocol';
import { activeAt, type Estimator } from './estimator.js';
import { combine, LIVE_NOISE, type LogEstimate, liveProjection } from './eta-model.js';
import { fromRate } from './eta-rate.js';
import { type KindSummary, type LogStats, type StageHistory, sampleVariance, usable } from './history.js';
import { roundRate } from './rate.js';
import { hasPlan } from './stages.js';

/** Jobs' worth of weight {@link LIVE_NOISE} keeps against what a kind's history measured. */
export const LIVE_PRIOR_JOBS = 3;
/** Variance added to every historical statistic: a few jobs never prove a spread of zero. */
export const HISTORY_FLOOR_VAR = 0.02;
/** Variance added to a statistic of n jobs, divided by n: few jobs prove little, however alike. */
export const FEW_JOBS_VAR = 0.3;
/** Variance of a stage to come that the history has never seen. */
export const UNKNOWN_STAGE_VAR = 0.5;
/** Jobs of a kind, and spread of their sizes (variance of the log running time), before a stage's regression is used. */
export const MIN_FIT_JOBS = 5;
export const MIN_FIT_VARIANCE = 0.01;
/** A finished stage whose duration moves less than this with the job's says nothing about the job. */
export const MIN_SLOPE = 0.2;
/** Variance added to every estimate: what no model of a job foresees (a pause, a stall, a retry to come). */
export const MODEL_FLOOR_VAR = 0.02;
/** Variance added while a job is stalled. */
export const STALL_VAR = 0.5;
/** Widest half-interval in log space: the interval never spans more than ×2 either way. */
export const MAX_HALF_WIDTH = Math.log(2);
/** Highest stated confidence, and its z-score. */
export const MAX_CONFIDENCE = 0.9;
const Z_MAX = 1.6449;

/**
 * The ETA of `state` at `at` (ms since epoch, the time of the event just
 * folded), or null once the job has ended or when nothing supports an estimate.
 */
export function estimateEta(
  estimator: Estimator | null,
  state: JobState,
  history: KindSummary | null,
  at: number,
): Eta | null {
  if (estimator === null || TERMINAL_STATUSES.includes(state.status)) return null;
  const hist = history !== null && usable(history.total) ? history : null;
  const result =
    hist === null ? fromRate(estimator, state, at) : fromHistory(liveView(estimator, state, at), hist);
  if (result === null) return null;
  let variance = result.var + MODEL_FLOOR_VAR;
  if (state.stalled) variance += STALL_VAR;
  return present(result.seconds, Math.sqrt(variance), result.basis, estimator, state);
}

/** Where the job stands: its stages, the current one, how far through it, and running times. */
interface LiveView {
  names: string[];
  weights: number[];
  planned: boolean;
  index: number;
  /** Fraction of the current stage done, 0–1. */
  fraction: number;
  /** Fraction of the whole job done, 0–1. */
  overall: number;
  stageMs: number;
  jobMs: number;
  /** The current stage's `total`, when it counts units. */
  total: number | null;
  done: Map<string, number>;
  jitter: number;
}

function liveView(e: Estimator, s: JobState, at: number): LiveView {
  const planned = hasPlan(s.stages);
  const t = activeAt(e, s.status, at);
  const overall = s.progress.percent / 100;
  const total = s.progress.total !== undefined && s.progress.total > 0 ? s.progress.total : null;
  const jitter = e.rate?.jitter ?? 0;
  if (!planned) {
    return {
      names: ['*'],
      weights: [1],
      planned,
      index: 0,
      fraction: overall,
      overall,
      stageMs: t.job,
      jobMs: t.job,
      total: s.stage === null ? total : null,
      done: new Map(),
      jitter,
    };
  }
  return {
    names: s.stages.map((x) => x.name),
    weights: s.stages.map((x) => x.weight),
    planned,
    index: s.stage?.index ?? 0,
    fraction: (s.stage?.percent ?? 0) / 100,
    overall,
    stageMs: s.stage === null ? 0 : t.stage,
    jobMs: t.job,
    total,
    done: new Map(e.done.map((d) => [d.name, d.ms])),
    jitter,
  };
}

/**
 * The squared log-sd of a live projection at half done for this kind: the
 * default pooled with how far the kind's past projections fell from the truth.
 */
function liveNoise(h: KindSummary): number {
  const live = h.live;
  if (live === undefined || !(live.n > 0) || !Number.isFinite(live.mean)) return LIVE_NOISE * LIVE_NOISE;
  return (LIVE_PRIOR_JOBS * LIVE_NOISE * LIVE_NOISE + live.n * live.mean) / (LIVE_PRIOR_JOBS + live.n);
}

function stageHistory(h: KindSummary, v: LiveView, name: string): StageHistory | null {
  if (!v.planned) return { share: { n: h.total.n, mean: 0, var: 0 }, ms: h.total };
  return h.stages[name] ?? null;
}

function statVar(stats: LogStats): number {
  return sampleVariance(stats) + HISTORY_FLOOR_VAR + FEW_JOBS_VAR / stats.n;
}

/**
 * How one stage's log duration relates to the job's log running time L: a
 * prediction from an estimate of L, and the evidence about L that a measured
 * stage duration gives (null when the stage says too little about the job).
 */
interface StageModel {
  /** Slope of the stage's log duration on L (1 for a stage that scales with the job). */
  slope: number;
  /** Variance of the stage's log duration once L is known. */
  residual: number;
  predict(total: LogEstimate): LogEstimate;
  evidence(duration: LogEstimate): LogEstimate | null;
}

function stageModel(h: KindSummary, v: LiveView, i: number): StageModel {
  const stage = stageHistory(h, v, v.names[i]!);
  const fit = stage?.fit;
  if (v.planned && fit && fit.n >= MIN_FIT_JOBS && fit.vxx > MIN_FIT_VARIANCE) {
    // The regression of the stage on the job, with the small-sample correction.
    const k = fit.n / (fit.n - 1);
    const slope = fit.vxy / fit.vxx;
    const residual = Math.max(0, (fit.vyy - slope * fit.vxy) * k) + HISTORY_FLOOR_VAR + FEW_JOBS_VAR / fit.n;
    return {
      slope,
      residual,
      predict: (t) => ({ mean: fit.my + slope * (t.mean - fit.mx), var: residual + slope * slope * t.var }),
      evidence: (d) =>
        Math.abs(slope) < MIN_SLOPE
          ? null
          : { mean: fit.mx + (d.mean - fit.my) / slope, var: (d.var + residual) / (slope * slope) },
    };
  }
  // A fixed share of the job: learned, or the declared weight for a stage never seen.
  const learned = usable(stage?.share);
  const share = learned ? stage!.share.mean : Math.log(weightShare(v, i));
  const residual = learned ? (v.planned ? statVar(stage!.share) : 0) : UNKNOWN_STAGE_VAR;
  return {
    slope: 1,
    residual,
    predict: (t) => ({ mean: t.mean + share, var: t.var + residual }),
    evidence: (d) => (learned ? { mean: d.mean - share, var: d.var + residual } : null),
  };
}

function fromHistory(v: LiveView, h: KindSummary): { seconds: number; var: number; basis: EtaBasis } {
  const models = v.names.map((_, i) => stageModel(h, v, i));
  // 1. Evidence about L, the log of the job's running time: the kind's prior and
  //    every finished stage.
  const evidence: LogEstimate[] = [{ mean: h.total.mean, var: statVar(h.total) }];
  for (let i = 0; i < v.index; i++) {
    const ms = v.done.get(v.names[i]!);
    if (ms === undefined || !(ms > 0)) continue;
    const e = models[i]!.evidence({ mean: Math.log(ms), var: 0 });
    if (e) evidence.push(e);
  }
  const before = combine(evidence) as LogEstimate;

  // 2. The current stage: its live pace, its units, and what the job so far predicts.
  const current = stageHistory(h, v, v.names[v.index]!);
  const model = models[v.index]!;
  const own: LogEstimate[] = [];
  const live = liveProjection(v.stageMs, v.fraction, v.jitter, liveNoise(h));
  if (live) own.push(live);
  if (v.total !== null && usable(current?.perUnit)) {
    own.push({ mean: current.perUnit.mean + Math.log(v.total), var: statVar(current.perUnit) });
  }
  const measured = combine(own);
  const predicted = model.predict(before);
  const stage = combine(measured ? [measured, predicted] : [predicted]) as LogEstimate;
  const fromCurrent = measured ? model.evidence(measured) : null;
  const after = fromCurrent ? (combine([...evidence, fromCurrent]) as LogEstimate) : before;

  // 3. Remaining: the rest of the current stage, then every stage to come.
  const stageMs = Math.exp(stage.mean);
  const restOfStage = Math.max(stageMs * (1 - v.fraction), stageMs - v.stageMs, 0);
  const future: { ms: number; slope: number; residual: number }[] = [];
  for (let i = v.index + 1; i < v.names.length; i++) {
    const m = models[i]!;
    future.push({
      ms: Math.exp(m.predict({ mean: after.mean, var: 0 }).mean),
      slope: m.slope,
      residual: m.residual,
    });
  }
  const remaining = restOfStage + future.reduce((sum, f) => sum + f.ms, 0);
  const basis: EtaBasis = measured ? 'both' : 'history';
  if (!(remaining > 0)) return { seconds: 0, var: stage.var, basis };
  // The stages to come share the uncertainty of L; each adds its own on top.
  let shared = 0;
  let variance = (restOfStage / remaining) ** 2 * stage.var;
  for (const f of future) {
    const w = f.ms / remaining;
    shared += w * f.slope;
    variance += w * w * f.residual;
  }
  variance += shared * shared * after.var;
  return { seconds: remaining / 1000, var: variance, basis };
}

/** A stage's part of the job by the declared weights, for a stage the history has not seen. */
function weightShare(v: LiveView, i: number): number {
  const sum = v.weights.reduce((a, b) => a + b, 0);
  return sum > 0 ? Math.max(1e-3, (v.weights[i] ?? 0) / sum) : 1 / v.names.length;
}

function present(
  seconds: number,
  sigma: number,
  basis: EtaBasis,
  estimator: Estimator,
  state: JobState,
): Eta {
  const halfWidth = Math.min(MAX_HALF_WIDTH, Z_MAX * sigma);
  const confidence = sigma > 0 ? 2 * normalCdf(halfWidth / sigma) - 1 : MAX_CONFIDENCE;
  const rate = estimator.rate;
  const counted = rate !== null && rate.unitRate !== null;
  return {
    seconds: Math.round(seconds),
    confidence: Math.round(Math.min(MAX_CONFIDENCE, confidence) * 100) / 100,
    rate: roundRate(rate === null ? 0 : counted ? (rate.unitRate as number) : rate.percentRate),
    // A rate in units needs a unit name even when the worker gave none.
    unit: counted ? (state.progress.unit ?? 'units') : 'percent',
    low: Math.floor(seconds * Math.exp(-halfWidth)),
    high: Math.ceil(seconds * Math.exp(halfWidth)),
    basis,
  };
}

/** Standard normal CDF (Abramowitz–Stegun 7.1.26, error < 1.5e-7). */
export function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const poly =
    t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-z * z);
  return x >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}
