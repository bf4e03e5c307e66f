/**
 * The SQL of the SQLite store. List values are bound as one JSON parameter
 * (`json_each`), so that a statement's text does not depend on how many ids it
 * is given.
 */
import type { JobEvent } from '@headway/protocol';
import { eventOfRow, type JobColumns } from './rows.js';

/** A job row to write, with the seq it must replace. */
export interface JobRow extends JobColumns {
  prevSeq: number;
}

/** An event row as stored: data serialized. */
export interface EventRow {
  seq: number;
  kind: JobEvent['kind'];
  at: number;
  data: string;
}

/** The event of a stored row (of `events` or of the event log), its data parsed. */
export function eventOfStoredRow(job: string, row: EventRow): JobEvent {
  return eventOfRow(job, { ...row, data: JSON.parse(row.data) });
}

/** Every fixed statement, prepared once per store. */
export const SQL = {
  getKindSummary: 'SELECT version, summary FROM kind_summaries WHERE kind = ?',
  insertKindSummary: `INSERT INTO kind_summaries (kind, version, updated_at, summary) VALUES (?, 1, ?, ?)
    ON CONFLICT (kind) DO NOTHING`,
  updateKindSummary: `UPDATE kind_summaries SET version = version + 1, updated_at = ?, summary = ?
    WHERE kind = ? AND version = ?`,
  getJob: 'SELECT state FROM jobs WHERE id = ?',
  getJobs: 'SELECT id, state FROM jobs WHERE id IN (SELECT value FROM json_each(?))',
  getEvents: 'SELECT seq, kind, at, data FROM events WHERE job = ? AND seq > ? ORDER BY seq LIMIT ?',
  findKeys: 'SELECT key, seq FROM idempotency_keys WHERE job = ? AND key IN (SELECT value FROM json_each(?))',
  // Both writes carry their own precondition, so a conflict shows as zero changed rows
  // rather than needing a separate read.
  insertJob: `INSERT INTO jobs (id, owner, name, kind, parent, status, seq, created_at, updated_at, finished_at, state)
       VALUES (@id, @owner, @name, @kind, @parent, @status, @seq, @createdAt, @updatedAt, @finishedAt, @state)
       ON CONFLICT (id) DO NOTHING`,
  // Only what an event can change: SQLite rewrites the entries of every index on a
  // column named here, so the columns fixed at creation (owner, name, kind, parent,
  // created_at) are left out.
  updateJob: `UPDATE jobs SET status = @status, seq = @seq, updated_at = @updatedAt, finished_at = @finishedAt,
         state = @state
       WHERE id = @id AND seq = @prevSeq`,
  insertEvent: 'INSERT INTO events (job, seq, kind, at, data) VALUES (?, ?, ?, ?, ?)',
  insertKey: 'INSERT INTO idempotency_keys (job, key, seq) VALUES (?, ?, ?)',
  descendants: `WITH RECURSIVE tree (id, depth) AS (
           SELECT id, 1 FROM jobs WHERE parent = @id
           UNION ALL
           SELECT jobs.id, tree.depth + 1 FROM jobs JOIN tree ON jobs.parent = tree.id
           WHERE tree.depth < @maxDepth
         )
         SELECT id FROM tree WHERE id <> @id GROUP BY id ORDER BY MIN(depth), id`,
  deleteEventsOf: 'DELETE FROM events WHERE job = ?',
  deleteKeysOf: 'DELETE FROM idempotency_keys WHERE job = ?',
  deleteJob: 'DELETE FROM jobs WHERE id = ?',
  insertTombstone: `INSERT INTO tombstones (id, deleted_at) VALUES (?, ?)
       ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at`,
  isDeleted: 'SELECT 1 FROM tombstones WHERE id = ?',
  sweepEvents: 'DELETE FROM events WHERE (job, seq) IN (SELECT job, seq FROM events WHERE at < ? LIMIT ?)',
  finishedJobs: 'SELECT id FROM jobs WHERE finished_at < ? ORDER BY finished_at, id LIMIT ?',
  sweepEventsOfJobs: `DELETE FROM events WHERE (job, seq) IN (
         SELECT job, seq FROM events WHERE job IN (SELECT value FROM json_each(?)) LIMIT ?)`,
  sweepKeysOfJobs: `DELETE FROM idempotency_keys WHERE (job, key) IN (
         SELECT job, key FROM idempotency_keys WHERE job IN (SELECT value FROM json_each(?)) LIMIT ?)`,
  deleteFinishedJob: 'DELETE FROM jobs WHERE id = ? AND finished_at < ?',
  sweepTombstones:
    'DELETE FROM tombstones WHERE id IN (SELECT id FROM tombstones WHERE deleted_at < ? LIMIT ?)',
  ping: 'SELECT 1',
} as const;

/** A row of a `listJobs` page: `at` is the time it is ordered by. */
export interface ListRow {
  id: string;
  at: number;
  state: string;
}
