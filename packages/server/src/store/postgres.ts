import type { JobEvent, JobState, JobStatus } from '@headway/protocol';
import type { QueryConfig } from 'pg';
import pg from 'pg';
import { asKindSummary, type KindSummary } from '../state/history.js';
import { decodeCursor, pageLimit, pageOf } from './cursor.js';
import { listConditions, orderColumn, type SqlBinder } from './list-filter.js';
import { LATEST_VERSION, MIGRATIONS_TABLE, migrations } from './migrations.js';
import { planBatch } from './postgres-batch.js';
import { PostgresPool } from './postgres-pool.js';
import { query } from './postgres-query.js';
import { SQL } from './postgres-sql.js';
import { INSERT_EVENTS_AND_DELIVERIES, PostgresWebhookStore } from './postgres-webhooks.js';
import { eventOfRow, inIdOrder, jobOfRow, MAX_DESCENDANT_DEPTH, statusCounts } from './rows.js';
import {
  type JobWrite,
  type ListJobsPage,
  type ListJobsQuery,
  type Store,
  StoreConflictError,
  type StoredKindSummary,
  type SweepOptions,
  type SweepResult,
} from './store.js';
import { sweepInBatches } from './sweep.js';
import type { WebhookStore } from './webhook-store.js';

/** Binds values as `$n` and lists as one text array. */
function postgresBinder(values: unknown[]): SqlBinder {
  const bind = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  return {
    value: bind,
    // `= ANY` of an empty array is false, so an empty list matches nothing.
    oneOf: (column, list) => `${column} = ANY(${bind(list)}::text[])`,
    id: 'id COLLATE "C"',
  };
}

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

