/**
 * Roll-up of a batch parent from its children.
 *
 * The summary is maintained incrementally (one child's change at a time) so that
 * the hub never has to read every child to update the parent.
 *
 * - `total` counts the existing children; a deleted child leaves the summary.
 * - `completed`, `failed`, `cancelled` count the children in each terminal status.
 * - `percentSum` adds each child's overall percent, where any finished child
 *   counts 100, whether it completed, failed or was cancelled: the parent's bar
 *   measures how much of the batch has been dealt with, so it reaches 100 when
 *   every child has ended, and the outcome (see {@link rollupOutcome}) tells how.
 */
import type { ChildrenSummary, EventInput, JobState } from '@headway/protocol';
import { TERMINAL_STATUSES } from '@headway/protocol';
import { roundPercent } from './stages.js';

/** The summary of a parent without children. */
export function emptySummary(): ChildrenSummary {
  return { total: 0, completed: 0, failed: 0, cancelled: 0, percentSum: 0 };
}

/** What one child contributes to its parent's `percentSum`. */
export function childPercent(child: JobState): number {
  return TERMINAL_STATUSES.includes(child.status) ? 100 : roundPercent(child.progress.percent);
}

/**
 * The parent's summary after one child changed from `before` to `after`.
 * `before` null: a new child; `after` null: the child was deleted.
 * Returns a new object; the input summary is not modified.
 */
export function applyChildChange(
  summary: ChildrenSummary | null,
  before: JobState | null,
  after: JobState | null,
): ChildrenSummary {
  const next = { ...(summary ?? emptySummary()) };
  if (before !== null) count(next, before, -1);
  if (after !== null) count(next, after, 1);
  // Adding and removing two-decimal percents drifts in binary floating point; rounding keeps the sum exact.
  next.percentSum = Math.max(0, Math.round(next.percentSum * 100) / 100);
  next.total = Math.max(0, next.total);
  next.completed = Math.max(0, next.completed);
  next.failed = Math.max(0, next.failed);
  next.cancelled = Math.max(0, next.cancelled);
  return next;
}

function count(summary: ChildrenSummary, child: JobState, sign: 1 | -1): void {
  summary.total += sign;
  summary.percentSum += sign * childPercent(child);
  if (child.status === 'completed') summary.completed += sign;
  else if (child.status === 'failed') summary.failed += sign;
  else if (child.status === 'cancelled') summary.cancelled += sign;
}

/**
 * The terminal event a parent receives once every child has finished, or null
 * while some child is still going (or the parent has no children, or has already
 * finished itself):
 * - a cancel was requested for the parent → `cancelled`;
 * - any child failed → `failed` with code `CHILDREN_FAILED`;
 * - else no child completed (all were cancelled) → `cancelled`;
 * - else `completed` with result `{completed, failed, cancelled}`.
 */
export function rollupOutcome(parent: JobState, summary: ChildrenSummary): EventInput | null {
  if (TERMINAL_STATUSES.includes(parent.status)) return null;
  const { total, completed, failed, cancelled } = summary;
  if (total <= 0 || completed + failed + cancelled !== total) return null;
  // The user cancelled the batch: however its children ended, that is its outcome.
  if (parent.control.cancelRequested) {
    return { kind: 'cancelled', reason: `batch cancelled; ${completed} of ${total} children had completed` };
  }
  if (failed > 0) {
    return {
      kind: 'failed',
      error: { code: 'CHILDREN_FAILED', message: `${failed} of ${total} children failed`, retryable: false },
    };
  }
  if (completed === 0) {
    return { kind: 'cancelled', reason: `${cancelled} of ${total} children cancelled` };
  }
  return { kind: 'completed', result: { completed, failed, cancelled } };
}
