/**
 * Retention for the SQL stores: what `Store.sweep` deletes, and in what order.
 * Each backend supplies the statements; the order and the batching are the same
 * for all, so that no statement holds its locks for long and commits and reads
 * interleave with a long sweep.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { SweepResult } from './store.js';

/** One backend's statements of a sweep, each bounded by `batch` rows; the cutoffs are bound already. */
export interface SweepSteps {
  /** Delete at most `batch` events older than the cutoff; resolves with the number deleted. */
  deleteOldEvents(batch: number): Promise<number>;
  /** Ids of at most `batch` jobs finished before the cutoff, oldest first. */
  finishedJobs(batch: number): Promise<string[]>;
  deleteEventsOfJobs(ids: readonly string[], batch: number): Promise<number>;
  deleteKeysOfJobs(ids: readonly string[], batch: number): Promise<number>;
  /**
   * Delete those of the jobs still finished before the cutoff (a job may have
   * changed since it was selected), with what is left of their events and keys.
   */
  deleteFinishedJobs(ids: readonly string[]): Promise<SweepResult>;
  /** Delete at most `batch` tombstones older than the job cutoff. */
  deleteOldTombstones(batch: number): Promise<number>;
}

/** Old events first, then finished jobs a batch at a time, then old tombstones. */
export async function sweepInBatches(steps: SweepSteps, batchSize: number): Promise<SweepResult> {
  const batch = Math.max(1, Math.floor(batchSize) || 1);
  const result: SweepResult = { events: 0, jobs: 0 };

  result.events += await drain(() => steps.deleteOldEvents(batch), batch);

  for (;;) {
    const ids = await steps.finishedJobs(batch);
    if (ids.length === 0) break;
    // A finished job's log may be long: empty it in batches first, so that the
    // statement that removes the job rows has (almost) nothing left to delete.
    result.events += await drain(() => steps.deleteEventsOfJobs(ids, batch), batch);
    await drain(() => steps.deleteKeysOfJobs(ids, batch), batch);
    const removed = await steps.deleteFinishedJobs(ids);
    result.events += removed.events;
    result.jobs += removed.jobs;
    await yieldToEventLoop();
    if (removed.jobs === 0) break;
  }

  await drain(() => steps.deleteOldTombstones(batch), batch);
  return result;
}

/** Repeats a batched delete until it removes fewer rows than a full batch. */
async function drain(step: () => Promise<number>, batch: number): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await step();
    total += n;
    if (n < batch) return total;
    // SQLite's statements are synchronous: without this, a long sweep would starve the hub.
    await yieldToEventLoop();
  }
}