/** PostgreSQL truncates longer identifiers silently, which would make two schema names collide. */
const MAX_IDENTIFIER_BYTES = 63;

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
  private readonly db: PostgresPool;
  /** Webhooks and their delivery outbox, in the same schema. */
  readonly webhooks: WebhookStore;

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
    this.db = new PostgresPool(o);
    this.webhooks = new PostgresWebhookStore(this.db);
  }

  async migrate(): Promise<void> {
    const ident = pg.escapeIdentifier(this.schema);
    await this.db.transaction(async (c) => {
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
        if (m.postgres !== '') await query(c, m.postgres);
        await query(c, {
          text: 'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
          values: [m.version, m.name, Date.now()],
        });
      }
    });
  }

  async getJob(id: string): Promise<JobState | null> {
    const { rows } = await this.db.run<{ state: JobState }>({ ...SQL.getJob, values: [id] });
    return rows.length === 0 ? null : jobOfRow(rows[0].state);
  }

  /** Jobs in the order of `ids`, skipping missing ones and repeats. */
  async getJobs(ids: readonly string[]): Promise<JobState[]> {
    if (ids.length === 0) return [];
    const { rows } = await this.db.run<{ id: string; state: JobState }>({ ...SQL.getJobs, values: [ids] });
    return inIdOrder(ids, rows, jobOfRow);
  }

  async listJobs(query: ListJobsQuery): Promise<ListJobsPage> {
    const limit = pageLimit(query.limit);
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const column = orderColumn(query.order);
    // Unnamed statements: one per combination of filters would pile up prepared on every connection.
    const values: unknown[] = [];
    const where = listConditions(query, after, postgresBinder(values));
    const list = this.db.run<{ id: string; at: string; state: JobState }>({
      text: `SELECT id, ${column} AS at, state FROM jobs${where}
        ORDER BY ${column} DESC, id COLLATE "C" DESC LIMIT ${limit + 1}`,
      values,
    });
    let counted: Promise<{ rows: { status: JobStatus; n: string }[] }> | undefined;
    if (query.counts) {
      const countValues: unknown[] = [];
      const countWhere = listConditions(query, undefined, postgresBinder(countValues), false);
      counted = this.db.run<{ status: JobStatus; n: string }>({
        text: `SELECT status, COUNT(*) AS n FROM jobs${countWhere} GROUP BY status`,
        values: countValues,
      });
    }
    const { rows } = await list;
    const page = pageOf(
      rows,
      limit,
      (r) => jobOfRow(r.state),
      (r) => ({ at: Number(r.at), id: r.id }),
    );
    if (counted) page.counts = statusCounts((await counted).rows);
    return page;
  }

  async descendants(id: string): Promise<string[]> {
    const { rows } = await this.db.run<{ id: string }>({
      ...SQL.descendants,
      values: [id, MAX_DESCENDANT_DEPTH],
    });
    return rows.map((r) => r.id);
  }

  async getEvents(job: string, since: number, limit: number): Promise<JobEvent[]> {
    const n = Math.floor(limit);
    if (!(n > 0) || Number.isNaN(since) || since === Number.POSITIVE_INFINITY) return [];
    // Seqs are integers, so `seq > since` equals `seq > floor(since)`, which binds as a BIGINT.
    const after = Math.max(Math.floor(since), -1);
    const { rows } = await this.db.run<{
      seq: string;
      kind: JobEvent['kind'];
      at: string;
      data: JobEvent['data'];
    }>({ ...SQL.getEvents, values: [job, after, Math.min(n, Number.MAX_SAFE_INTEGER)] });
    return rows.map((r) => eventOfRow(job, r));
  }

  async findKeys(job: string, keys: readonly string[]): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    if (keys.length === 0) return found;
    const { rows } = await this.db.run<{ key: string; seq: string }>({
      ...SQL.findKeys,
      values: [job, keys],
    });
    for (const row of rows) found.set(row.key, Number(row.seq));
    return found;
  }

  async commit(writes: readonly JobWrite[]): Promise<void> {
    if (writes.length === 0) return;
    const batch = planBatch(writes);
    await this.db.transaction(async (c) => {
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
            creates.name,
            creates.kind,
            creates.createdAt,
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
            updates.name,
            updates.kind,
            updates.createdAt,
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
        // With the events, their webhook deliveries: the outbox commits with them.
        await query(c, {
          ...INSERT_EVENTS_AND_DELIVERIES,
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
    await this.db.run({ ...SQL.deleteJobs, values: [[...new Set(ids)], Date.now()] });
  }

  async isDeleted(id: string): Promise<boolean> {
    const { rows } = await this.db.run({ ...SQL.isDeleted, values: [id] });
    return rows.length > 0;
  }

  /**
   * Each statement deletes at most `batchSize` rows and is its own transaction, so
   * that it holds its locks only briefly and commits interleave with a long sweep.
   */
  async sweep(options: SweepOptions): Promise<SweepResult> {
    const eventsBefore = toBound(options.eventsBefore);
    const jobsBefore = toBound(options.jobsBefore);
    const deleted = async (statement: QueryConfig) => (await this.db.run(statement)).rowCount ?? 0;
    return sweepInBatches(
      {
        deleteOldEvents: (batch) => deleted({ ...SQL.sweepEvents, values: [eventsBefore, batch] }),
        finishedJobs: async (batch) => {
          const { rows } = await this.db.run<{ id: string }>({
            ...SQL.finishedJobs,
            values: [jobsBefore, batch],
          });
          return rows.map((r) => r.id);
        },
        deleteEventsOfJobs: (ids, batch) => deleted({ ...SQL.sweepEventsOfJobs, values: [ids, batch] }),
        deleteKeysOfJobs: (ids, batch) => deleted({ ...SQL.sweepKeysOfJobs, values: [ids, batch] }),
        deleteFinishedJobs: async (ids) => {
          const { rows } = await this.db.run<{ jobs: string; events: string }>({
            ...SQL.deleteFinishedJobs,
            values: [ids, jobsBefore],
          });
          return { jobs: Number(rows[0].jobs), events: Number(rows[0].events) };
        },
        deleteOldTombstones: (batch) => deleted({ ...SQL.sweepTombstones, values: [jobsBefore, batch] }),
      },
      options.batchSize,
    );
  }

  async getKindSummary(kind: string): Promise<StoredKindSummary | null> {
    const { rows } = await this.db.run<{ version: string; summary: unknown }>({
      ...SQL.getKindSummary,
      values: [kind],
    });
    const summary = rows.length === 0 ? null : asKindSummary(rows[0].summary);
    return summary === null ? null : { summary, version: Number(rows[0].version) };
  }

  async saveKindSummary(kind: string, summary: KindSummary, version: number): Promise<boolean> {
    const json = JSON.stringify(summary);
    const { rowCount } =
      version === 0
        ? await this.db.run({ ...SQL.insertKindSummary, values: [kind, Date.now(), json] })
        : await this.db.run({ ...SQL.updateKindSummary, values: [Date.now(), json, kind, version] });
    return rowCount === 1;
  }

  async ping(): Promise<boolean> {
    if (this.db.closed) return false;
    try {
      const { rows } = await this.db.run<{ ok: number }>('SELECT 1 AS ok');
      return rows[0]?.ok === 1;
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

/** A `< bound` in ms as a BIGINT: for integer columns `x < b` equals `x < ceil(b)`. */
function toBound(ms: number): number {
  if (Number.isNaN(ms)) return Number.MIN_SAFE_INTEGER;
  return Math.min(Number.MAX_SAFE_INTEGER, Math.max(Number.MIN_SAFE_INTEGER, Math.ceil(ms)));
}
