import type { JobEvent, JobState } from '@headway/protocol';
import Database from 'better-sqlite3';
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

export interface SqliteStoreOptions {
  /** Database file, or `:memory:` for a store that lives as long as the process. */
  path: string;
}

/** How long a statement waits for another process's write lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;
/** Bounds the recursive walk of `descendants` should a parent chain ever form a cycle. */
const MAX_DEPTH = 64;

/**
 * Codes (or code prefixes, for the extended `SQLITE_IOERR_*` family) that mean the
 * database cannot be used right now, as opposed to a bug in a statement.
 */
const UNAVAILABLE_CODES = [
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_CANTOPEN',
  'SQLITE_IOERR',
  'SQLITE_FULL',
  'SQLITE_READONLY',
  'SQLITE_NOMEM',
  'SQLITE_PROTOCOL',
  'SQLITE_CORRUPT',
  'SQLITE_NOTADB',
];

interface JobRow {
  id: string;
  owner: string;
  parent: string | null;
  status: string;
  seq: number;
  updatedAt: number;
  finishedAt: number | null;
  state: string;
  prevSeq: number;
}

interface EventRow {
  seq: number;
  kind: JobEvent['kind'];
  at: number;
  data: string;
}

function prepareAll(db: Database.Database) {
  return {
    getJob: db.prepare<[string], string>('SELECT state FROM jobs WHERE id = ?').pluck(),
    getJobs: db.prepare<[string], { id: string; state: string }>(
      'SELECT id, state FROM jobs WHERE id IN (SELECT value FROM json_each(?))',
    ),
    getEvents: db.prepare<[string, number, number], EventRow>(
      'SELECT seq, kind, at, data FROM events WHERE job = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    findKeys: db.prepare<[string, string], { key: string; seq: number }>(
      'SELECT key, seq FROM idempotency_keys WHERE job = ? AND key IN (SELECT value FROM json_each(?))',
    ),
    // Both writes carry their own precondition, so a conflict shows as zero changed rows
    // rather than needing a separate read.
    insertJob: db.prepare<[JobRow]>(
      `INSERT INTO jobs (id, owner, parent, status, seq, updated_at, finished_at, state)
       VALUES (@id, @owner, @parent, @status, @seq, @updatedAt, @finishedAt, @state)
       ON CONFLICT (id) DO NOTHING`,
    ),
    updateJob: db.prepare<[JobRow]>(
      `UPDATE jobs SET owner = @owner, parent = @parent, status = @status, seq = @seq,
         updated_at = @updatedAt, finished_at = @finishedAt, state = @state
       WHERE id = @id AND seq = @prevSeq`,
    ),
    insertEvent: db.prepare<[string, number, string, number, string]>(
      'INSERT INTO events (job, seq, kind, at, data) VALUES (?, ?, ?, ?, ?)',
    ),
    insertKey: db.prepare<[string, string, number]>(
      'INSERT INTO idempotency_keys (job, key, seq) VALUES (?, ?, ?)',
    ),
    descendants: db
      .prepare<{ id: string; maxDepth: number }, string>(
        `WITH RECURSIVE tree (id, depth) AS (
           SELECT id, 1 FROM jobs WHERE parent = @id
           UNION ALL
           SELECT jobs.id, tree.depth + 1 FROM jobs JOIN tree ON jobs.parent = tree.id
           WHERE tree.depth < @maxDepth
         )
         SELECT id FROM tree WHERE id <> @id GROUP BY id ORDER BY MIN(depth), id`,
      )
      .pluck(),
    deleteEventsOf: db.prepare<[string]>('DELETE FROM events WHERE job = ?'),
    deleteKeysOf: db.prepare<[string]>('DELETE FROM idempotency_keys WHERE job = ?'),
    deleteJob: db.prepare<[string]>('DELETE FROM jobs WHERE id = ?'),
    insertTombstone: db.prepare<[string, number]>(
      `INSERT INTO tombstones (id, deleted_at) VALUES (?, ?)
       ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at`,
    ),
    isDeleted: db.prepare<[string], number>('SELECT 1 FROM tombstones WHERE id = ?').pluck(),
    sweepEvents: db.prepare<[number, number]>(
      'DELETE FROM events WHERE (job, seq) IN (SELECT job, seq FROM events WHERE at < ? LIMIT ?)',
    ),
    finishedJobs: db
      .prepare<[number, number], string>(
        'SELECT id FROM jobs WHERE finished_at < ? ORDER BY finished_at, id LIMIT ?',
      )
      .pluck(),
    sweepEventsOfJobs: db.prepare<[string, number]>(
      `DELETE FROM events WHERE (job, seq) IN (
         SELECT job, seq FROM events WHERE job IN (SELECT value FROM json_each(?)) LIMIT ?)`,
    ),
    sweepKeysOfJobs: db.prepare<[string, number]>(
      `DELETE FROM idempotency_keys WHERE (job, key) IN (
         SELECT job, key FROM idempotency_keys WHERE job IN (SELECT value FROM json_each(?)) LIMIT ?)`,
    ),
    deleteFinishedJob: db.prepare<[string, number]>('DELETE FROM jobs WHERE id = ? AND finished_at < ?'),
    sweepTombstones: db.prepare<[number, number]>(
      'DELETE FROM tombstones WHERE id IN (SELECT id FROM tombstones WHERE deleted_at < ? LIMIT ?)',
    ),
    ping: db.prepare<[], number>('SELECT 1').pluck(),
  };
}

