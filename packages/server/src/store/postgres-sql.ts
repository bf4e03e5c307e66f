/**
 * The fixed SQL of the PostgreSQL store. List values are bound as one array
 * parameter (`= ANY($1::text[])`, `unnest`), so that a statement's text, and
 * its plan, do not depend on how many rows it touches.
 */

/**
 * Named, so that each pooled connection parses and plans them once. The statements
 * that write jobs carry their own precondition (`ON CONFLICT DO NOTHING`,
 * `seq = prev_seq`) and return the ids they changed, so a conflict shows as a
 * missing id rather than needing a separate read.
 */
export const SQL = {
  getKindSummary: {
    name: 'headway_get_kind_summary',
    text: 'SELECT version, summary FROM kind_summaries WHERE kind = $1',
  },
  insertKindSummary: {
    name: 'headway_insert_kind_summary',
    text: `INSERT INTO kind_summaries (kind, version, updated_at, summary) VALUES ($1, 1, $2, $3)
      ON CONFLICT (kind) DO NOTHING`,
  },
  updateKindSummary: {
    name: 'headway_update_kind_summary',
    text: `UPDATE kind_summaries SET version = version + 1, updated_at = $1, summary = $2
      WHERE kind = $3 AND version = $4`,
  },
  getJob: { name: 'headway_get_job', text: 'SELECT state FROM jobs WHERE id = $1' },
  getJobs: { name: 'headway_get_jobs', text: 'SELECT id, state FROM jobs WHERE id = ANY($1::text[])' },
  getEvents: {
    name: 'headway_get_events',
    text: 'SELECT seq, kind, at, data FROM events WHERE job = $1 AND seq > $2 ORDER BY seq LIMIT $3',
  },
  findKeys: {
    name: 'headway_find_keys',
    text: 'SELECT key, seq FROM idempotency_keys WHERE job = $1 AND key = ANY($2::text[])',
  },
  // Sorted so that two transactions creating the same ids wait for each other in
  // one order instead of deadlocking.
  insertJobs: {
    name: 'headway_insert_jobs',
    text: `INSERT INTO jobs (id, owner, parent, status, seq, updated_at, finished_at, state, name, kind, created_at)
      SELECT id, owner, parent, status, seq, updated_at, finished_at, state, name, kind, created_at
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::jsonb[],
          $9::text[], $10::text[], $11::bigint[])
        AS v (id, owner, parent, status, seq, updated_at, finished_at, state, name, kind, created_at)
      ORDER BY id
      ON CONFLICT (id) DO NOTHING
      RETURNING id`,
  },
  // Row locks taken in one order by every process, for the same reason. ORDER BY is
  // applied before FOR UPDATE locks the rows.
  lockJobs: {
    name: 'headway_lock_jobs',
    text: 'SELECT id FROM jobs WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE',
  },
  // Under READ COMMITTED a row updated by a concurrent transaction is re-checked
  // against `seq = prev_seq` once that transaction commits, so two processes that
  // build on the same seq cannot both succeed.
  updateJobs: {
    name: 'headway_update_jobs',
    text: `UPDATE jobs SET owner = v.owner, parent = v.parent, status = v.status, seq = v.seq,
        updated_at = v.updated_at, finished_at = v.finished_at, state = v.state,
        name = v.name, kind = v.kind, created_at = v.created_at
      FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::jsonb[],
          $10::text[], $11::text[], $12::bigint[])
        AS v (id, prev_seq, owner, parent, status, seq, updated_at, finished_at, state, name, kind, created_at)
      WHERE jobs.id = v.id AND jobs.seq = v.prev_seq
      RETURNING jobs.id`,
  },
  insertKeys: {
    name: 'headway_insert_keys',
    text: `INSERT INTO idempotency_keys (job, key, seq)
      SELECT job, key, seq FROM unnest($1::text[], $2::text[], $3::bigint[]) AS v (job, key, seq)`,
  },
  descendants: {
    name: 'headway_descendants',
    text: `WITH RECURSIVE tree (id, depth) AS (
        SELECT id, 1 FROM jobs WHERE parent = $1
        UNION ALL
        SELECT jobs.id, tree.depth + 1 FROM jobs JOIN tree ON jobs.parent = tree.id
        WHERE tree.depth < $2
      )
      SELECT id FROM tree WHERE id <> $1 GROUP BY id ORDER BY MIN(depth), id COLLATE "C"`,
  },
  // One statement is one transaction: data-modifying WITH clauses always run to completion.
  deleteJobs: {
    name: 'headway_delete_jobs',
    text: `WITH e AS (DELETE FROM events WHERE job = ANY($1::text[])),
        k AS (DELETE FROM idempotency_keys WHERE job = ANY($1::text[])),
        j AS (DELETE FROM jobs WHERE id = ANY($1::text[]))
      INSERT INTO tombstones (id, deleted_at) SELECT unnest($1::text[]), $2::bigint
      ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at`,
  },
  isDeleted: { name: 'headway_is_deleted', text: 'SELECT 1 FROM tombstones WHERE id = $1' },
  // `ctid = ANY(ARRAY(…))` is planned as a TID scan: the batch's rows are found once,
  // by the inner query, and deleted by their physical address.
  sweepEvents: {
    name: 'headway_sweep_events',
    text: 'DELETE FROM events WHERE ctid = ANY(ARRAY(SELECT ctid FROM events WHERE at < $1 LIMIT $2))',
  },
  finishedJobs: {
    name: 'headway_finished_jobs',
    text: 'SELECT id FROM jobs WHERE finished_at < $1 ORDER BY finished_at, id LIMIT $2',
  },
  sweepEventsOfJobs: {
    name: 'headway_sweep_events_of_jobs',
    text: 'DELETE FROM events WHERE ctid = ANY(ARRAY(SELECT ctid FROM events WHERE job = ANY($1::text[]) LIMIT $2))',
  },
  sweepKeysOfJobs: {
    name: 'headway_sweep_keys_of_jobs',
    text: `DELETE FROM idempotency_keys
      WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys WHERE job = ANY($1::text[]) LIMIT $2))`,
  },
  // `finished_at` is re-checked here: the job may have changed since it was selected.
  deleteFinishedJobs: {
    name: 'headway_delete_finished_jobs',
    text: `WITH gone AS (DELETE FROM jobs WHERE id = ANY($1::text[]) AND finished_at < $2 RETURNING id),
        e AS (DELETE FROM events WHERE job IN (SELECT id FROM gone) RETURNING 1),
        k AS (DELETE FROM idempotency_keys WHERE job IN (SELECT id FROM gone))
      SELECT (SELECT count(*) FROM gone) AS jobs, (SELECT count(*) FROM e) AS events`,
  },
  sweepTombstones: {
    name: 'headway_sweep_tombstones',
    text: 'DELETE FROM tombstones WHERE ctid = ANY(ARRAY(SELECT ctid FROM tombstones WHERE deleted_at < $1 LIMIT $2))',
  },
} as const satisfies Record<string, { name: string; text: string }>;
