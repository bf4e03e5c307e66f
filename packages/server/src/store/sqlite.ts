import type { JobEvent, JobState } from '@headway/protocol';
import Database from 'better-sqlite3';
import { asKindSummary, type KindSummary } from '../state/history.js';
import { LATEST_VERSION, MIGRATIONS_TABLE, migrations } from './migrations.js';
import { inIdOrder, jobOfRow, MAX_DESCENDANT_DEPTH, storedStateJson } from './rows.js';
import { BackgroundCheckpoints } from './sqlite-checkpoints.js';
import { createPrivately, scrub, toStoreError } from './sqlite-files.js';
import { SqliteJobList } from './sqlite-list.js';
import { EventLog } from './sqlite-log.js';
import { type EventRow, eventOfStoredRow, type JobRow, SQL } from './sqlite-sql.js';
import {
  ENQUEUE_DELIVERIES,
  type EnqueueParams,
  SqliteWebhookStore,
  WEBHOOK_KINDS,
} from './sqlite-webhooks.js';
import {
  type JobWrite,
  type ListJobsPage,
  type ListJobsQuery,
  type Store,
  StoreConflictError,
  type StoredKindSummary,
  StoreUnavailableError,
  type SweepOptions,
  type SweepResult,
} from './store.js';
import { sweepInBatches } from './sweep.js';
import type { WebhookStore } from './webhook-store.js';

export interface SqliteStoreOptions {
  /** Database file, or `:memory:` for a store that lives as long as the process. */
  path: string;
  /**
   * `normal` (default): a committed write survives a crash of the process, not an
   * OS crash or power loss (WAL with `synchronous = NORMAL`). `full`: it survives
   * those too (`synchronous = FULL`: the WAL is synced at every commit).
   */
  durability?: 'normal' | 'full';
  /**
   * Events a commit leaves in the write-ordered log before it moves some into
   * their jobs' places (default 4,096; see `sqlite-log.ts`). 0 moves them at once.
   */
  logLimit?: number;
  /**
   * How often a worker thread checkpoints the WAL while commits arrive, ms
   * (default 250; see `sqlite-checkpoints.ts`); 0 leaves checkpoints to the
   * store's own connection, inside its commits.
   */
  checkpointEveryMs?: number;
}

