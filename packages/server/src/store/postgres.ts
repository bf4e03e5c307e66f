import type { JobEvent, JobState } from '@headway/protocol';
import type { PoolClient, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import pg from 'pg';
import { decodeCursor, encodeCursor, pageLimit } from './cursor.js';
import { LATEST_VERSION, MIGRATIONS_TABLE, migrations } from './migrations.js';
import {
  type JobWrite,
  type ListJobsPage,
  type ListJobsQuery,
  type Store,
  StoreConflictError,
  StoreUnavailableError,
  type SweepOptions,
  type SweepResult,
} from './store.js';
import { toMs } from './timestamps.js';

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database?…`, as understood by `pg`. */
  connectionString: string;
  /**
   * Schema that holds Headway's tables; created by `migrate()` when missing.
   * @defaultValue `'headway'`
   */
  schema?: string;
  /**
   * Most connections the pool opens (per process).
   * @defaultValue `10`
   */
  poolSize?: number;
}

const DEFAULTS = {
  schema: 'headway',
  poolSize: 10,
} as const;

/** How long acquiring a connection may take (connecting, or waiting for a busy pool) before the store reports itself unavailable. */
const CONNECT_TIMEOUT_MS = 5000;
/** An idle pooled connection is closed after this long. */
const IDLE_TIMEOUT_MS = 30_000;
/** Attempts of one transaction when PostgreSQL aborts it as a deadlock victim or serialization failure. */
const MAX_TX_ATTEMPTS = 3;
/** PostgreSQL truncates longer identifiers silently, which would make two schema names collide. */
const MAX_IDENTIFIER_BYTES = 63;
/** Bounds the recursive walk of `descendants` should a parent chain ever form a cycle. */
const MAX_DEPTH = 64;

/**
 * SQLSTATE classes and codes that mean the database cannot be used right now, as
 * opposed to a bug in a statement: connection exceptions (08), bad credentials (28),
 * insufficient resources such as too many connections or a full disk (53),
 * operator intervention such as an admin shutdown or a cancelled statement (57),
 * I/O errors (58).
 */
const UNAVAILABLE_CLASSES = ['08', '28', '53', '57', '58'];
const UNAVAILABLE_CODES = new Set([
  '3D000', // the database does not exist
  '25006', // read-only transaction: connected to a standby, e.g. during a failover
  '55P03', // lock_timeout expired
  'XX001', // data corrupted
  'XX002', // index corrupted
]);

/** Aborted transactions that succeed when simply run again. */
const RETRYABLE_CODES = new Set([
  '40P01', // deadlock detected
  '40001', // serialization failure
]);

/**
 * Named, so that each pooled connection parses and plans them once. The statements
 * that write jobs carry their own precondition (`ON CONFLICT DO NOTHING`,
 * `seq = prev_seq`) and return the ids they changed, so a conflict shows as a
 * missing id rather than needing a separate read.
 */
const SQL = {
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
    text: `INSERT INTO jobs (id, owner, parent, status, seq, updated_at, finished_at, state)
      SELECT id, owner, parent, status, seq, updated_at, finished_at, state
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::jsonb[])
        AS v (id, owner, parent, status, seq, updated_at, finished_at, state)
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
        updated_at = v.updated_at, finished_at = v.finished_at, state = v.state
      FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::jsonb[])
        AS v (id, prev_seq, owner, parent, status, seq, updated_at, finished_at, state)
      WHERE jobs.id = v.id AND jobs.seq = v.prev_seq
      RETURNING jobs.id`,
  },
  insertEvents: {
    name: 'headway_insert_events',
    text: `INSERT INTO events (job, seq, kind, at, data)
      SELECT job, seq, kind, at, data
      FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::jsonb[]) AS v (job, seq, kind, at, data)`,
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

/**
 * The shared store: PostgreSQL through a `pg` pool, for any number of hub processes.
 *
 * A `commit` is one transaction however many jobs and events it carries (group
 * commit): the job rows are written by one statement per kind of write, and all
 * events and all idempotency keys by one multi-row statement each, so its cost
 * grows with the bytes written rather than with the number of round trips. It
 * resolves once PostgreSQL has acknowledged the COMMIT, which under the default
 * `synchronous_commit = on` means the data is flushed to the WAL.
 *
 * Timestamps are stored as milliseconds and handed back as ISO-8601 UTC strings
 * (`Date#toISOString`); states and event data are JSONB, so a state comes back
 * equal to the one written, though not necessarily with its keys in the same order.
 * Ids sort bytewise (`COLLATE "C"`), as in the SQLite store, whatever the
 * database's collation.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres';
  readonly schema: string;
  private readonly pool: pg.Pool;
  /** Connections whose `search_path` has been set. */
  private readonly ready = new WeakSet<PoolClient>();
  private readonly listNames = new Map<string, string>();
  private closed = false;
  private ending: Promise<void> | null = null;

  constructor(options: PostgresStoreOptions) {
    const o = {
      connectionString: options.connectionString,
      schema: options.schema ?? DEFAULTS.schema,
      poolSize: options.poolSize ?? DEFAULTS.poolSize,
    };
    if (typeof o.connectionString !== 'string' || o.connectionString.length === 0) {
      throw new TypeError('PostgresStore: "connectionString" must be a non-empty string');
    }
    if (
      typeof o.schema !== 'string' ||
      o.schema.length === 0 ||
      o.schema.includes('\0') ||
      Buffer.byteLength(o.schema) > MAX_IDENTIFIER_BYTES
    ) {
      throw new TypeError(`PostgresStore: "schema" must be 1–${MAX_IDENTIFIER_BYTES} bytes without NUL`);
    }
    if (!Number.isSafeInteger(o.poolSize) || o.poolSize < 1) {
      throw new TypeError('PostgresStore: "poolSize" must be a positive integer');
    }
    this.schema = o.schema;
    this.pool = new pg.Pool({
      connectionString: o.connectionString,
      max: o.poolSize,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      idleTimeoutMillis: IDLE_TIMEOUT_MS,
      // Lets the kernel notice a peer that vanished without closing the socket.
      keepAlive: true,
    });
    // An idle pooled connection that breaks (server restart, admin termination, a
    // network cut) is emitted here after the pool has already discarded it. Without a
    // listener the 'error' event would crash the process; the next query simply opens
    // a new connection, or reports the store unavailable.
    this.pool.on('error', () => {});
    // A connection can also report its failure after it left the pool — released
    // with an error while the server's termination notice (57P01) was still in
    // flight — when neither the pool's nor a checkout's listener is attached. Every
    // connection keeps a listener of its own for its whole life; the failure itself
    // has already reached the query that met it, or the pool.
    this.pool.on('connect', (client) => {
      client.on('error', () => {});
    });
  }

  async migrate(): Promise<void> {
    const ident = pg.escapeIdentifier(this.schema);
    await this.transaction(async (c) => {
      // Serializes processes that start at once, per schema: the second one finds the
      // schema complete. Held until the transaction ends.
      await query(c, {
        text: 'SELECT pg_advisory_xact_lock(hashtextextended($1, 0))',
        values: [`headway:migrate:${this.schema}`],
      });
      await query(c, `CREATE SCHEMA IF NOT EXISTS ${ident}`);
      await query(c, MIGRATIONS_TABLE.postgres);
      const { rows } = await query<{ v: string }>(
        c,
        'SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations',
      );
      const current = Number(rows[0].v);
      if (current > LATEST_VERSION) {
        throw new Error(
          `schema ${this.schema} has schema version ${current}, newer than this Headway (${LATEST_VERSION})`,
        );
      }
      for (const m of migrations) {
        if (m.version <= current) continue;
        await query(c, m.postgres);
        await query(c, {
          text: 'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
          values: [m.version, m.name, Date.now()],
        });
      }
    });
  }

  async getJob(id: string): Promise<JobState | null> {
    const { rows } = await this.run<{ state: JobState }>({ ...SQL.getJob, values: [id] });
    return rows.length === 0 ? null : rows[0].state;
  }

  /** Jobs in the order of `ids`, skipping missing ones and repeats. */
  async getJobs(ids: readonly string[]): Promise<JobState[]> {
    if (ids.length === 0) return [];
    const { rows } = await this.run<{ id: string; state: JobState }>({ ...SQL.getJobs, values: [ids] });
    const byId = new Map<string, JobState>();
    for (const row of rows) byId.set(row.id, row.state);
    const jobs: JobState[] = [];
    for (const id of ids) {
      const state = byId.get(id);
      if (state === undefined) continue;
      byId.delete(id);
      jobs.push(state);
    }
    return jobs;
  }

  async listJobs(query: ListJobsQuery): Promise<ListJobsPage> {
    const limit = pageLimit(query.limit);
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const where: string[] = [];
    const values: unknown[] = [];
    const param = (value: unknown) => {
      values.push(value);
      return `$${values.length}`;
    };
    if (query.owner !== undefined) where.push(`owner = ${param(query.owner)}`);
    // `= ANY` of an empty array is false, so an empty list matches nothing.
    if (query.status !== undefined) where.push(`status = ANY(${param(query.status)}::text[])`);
    if (query.parent !== undefined) where.push(`parent = ${param(query.parent)}`);
    if (query.ids !== undefined) where.push(`id = ANY(${param(query.ids)}::text[])`);
    if (after !== undefined) {
      const at = param(after.updatedAt);
      where.push(`(updated_at < ${at} OR (updated_at = ${at} AND id COLLATE "C" < ${param(after.id)}))`);
    }
    const text =
      'SELECT id, updated_at, state FROM jobs' +
      (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
      ` ORDER BY updated_at DESC, id COLLATE "C" DESC LIMIT ${param(limit + 1)}`;
    // At most 2^5 shapes exist, since list values are bound as one array parameter.
    let name = this.listNames.get(text);
    if (name === undefined) {
      name = `headway_list_jobs_${this.listNames.size}`;
      this.listNames.set(text, name);
    }
    const { rows } = await this.run<{ id: string; updated_at: string; state: JobState }>({
      name,
      text,
      values,
    });
    const page: ListJobsPage = { jobs: rows.slice(0, limit).map((r) => r.state) };
    if (rows.length > limit) {
      const last = rows[limit - 1];
      page.next = encodeCursor({ updatedAt: Number(last.updated_at), id: last.id });
    }
    return page;
  }

  async descendants(id: string): Promise<string[]> {
    const { rows } = await this.run<{ id: string }>({ ...SQL.descendants, values: [id, MAX_DEPTH] });
    return rows.map((r) => r.id);
  }

  async getEvents(job: string, since: number, limit: number): Promise<JobEvent[]> {
    const n = Math.floor(limit);
    if (!(n > 0) || Number.isNaN(since) || since === Number.POSITIVE_INFINITY) return [];
    // Seqs are integers, so `seq > since` equals `seq > floor(since)`, which binds as a BIGINT.
    const after = Math.max(Math.floor(since), -1);
    const { rows } = await this.run<{
      seq: string;
      kind: JobEvent['kind'];
      at: string;
      data: JobEvent['data'];
    }>({ ...SQL.getEvents, values: [job, after, Math.min(n, Number.MAX_SAFE_INTEGER)] });
    return rows.map(
      (r): JobEvent => ({
        job,
        seq: Number(r.seq),
        kind: r.kind,
        data: r.data,
        at: new Date(Number(r.at)).toISOString(),
      }),
    );
  }

  async findKeys(job: string, keys: readonly string[]): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    if (keys.length === 0) return found;
    const { rows } = await this.run<{ key: string; seq: string }>({ ...SQL.findKeys, values: [job, keys] });
    for (const row of rows) found.set(row.key, Number(row.seq));
    return found;
  }

  async commit(writes: readonly JobWrite[]): Promise<void> {
    if (writes.length === 0) return;
    const batch = planBatch(writes);
    await this.transaction(async (c) => {
      const conflicts = new Set(batch.broken);
      const { creates, updates, events, keys } = batch;
      if (creates.id.length > 0) {
        const { rows } = await query<{ id: string }>(c, {
          ...SQL.insertJobs,
          values: [
            creates.id,
            creates.owner,
            creates.parent,
            creates.status,
            creates.seq,
            creates.updatedAt,
            creates.finishedAt,
            creates.state,
          ],
        });
        const inserted = new Set(rows.map((r) => r.id));
        for (const id of creates.id) if (!inserted.has(id)) conflicts.add(id);
      }
      if (updates.id.length > 0) {
        // One row lock cannot deadlock; several are taken in id order first.
        if (updates.id.length > 1) await query(c, { ...SQL.lockJobs, values: [updates.id] });
        const { rows } = await query<{ id: string }>(c, {
          ...SQL.updateJobs,
          values: [
            updates.id,
            updates.prevSeq,
            updates.owner,
            updates.parent,
            updates.status,
            updates.seq,
            updates.updatedAt,
            updates.finishedAt,
            updates.state,
          ],
        });
        const updated = new Set(rows.map((r) => r.id));
        for (const id of updates.id) if (!updated.has(id)) conflicts.add(id);
      }
      if (conflicts.size > 0) {
        // Named in the order of the writes; throwing rolls back the whole batch.
        throw new StoreConflictError([
          ...new Set(writes.map((w) => w.state.id).filter((id) => conflicts.has(id))),
        ]);
      }
      if (events.job.length > 0) {
        await query(c, {
          ...SQL.insertEvents,
          values: [events.job, events.seq, events.kind, events.at, events.data],
        });
      }
      if (keys.job.length > 0) {
        await query(c, { ...SQL.insertKeys, values: [keys.job, keys.key, keys.seq] });
      }
    });
  }

  async deleteJobs(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    // Unique ids: an upsert may not touch the same tombstone twice in one statement.
    await this.run({ ...SQL.deleteJobs, values: [[...new Set(ids)], Date.now()] });
  }

  async isDeleted(id: string): Promise<boolean> {
    const { rows } = await this.run({ ...SQL.isDeleted, values: [id] });
    return rows.length > 0;
  }

  /**
   * Each statement deletes at most `batchSize` rows and is its own transaction, so
   * that it holds its locks only briefly and commits interleave with a long sweep.
   */
  async sweep(options: SweepOptions): Promise<SweepResult> {
    const batch = Math.max(1, Math.floor(options.batchSize) || 1);
    const eventsBefore = toBound(options.eventsBefore);
    const jobsBefore = toBound(options.jobsBefore);
    const result: SweepResult = { events: 0, jobs: 0 };

    result.events += await this.drain({ ...SQL.sweepEvents, values: [eventsBefore, batch] }, batch);

    for (;;) {
      const { rows } = await this.run<{ id: string }>({ ...SQL.finishedJobs, values: [jobsBefore, batch] });
      if (rows.length === 0) break;
      const ids = rows.map((r) => r.id);
      // A finished job's log may be long: empty it in batches first, so that the
      // statement that removes the job rows has (almost) nothing left to delete.
      result.events += await this.drain({ ...SQL.sweepEventsOfJobs, values: [ids, batch] }, batch);
      await this.drain({ ...SQL.sweepKeysOfJobs, values: [ids, batch] }, batch);
      const removed = await this.run<{ jobs: string; events: string }>({
        ...SQL.deleteFinishedJobs,
        values: [ids, jobsBefore],
      });
      const jobs = Number(removed.rows[0].jobs);
      result.events += Number(removed.rows[0].events);
      result.jobs += jobs;
      if (jobs === 0) break;
    }

    await this.drain({ ...SQL.sweepTombstones, values: [jobsBefore, batch] }, batch);
    return result;
  }

  async ping(): Promise<boolean> {
    if (this.closed) return false;
    try {
      const { rows } = await this.run<{ ok: number }>('SELECT 1 AS ok');
      return rows[0]?.ok === 1;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.ending ??= this.pool.end().catch(() => {
      // The pool is unusable either way; a failure to say goodbye to the server is not the caller's problem.
    });
    await this.ending;
  }

  /** Repeats a batched delete until it removes fewer rows than a full batch. */
  private async drain(statement: QueryConfig, batch: number): Promise<number> {
    let total = 0;
    for (;;) {
      const n = (await this.run(statement)).rowCount ?? 0;
      total += n;
      if (n < batch) return total;
    }
  }

  /** One statement in its own implicit transaction. */
  private run<R extends QueryResultRow = QueryResultRow>(
    statement: string | QueryConfig,
  ): Promise<QueryResult<R>> {
    return this.retrying(() => this.withClient((c) => query<R>(c, statement)));
  }

  /** `fn` between BEGIN and COMMIT; any error rolls back and is rethrown. */
  private transaction<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    return this.retrying(() =>
      this.withClient(async (c) => {
        await query(c, 'BEGIN');
        let result: T;
        try {
          result = await fn(c);
        } catch (err) {
          // A failed ROLLBACK means the connection is gone; `withClient` then discards it.
          await query(c, 'ROLLBACK');
          throw err;
        }
        await query(c, 'COMMIT');
        return result;
      }),
    );
  }

  /** Runs `fn` again when PostgreSQL aborted it only to break a deadlock or a serialization conflict. */
  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (
          attempt >= MAX_TX_ATTEMPTS ||
          !(err instanceof pg.DatabaseError && RETRYABLE_CODES.has(err.code ?? ''))
        ) {
          throw err;
        }
      }
    }
  }

  /** Checks a connection out of the pool for `fn`, with the schema as its search path. */
  private async withClient<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreUnavailableError('the PostgreSQL store is closed');
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw unavailable(err);
    }
    // A checked-out connection has no pool listener: one that breaks between two
    // queries would otherwise emit an unhandled 'error'.
    let broken: Error | undefined;
    const onError = (err: Error) => {
      broken = err;
    };
    client.on('error', onError);
    try {
      if (!this.ready.has(client)) {
        // Set per connection rather than through the startup `options` parameter,
        // which a connection string's own `options` would silently replace.
        await query(client, `SET search_path TO ${pg.escapeIdentifier(this.schema)}`);
        this.ready.add(client);
      }
      return await fn(client);
    } catch (err) {
      if (err instanceof StoreUnavailableError) broken ??= err;
      throw err;
    } finally {
      client.off('error', onError);
      // Releasing with an error removes the connection from the pool instead of reusing it.
      client.release(broken);
    }
  }
}