type Statements = ReturnType<typeof prepareAll>;

/**
 * The embedded store: one SQLite file (better-sqlite3) in WAL mode with
 * `synchronous = NORMAL`, so a resolved `commit` survives a crash of the process
 * (not of the machine). Several processes may open the same file; writes take the
 * write lock up front (`BEGIN IMMEDIATE`) and wait up to five seconds for it.
 *
 * Timestamps are stored as milliseconds and handed back as ISO-8601 UTC strings
 * (`Date#toISOString`); a job's state is stored and returned verbatim.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly path: string;
  private readonly db: Database.Database;
  private stmts: Statements | null = null;
  private readonly listCache = new Map<string, Database.Statement<Record<string, unknown>, ListRow>>();
  private closed = false;

  constructor(options: SqliteStoreOptions) {
    this.path = options.path;
    let db: Database.Database | undefined;
    try {
      db = new Database(options.path);
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      this.db = db;
    } catch (err) {
      db?.close();
      // Whatever stops the file from opening (missing directory, permissions, a lock),
      // the hub can only report the store as unavailable.
      const reason = err instanceof Error ? err.message : String(err);
      throw new StoreUnavailableError(`cannot open SQLite database ${options.path}: ${reason}`, {
        cause: err,
      });
    }
  }

  async migrate(): Promise<void> {
    this.guard(() => {
      const db = this.db;
      db.transaction(() => {
        db.exec(MIGRATIONS_TABLE.sqlite);
        const current =
          db.prepare<[], number | null>('SELECT MAX(version) FROM schema_migrations').pluck().get() ?? 0;
        if (current > LATEST_VERSION) {
          throw new Error(
            `database ${this.path} has schema version ${current}, newer than this Headway (${LATEST_VERSION})`,
          );
        }
        const record = db.prepare(
          'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
        );
        for (const m of migrations) {
          if (m.version <= current) continue;
          db.exec(m.sqlite);
          record.run(m.version, m.name, Date.now());
        }
      }).immediate();
      this.stmts ??= prepareAll(db);
    });
  }

  async getJob(id: string): Promise<JobState | null> {
    return this.use((s) => {
      const state = s.getJob.get(id);
      return state === undefined ? null : (JSON.parse(state) as JobState);
    });
  }

  /** Jobs in the order of `ids`, skipping missing ones and repeats. */
  async getJobs(ids: readonly string[]): Promise<JobState[]> {
    if (ids.length === 0) return [];
    return this.use((s) => {
      const byId = new Map<string, string>();
      for (const row of s.getJobs.all(JSON.stringify(ids))) byId.set(row.id, row.state);
      const jobs: JobState[] = [];
      for (const id of ids) {
        const state = byId.get(id);
        if (state === undefined) continue;
        byId.delete(id);
        jobs.push(JSON.parse(state) as JobState);
      }
      return jobs;
    });
  }

  async listJobs(query: ListJobsQuery): Promise<ListJobsPage> {
    const limit = pageLimit(query.limit);
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    return this.use(() => {
      const where: string[] = [];
      const params: Record<string, unknown> = { limit: limit + 1 };
      if (query.owner !== undefined) {
        where.push('owner = @owner');
        params.owner = query.owner;
      }
      if (query.status !== undefined) {
        where.push('status IN (SELECT value FROM json_each(@status))');
        params.status = JSON.stringify(query.status);
      }
      if (query.parent !== undefined) {
        where.push('parent = @parent');
        params.parent = query.parent;
      }
      if (query.ids !== undefined) {
        where.push('id IN (SELECT value FROM json_each(@ids))');
        params.ids = JSON.stringify(query.ids);
      }
      if (after !== undefined) {
        where.push('(updated_at < @afterAt OR (updated_at = @afterAt AND id < @afterId))');
        params.afterAt = after.updatedAt;
        params.afterId = after.id;
      }
      const sql =
        'SELECT id, updated_at AS updatedAt, state FROM jobs' +
        (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '') +
        ' ORDER BY updated_at DESC, id DESC LIMIT @limit';
      // At most 2^5 shapes exist, since list values are bound as one JSON parameter.
      let stmt = this.listCache.get(sql);
      if (stmt === undefined) {
        stmt = this.db.prepare<Record<string, unknown>, ListRow>(sql);
        this.listCache.set(sql, stmt);
      }
      const rows = stmt.all(params);
      const page: ListJobsPage = { jobs: rows.slice(0, limit).map((r) => JSON.parse(r.state) as JobState) };
      if (rows.length > limit) {
        const last = rows[limit - 1];
        page.next = encodeCursor({ updatedAt: last.updatedAt, id: last.id });
      }
      return page;
    });
  }

  async descendants(id: string): Promise<string[]> {
    return this.use((s) => s.descendants.all({ id, maxDepth: MAX_DEPTH }));
  }

  async getEvents(job: string, since: number, limit: number): Promise<JobEvent[]> {
    // SQLite reads a negative LIMIT as "no limit".
    const n = Math.floor(limit);
    if (!(n > 0)) return [];
    return this.use((s) =>
      s.getEvents.all(job, since, n).map(
        (r): JobEvent => ({
          job,
          seq: r.seq,
          kind: r.kind,
          data: JSON.parse(r.data) as JobEvent['data'],
          at: new Date(r.at).toISOString(),
        }),
      ),
    );
  }

  async findKeys(job: string, keys: readonly string[]): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    if (keys.length === 0) return found;
    return this.use((s) => {
      for (const row of s.findKeys.all(job, JSON.stringify(keys))) found.set(row.key, row.seq);
      return found;
    });
  }

  async commit(writes: readonly JobWrite[]): Promise<void> {
    if (writes.length === 0) return;
    this.use((s) => {
      this.db
        .transaction(() => {
          const conflicts: string[] = [];
          for (const w of writes) {
            const st = w.state;
            const row: JobRow = {
              id: st.id,
              owner: st.owner,
              parent: st.parent,
              status: st.status,
              seq: st.seq,
              updatedAt: toMs(st.updatedAt),
              finishedAt: st.finishedAt === null ? null : toMs(st.finishedAt),
              state: JSON.stringify(st),
              prevSeq: w.prevSeq,
            };
            const changed = (w.prevSeq === 0 ? s.insertJob : s.updateJob).run(row).changes;
            if (changed !== 1) {
              conflicts.push(st.id);
              continue;
            }
            // Once the batch is known to fail, only the remaining preconditions matter.
            if (conflicts.length > 0) continue;
            for (const e of w.events) {
              s.insertEvent.run(e.job, e.seq, e.kind, toMs(e.at), JSON.stringify(e.data ?? null));
            }
            for (const k of w.keys) s.insertKey.run(st.id, k.key, k.seq);
          }
          // Throwing inside the transaction rolls back every write of the batch.
          if (conflicts.length > 0) throw new StoreConflictError([...new Set(conflicts)]);
        })
        .immediate();
    });
  }

  async deleteJobs(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    this.use((s) => {
      this.db
        .transaction(() => {
          const now = Date.now();
          for (const id of ids) {
            s.deleteEventsOf.run(id);
            s.deleteKeysOf.run(id);
            s.deleteJob.run(id);
            s.insertTombstone.run(id, now);
          }
        })
        .immediate();
    });
  }

  async isDeleted(id: string): Promise<boolean> {
    return this.use((s) => s.isDeleted.get(id) !== undefined);
  }

  /**
   * Each statement deletes at most `batchSize` rows and runs in its own implicit
   * transaction; the loop yields to the event loop between statements so that
   * commits and reads interleave with a long sweep.
   */
  async sweep(options: SweepOptions): Promise<SweepResult> {
    const batch = Math.max(1, Math.floor(options.batchSize) || 1);
    const result: SweepResult = { events: 0, jobs: 0 };

    result.events += await this.drain((s) => s.sweepEvents.run(options.eventsBefore, batch).changes, batch);

    for (;;) {
      const ids = this.use((s) => s.finishedJobs.all(options.jobsBefore, batch));
      if (ids.length === 0) break;
      const list = JSON.stringify(ids);
      // A finished job's log may be long: empty it in batches first, so that the
      // transaction that removes the job rows has (almost) nothing left to delete.
      result.events += await this.drain((s) => s.sweepEventsOfJobs.run(list, batch).changes, batch);
      await this.drain((s) => s.sweepKeysOfJobs.run(list, batch).changes, batch);
      const removed = this.use((s) =>
        this.db
          .transaction(() => {
            let events = 0;
            let jobs = 0;
            for (const id of ids) {
              // Re-checked here: the job may have changed while the loop yielded.
              if (s.deleteFinishedJob.run(id, options.jobsBefore).changes === 0) continue;
              jobs++;
              events += s.deleteEventsOf.run(id).changes;
              s.deleteKeysOf.run(id);
            }
            return { events, jobs };
          })
          .immediate(),
      );
      result.events += removed.events;
      result.jobs += removed.jobs;
      await yieldToEventLoop();
      if (removed.jobs === 0) break;
    }

    await this.drain((s) => s.sweepTombstones.run(options.jobsBefore, batch).changes, batch);
    return result;
  }

  async ping(): Promise<boolean> {
    if (this.closed || this.stmts === null) return false;
    try {
      return this.stmts.ping.get() === 1;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      // Keeps the query planner's statistics fresh for the next start, at little cost.
      this.db.pragma('optimize');
    } catch {
      // Closing matters more than the statistics.
    }
    this.db.close();
  }

  /** Repeats a batched delete until it removes fewer rows than a full batch. */
  private async drain(step: (s: Statements) => number, batch: number): Promise<number> {
    let total = 0;
    for (;;) {
      const n = this.use(step);
      total += n;
      if (n < batch) return total;
      await yieldToEventLoop();
    }
  }

  /** Runs `fn` against the migrated schema's prepared statements. */
  private use<T>(fn: (s: Statements) => T): T {
    return this.guard(() => {
      if (this.stmts === null) throw new Error('SqliteStore: call migrate() before use');
      return fn(this.stmts);
    });
  }

  /** Runs `fn` against the open database, mapping SQLite failures to store errors. */
  private guard<T>(fn: () => T): T {
    if (this.closed) throw new StoreUnavailableError('the SQLite store is closed');
    try {
      return fn();
    } catch (err) {
      throw toStoreError(err, 'SQLite store unavailable');
    }
  }
}

interface ListRow {
  id: string;
  updatedAt: number;
  state: string;
}

function toStoreError(err: unknown, message: string): unknown {
  if (err instanceof StoreUnavailableError || err instanceof StoreConflictError) return err;
  const code = err instanceof Database.SqliteError ? err.code : undefined;
  if (code !== undefined && UNAVAILABLE_CODES.some((c) => code === c || code.startsWith(`${c}_`))) {
    return new StoreUnavailableError(`${message}: ${code}`, { cause: err });
  }
  return err;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