/** How long a statement waits for another process's write lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

function prepareAll(db: Database.Database) {
  return {
    getJob: db.prepare<[string], string>(SQL.getJob).pluck(),
    getJobs: db.prepare<[string], { id: string; state: string }>(SQL.getJobs),
    getEvents: db.prepare<[string, number, number], EventRow>(SQL.getEvents),
    findKeys: db.prepare<[string, string], { key: string; seq: number }>(SQL.findKeys),
    insertJob: db.prepare<[JobRow]>(SQL.insertJob),
    updateJob: db.prepare<[JobRow]>(SQL.updateJob),
    insertKey: db.prepare<[string, string, number]>(SQL.insertKey),
    enqueueDeliveries: db.prepare<EnqueueParams>(ENQUEUE_DELIVERIES),
    webhookKinds: db.prepare<[], string>(WEBHOOK_KINDS).pluck(),
    descendants: db.prepare<{ id: string; maxDepth: number }, string>(SQL.descendants).pluck(),
    deleteEventsOf: db.prepare<[string]>(SQL.deleteEventsOf),
    deleteKeysOf: db.prepare<[string]>(SQL.deleteKeysOf),
    deleteJob: db.prepare<[string]>(SQL.deleteJob),
    insertTombstone: db.prepare<[string, number]>(SQL.insertTombstone),
    isDeleted: db.prepare<[string], number>(SQL.isDeleted).pluck(),
    sweepEvents: db.prepare<[number, number]>(SQL.sweepEvents),
    finishedJobs: db.prepare<[number, number], string>(SQL.finishedJobs).pluck(),
    sweepEventsOfJobs: db.prepare<[string, number]>(SQL.sweepEventsOfJobs),
    sweepKeysOfJobs: db.prepare<[string, number]>(SQL.sweepKeysOfJobs),
    deleteFinishedJob: db.prepare<[string, number]>(SQL.deleteFinishedJob),
    sweepTombstones: db.prepare<[number, number]>(SQL.sweepTombstones),
    ping: db.prepare<[], number>(SQL.ping).pluck(),
    getKindSummary: db.prepare<[string], { version: number; summary: string }>(SQL.getKindSummary),
    insertKindSummary: db.prepare<[string, number, string]>(SQL.insertKindSummary),
    updateKindSummary: db.prepare<[number, string, string, number]>(SQL.updateKindSummary),
  };
}

type Statements = ReturnType<typeof prepareAll>;

/**
 * The embedded store: one SQLite file (better-sqlite3) in WAL mode with
 * `synchronous = NORMAL` (a resolved `commit` survives a crash of the process, not
 * of the machine) or `FULL` (`durability: 'full'`: it survives both). Several
 * processes may open the same file; writes take the write lock up front
 * (`BEGIN IMMEDIATE`) and wait up to five seconds for it.
 *
 * Deleted data does not linger: `secure_delete` zeroes freed content, and every
 * delete and sweep ends with a truncating WAL checkpoint (the WAL holds old page
 * images) and an incremental vacuum. The files are created readable by their
 * owner only.
 *
 * Timestamps are stored as milliseconds and handed back as ISO-8601 UTC strings
 * (`Date#toISOString`); a job's state is stored and returned verbatim.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly path: string;
  private readonly db: Database.Database;
  private stmts: Statements | null = null;
  /** Where commits append; see `sqlite-log.ts`. */
  private log: EventLog | null = null;
  private readonly logLimit: number | undefined;
  /** Null for a database in memory, or when checkpoints stay on this connection. */
  private readonly checkpoints: BackgroundCheckpoints | null = null;
  private readonly list: SqliteJobList;
  private closed = false;
  /** Webhooks and their delivery outbox, in the same file. */
  readonly webhooks: WebhookStore;

  constructor(options: SqliteStoreOptions) {
    this.path = options.path;
    this.logLimit = options.logLimit;
    let db: Database.Database | undefined;
    try {
      createPrivately(options.path);
      db = new Database(options.path);
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      // Takes effect only on a new, empty file (before the first table); an existing
      // file keeps its mode, and `secure_delete` still zeroes what it frees.
      db.pragma('auto_vacuum = INCREMENTAL');
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`);
      db.pragma('secure_delete = ON');
      if (options.path !== ':memory:' && options.checkpointEveryMs !== 0) {
        this.checkpoints = new BackgroundCheckpoints(db, options.path, options.checkpointEveryMs);
      }
      this.db = db;
      this.list = new SqliteJobList(db);
      this.webhooks = new SqliteWebhookStore(db, (fn) => this.guard(fn));
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
      this.log ??= new EventLog(db, this.stmts, this.logLimit);
      // Moves what a process that ended without closing left in the log.
      this.log.sync();
    });
  }

  /** Committed events still in the write-ordered log (see `sqlite-log.ts`); bounded by `logLimit`. */
  get pendingEvents(): number {
    return this.log?.pendingEvents ?? 0;
  }

  /** WAL checkpoints a worker thread completed (see `sqlite-checkpoints.ts`). */
  get backgroundCheckpoints(): number {
    return this.checkpoints?.completed ?? 0;
  }

  async getJob(id: string): Promise<JobState | null> {
    return this.use((s, log) => {
      const newest = log.newest(id);
      if (newest !== undefined) return newest;
      const state = s.getJob.get(id);
      return state === undefined ? null : jobOfRow(state);
    });
  }

  /** Jobs in the order of `ids`, skipping missing ones and repeats. */
  async getJobs(ids: readonly string[]): Promise<JobState[]> {
    if (ids.length === 0) return [];
    return this.use((s, log) => {
      const rows = s.getJobs.all(JSON.stringify(ids));
      return inIdOrder(ids, rows, (stored, id) => log.newest(id) ?? jobOfRow(stored));
    });
  }

  async listJobs(query: ListJobsQuery): Promise<ListJobsPage> {
    return this.use((_, log) => {
      log.catchUpRows();
      return this.list.page(query);
    });
  }

  async descendants(id: string): Promise<string[]> {
    return this.use((s) => s.descendants.all({ id, maxDepth: MAX_DESCENDANT_DEPTH }));
  }

  async getEvents(job: string, since: number, limit: number): Promise<JobEvent[]> {
    // SQLite reads a negative LIMIT as "no limit".
    const n = Math.floor(limit);
    if (!(n > 0)) return [];
    return this.use((s, log) => {
      const events = s.getEvents.all(job, since, n).map((r) => eventOfStoredRow(job, r));
      const after = events.at(-1)?.seq ?? since;
      return events.concat(log.waitingEvents(job, after, n - events.length));
    });
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
    this.checkpoints?.noteCommit();
    this.use((s, log) =>
      log.write((batch) => {
        const conflicts: string[] = [];
        const wanted = new Set(s.webhookKinds.all());
        for (const w of writes) {
          const { id, owner } = w.state;
          let state: string | undefined;
          // Once the batch is known to fail, only the remaining preconditions matter.
          const written = batch.write(w, (e, at, data) => {
            // The outbox rows commit with their event, or neither does.
            if (conflicts.length > 0 || !wanted.has(e.kind)) return;
            state ??= storedStateJson(w.state);
            s.enqueueDeliveries.run({ job: e.job, seq: e.seq, kind: e.kind, at, data, state, owner });
          });
          if (!written) {
            conflicts.push(id);
            continue;
          }
          if (conflicts.length === 0) for (const k of w.keys) s.insertKey.run(id, k.key, k.seq);
        }
        // Throwing inside the transaction rolls back every write of the batch.
        if (conflicts.length > 0) throw new StoreConflictError([...new Set(conflicts)]);
      }),
    );
  }

  async deleteJobs(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    this.use((s, log) => {
      // Nothing of a deleted job may stay behind in the log.
      log.drain();
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
    await this.scrub();
  }

  async isDeleted(id: string): Promise<boolean> {
    return this.use((s) => s.isDeleted.get(id) !== undefined);
  }

  /**
   * Each statement deletes at most `batchSize` rows and runs in its own implicit
   * transaction, except the removal of a batch of jobs, which is one.
   */
  async sweep(options: SweepOptions): Promise<SweepResult> {
    const { eventsBefore, jobsBefore } = options;
    // Each step reads and deletes the tables only, so the log moves there first,
    // in the same turn: a commit made while the sweep yielded may have added to it.
    const moved = <T>(fn: (s: Statements) => T): T =>
      this.use((s, log) => {
        log.drain();
        return fn(s);
      });
    const result = await sweepInBatches(
      {
        deleteOldEvents: async (batch) => moved((s) => s.sweepEvents.run(eventsBefore, batch).changes),
        finishedJobs: async (batch) => moved((s) => s.finishedJobs.all(jobsBefore, batch)),
        deleteEventsOfJobs: async (ids, batch) =>
          moved((s) => s.sweepEventsOfJobs.run(JSON.stringify(ids), batch).changes),
        deleteKeysOfJobs: async (ids, batch) =>
          this.use((s) => s.sweepKeysOfJobs.run(JSON.stringify(ids), batch).changes),
        deleteFinishedJobs: async (ids) =>
          moved((s) =>
            this.db
              .transaction(() => {
                const removed: SweepResult = { events: 0, jobs: 0 };
                for (const id of ids) {
                  // Re-checked here: the job may have changed while the sweep yielded.
                  if (s.deleteFinishedJob.run(id, jobsBefore).changes === 0) continue;
                  removed.jobs++;
                  removed.events += s.deleteEventsOf.run(id).changes;
                  s.deleteKeysOf.run(id);
                }
                return removed;
              })
              .immediate(),
          ),
        deleteOldTombstones: async (batch) =>
          this.use((s) => s.sweepTombstones.run(jobsBefore, batch).changes),
      },
      options.batchSize,
    );
    if (result.events > 0 || result.jobs > 0) await this.scrub();
    return result;
  }

  /**
   * After a delete: nothing of the deleted rows stays in the files (`scrub`),
   * with the checkpoint thread kept out meanwhile.
   */
  private async scrub(): Promise<void> {
    if (this.path === ':memory:') return;
    const run = () => scrub(this.db);
    try {
      await (this.checkpoints ? this.checkpoints.exclusive(run) : run());
    } catch (err) {
      throw toStoreError(err, 'SQLite store unavailable');
    }
  }

  async getKindSummary(kind: string): Promise<StoredKindSummary | null> {
    const row = this.use((s) => s.getKindSummary.get(kind));
    if (row === undefined) return null;
    const summary = asKindSummary(JSON.parse(row.summary));
    return summary === null ? null : { summary, version: row.version };
  }

  async saveKindSummary(kind: string, summary: KindSummary, version: number): Promise<boolean> {
    const json = JSON.stringify(summary);
    return this.use(
      (s) =>
        (version === 0
          ? s.insertKindSummary.run(kind, Date.now(), json)
          : s.updateKindSummary.run(Date.now(), json, kind, version)
        ).changes === 1,
    );
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
    try {
      // The next start would move them too, but a closed file is complete.
      this.use((_, log) => log.drain());
    } catch {
      // Nothing is lost: the log is moved when the file is next opened.
    }
    this.closed = true;
    // Before the connection closes, so that closing checkpoints the WAL and removes it.
    await this.checkpoints?.close();
    try {
      // Keeps the query planner's statistics fresh for the next start, at little cost.
      this.db.pragma('optimize');
    } catch {
      // Closing matters more than the statistics.
    }
    this.db.close();
  }

  /** Runs `fn` against the migrated schema's prepared statements. */
  private use<T>(fn: (s: Statements, log: EventLog) => T): T {
    return this.guard(() => {
      if (this.stmts === null || this.log === null) throw new Error('SqliteStore: call migrate() before use');
      // What another connection committed meanwhile is read as well.
      this.log.sync();
      return fn(this.stmts, this.log);
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