/** Runs one statement, turning driver and connection failures into `StoreUnavailableError`. */
async function query<R extends QueryResultRow = QueryResultRow>(
  client: PoolClient,
  statement: string | QueryConfig,
): Promise<QueryResult<R>> {
  try {
    return await client.query<R>(statement);
  } catch (err) {
    throw toStoreError(err);
  }
}

function toStoreError(err: unknown): unknown {
  if (err instanceof pg.DatabaseError) {
    const code = err.code ?? '';
    if (UNAVAILABLE_CODES.has(code) || UNAVAILABLE_CLASSES.includes(code.slice(0, 2))) {
      return unavailable(err);
    }
    return err;
  }
  // Everything the server reports is a DatabaseError; anything else from the driver is
  // the connection itself failing (socket closed, connection terminated, protocol error).
  return unavailable(err);
}

function unavailable(err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const reason = err instanceof Error ? err.message || String(code ?? err.name) : String(err);
  return new StoreUnavailableError(
    `PostgreSQL store unavailable: ${typeof code === 'string' && !reason.includes(code) ? `${code} ` : ''}${reason}`,
    { cause: err },
  );
}

interface JobColumns {
  id: string[];
  owner: string[];
  parent: (string | null)[];
  status: string[];
  seq: number[];
  updatedAt: number[];
  finishedAt: (number | null)[];
  state: string[];
}

