/**
 * Stage plans and the weighting of the overall percent.
 *
 * A job may declare a plan of named stages with relative weights. With a plan, the
 * percent a worker reports is the percent within the current stage, and the
 * job's overall percent is the weighted position across the whole plan: a fast
 * `download` stage of weight 1 followed by a slow `transcode` of weight 8 moves
 * the bar honestly instead of jumping to 50% after the download.
 *
 * Without a plan, stages are still recorded as the worker names them so that the
 * timeline shows them, but they carry weight 0 ({@link UNPLANNED_WEIGHT}): they do
 * not weigh the overall percent, and a plan (every weight > 0) stays
 * distinguishable from stages merely seen.
 */
import type { StageInfo, StageInput, StagePlanEntry } from '@headway/protocol';
import { ErrorCode, MAX_STAGE_WEIGHT } from '@headway/protocol';
import { HeadwayError } from '../errors.js';

/** Weight of a stage recorded without a plan: part of the timeline, not of the overall percent. */
export const UNPLANNED_WEIGHT = 0;

/** Clamp to 0–100 and round to 2 decimals, the precision of every percent in a job's state. */
export function roundPercent(value: number): number {
  if (!Number.isFinite(value)) return 0;
  const clamped = Math.min(100, Math.max(0, value));
  return Math.round(clamped * 100) / 100;
}

/** `current` of `total` as a percent; an empty total counts as no progress rather than a division by zero. */
export function percentOf(current: number, total: number): number {
  return total === 0 ? 0 : roundPercent((current / total) * 100);
}

/**
 * Validate a requested plan and apply the default weight of 1. Names must be
 * unique, since a stage event names the stage it enters.
 * @throws HeadwayError INVALID_VALUE for an empty or repeated name or a weight that is not a positive number of at most `MAX_STAGE_WEIGHT`.
 */
export function normalizePlan(stages: readonly StageInput[] | undefined): { name: string; weight: number }[] {
  const seen = new Set<string>();
  return (stages ?? []).map((entry, i) => {
    const name = entry?.name;
    if (typeof name !== 'string' || name.length === 0) {
      throw new HeadwayError(ErrorCode.INVALID_VALUE, `stage ${i} of the plan has no name`);
    }
    if (seen.has(name)) {
      throw new HeadwayError(ErrorCode.INVALID_VALUE, `stage "${name}" appears twice in the plan`);
    }
    seen.add(name);
    const weight = entry.weight ?? 1;
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0 || weight > MAX_STAGE_WEIGHT) {
      throw new HeadwayError(
        ErrorCode.INVALID_VALUE,
        `stage "${name}" must have a positive weight of at most ${MAX_STAGE_WEIGHT}`,
      );
    }
    return { name, weight };
  });
}

/** The timeline entries of a fresh plan: nothing started yet. */
export function planEntries(plan: readonly { name: string; weight: number }[]): StagePlanEntry[] {
  return plan.map(({ name, weight }) => ({ name, weight, startedAt: null, endedAt: null }));
}

/** True when the job was created with a stage plan (as opposed to stages recorded as they came). */
export function hasPlan(stages: readonly StagePlanEntry[]): boolean {
  return stages.some((s) => s.weight > UNPLANNED_WEIGHT);
}

/**
 * Overall percent of a job that is `stagePercent` through stage `index` of its plan:
 * (weights before the stage + weight × stagePercent / 100) / total weight × 100.
 */
export function weightedPercent(
  stages: readonly StagePlanEntry[],
  index: number,
  stagePercent: number,
): number {
  let total = 0;
  let before = 0;
  for (let i = 0; i < stages.length; i++) {
    total += stages[i].weight;
    if (i < index) before += stages[i].weight;
  }
  const weight = stages[index]?.weight ?? 0;
  if (total <= 0) return roundPercent(stagePercent);
  return roundPercent(((before + (weight * stagePercent) / 100) / total) * 100);
}

/**
 * Enter stage `name` at time `at`: the stage (re)starts with percent 0, the stage
 * being left ends. Without a plan an unseen name is appended to the timeline; a
 * name seen before is re-entered in place so that `count` stays the number of
 * distinct stages. Returns new arrays and objects; the inputs are not modified.
 * @throws HeadwayError INVALID_VALUE for a name that is not in the plan.
 */
export function enterStage(
  stages: readonly StagePlanEntry[],
  current: StageInfo | null,
  name: string,
  at: string,
): { stages: StagePlanEntry[]; stage: StageInfo } {
  const next = stages.map((s) => ({ ...s }));
  let index = next.findIndex((s) => s.name === name);
  if (index < 0) {
    if (hasPlan(stages)) {
      throw new HeadwayError(ErrorCode.INVALID_VALUE, `stage "${name}" is not in the job's plan`);
    }
    next.push({ name, weight: UNPLANNED_WEIGHT, startedAt: null, endedAt: null });
    index = next.length - 1;
  }
  if (current !== null && current.index !== index && next[current.index]) {
    next[current.index].endedAt = at;
  }
  next[index].startedAt = at;
  next[index].endedAt = null;
  return { stages: next, stage: { name, index, count: next.length, percent: 0 } };
}

/** Mark the current stage as ended (a terminal event); a no-op without a current stage. */
export function endStage(
  stages: readonly StagePlanEntry[],
  current: StageInfo | null,
  at: string,
): StagePlanEntry[] {
  if (current === null || !stages[current.index] || stages[current.index].endedAt !== null)
    return [...stages];
  return stages.map((s, i) => (i === current.index ? { ...s, endedAt: at } : s));
}