interface Batch {
  creates: JobColumns;
  updates: JobColumns & { prevSeq: number[] };
  events: { job: string[]; seq: number[]; kind: string[]; at: number[]; data: string[] };
  keys: { job: string[]; key: string[]; seq: number[] };
  /** Jobs whose writes in the batch do not build on one another. */
  broken: Set<string>;
}

function jobColumns(): JobColumns {
  return { id: [], owner: [], parent: [], status: [], seq: [], updatedAt: [], finishedAt: [], state: [] };
}

/**
 * Turns a batch into column arrays for the multi-row statements. Several writes for
 * one job become one job row built on the first write's `prevSeq`, with the last
 * write's state and every write's events and keys. This is exactly what applying
 * them one after another does, provided each write builds on the previous one's
 * seq; a write that does not would fail its precondition, so its job conflicts.
 */
function planBatch(writes: readonly JobWrite[]): Batch {
  const perJob = new Map<string, { prevSeq: number; state: JobState; writes: JobWrite[] }>();
  const broken = new Set<string>();
  for (const w of writes) {
    const id = w.state.id;
    if (broken.has(id)) continue;
    const plan = perJob.get(id);
    if (plan === undefined) {
      perJob.set(id, { prevSeq: w.prevSeq, state: w.state, writes: [w] });
    } else if (w.prevSeq !== 0 && w.prevSeq === plan.state.seq) {
      plan.state = w.state;
      plan.writes.push(w);
    } else {
      perJob.delete(id);
      broken.add(id);
    }
  }

  const batch: Batch = {
    creates: jobColumns(),
    updates: { ...jobColumns(), prevSeq: [] },
    events: { job: [], seq: [], kind: [], at: [], data: [] },
    keys: { job: [], key: [], seq: [] },
    broken,
  };
  for (const [id, plan] of perJob) {
    const st = plan.state;
    const cols = plan.prevSeq === 0 ? batch.creates : batch.updates;
    cols.id.push(id);
    cols.owner.push(st.owner);
    cols.parent.push(st.parent);
    cols.status.push(st.status);
    cols.seq.push(st.seq);
    cols.updatedAt.push(toMs(st.updatedAt));
    cols.finishedAt.push(st.finishedAt === null ? null : toMs(st.finishedAt));
    cols.state.push(JSON.stringify(st));
    if (plan.prevSeq !== 0) batch.updates.prevSeq.push(plan.prevSeq);
    for (const w of plan.writes) {
      for (const e of w.events) {
        batch.events.job.push(e.job);
        batch.events.seq.push(e.seq);
        batch.events.kind.push(e.kind);
        batch.events.at.push(toMs(e.at));
        batch.events.data.push(JSON.stringify(e.data ?? null));
      }
      for (const k of w.keys) {
        batch.keys.job.push(id);
        batch.keys.key.push(k.key);
        batch.keys.seq.push(k.seq);
      }
    }
  }
  return batch;
}

/** A `< bound` in ms as a BIGINT: for integer columns `x < b` equals `x < ceil(b)`. */
function toBound(ms: number): number {
  if (Number.isNaN(ms)) return Number.MIN_SAFE_INTEGER;
  return Math.min(Number.MAX_SAFE_INTEGER, Math.max(Number.MIN_SAFE_INTEGER, Math.ceil(ms)));
}
