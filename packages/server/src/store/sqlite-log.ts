/**
 * The embedded store's event log: what keeps a commit cheap.
 *
 * Events are read by job (a resume reads one job's range), so `events` is
 * clustered by (job, seq). Writing a commit's events there directly dirties a
 * page of that table, and of `jobs` and its indexes, per job: a tick of 100
 * events of 100 jobs rewrites some 400 pages into the WAL, and serializes 100
 * whole states. So a commit appends its events to `event_log` instead, a table
 * in the order of writing where one page takes the events of many jobs, with
 * only what changed in each job's state, and keeps each job's newest state in
 * memory. Once more than a limit (`LOG_LIMIT`) wait, the jobs that have waited
 * longest move: their events into `events`, many of a job in one go, their
 * newest state into `jobs`, and the log's rows before the oldest job still
 * waiting are deleted. Reads see the memory and the log as if every commit had
 * been written in place.
 *
 * Nothing acknowledged lives only in memory. Each log row is an event, and the
 * last row of a write carries the job's new state: whole for the first write
 * after the job last moved, then the fields that changed (the delta rule's
 * patch, `statePatchJson`). The ETA estimator, which changes with every event
 * and is as large as the rest together, is left out: the reducer is pure, so
 * folding the job's events again gives it back. Opening the file after a crash
 * moves the whole log (`recover`), folding those changes onto the rows in
 * `jobs`, each with its estimator folded from the events since the row; so does
 * a connection that finds the file changed by another one (`PRAGMA
 * data_version`), since its memory no longer tells the whole story.
 */
import type { JobEvent, JobState } from '@headway/protocol';
import type Database from 'better-sqlite3';
import { estimatorOf, withEstimator } from '../state/estimator.js';
import { reduce } from '../state/reducer.js';
import { statePatchJson } from '../state-patch.js';
import { eventColumns, jobColumns, jobOfRow, stateOfStored, storedStateJson } from './rows.js';
import { type EventRow, eventOfStoredRow, type JobRow, SQL } from './sqlite-sql.js';
import type { JobWrite } from './store.js';

/** Events waiting in the log beyond which a commit first moves some (default). */
export const LOG_LIMIT = 4096;
/**
 * A write of at least this many events is written in place: its events share
 * their job's pages already, and the log would only write them twice.
 */
const IN_PLACE_EVENTS = 16;
/**
 * A move takes the jobs that waited longest until it has this many events (or
 * more, to keep within the limit): what a job's events cost to move depends on
 * how many of them go at once, which the limit sets, not on how many jobs a move
 * takes, so small moves keep each commit short without costing more.
 */
const MOVE_EVENTS = 256;

const LOG_SQL = {
  append: 'INSERT INTO event_log (job, seq, kind, at, data, base, doc) VALUES (?, ?, ?, ?, ?, ?, ?)',
  move: `INSERT INTO events (job, seq, kind, at, data)
    SELECT job, seq, kind, at, data FROM event_log WHERE id IN (SELECT value FROM json_each(?))`,
  trim: 'DELETE FROM event_log WHERE id < ?',
  read: `SELECT seq, kind, at, data FROM event_log
    WHERE id IN (SELECT value FROM json_each(?)) AND seq > ? ORDER BY id LIMIT ?`,
  seqOf: 'SELECT seq FROM jobs WHERE id = ?',
  stored: 'SELECT state FROM jobs WHERE id = ?',
  docs: 'SELECT job, seq, base, doc FROM event_log WHERE doc IS NOT NULL ORDER BY id',
  // A job deleted since its rows were written has no row, and its events are not brought back.
  recoverEvents: `INSERT OR IGNORE INTO events (job, seq, kind, at, data)
    SELECT job, seq, kind, at, data FROM event_log l WHERE EXISTS (SELECT 1 FROM jobs WHERE id = l.job)
    ORDER BY job, seq`,
  replay: 'SELECT seq, kind, at, data FROM events WHERE job = ? AND seq > ? AND seq <= ? ORDER BY seq',
  clear: 'DELETE FROM event_log',
  dataVersion: 'PRAGMA data_version',
} as const;

/** The store's statements that write a job's row. */
export interface JobStatements {
  insertJob: Database.Statement<[JobRow]>;
  updateJob: Database.Statement<[JobRow]>;
}

/** What a commit, a move and a recovery run. */
export interface LogStatements extends JobStatements {
  insertEvent: Database.Statement<[string, number, string, number, string]>;
  append: Database.Statement<[string, number, string, number, string, number | null, string | null]>;
  move: Database.Statement<[string]>;
  trim: Database.Statement<[number]>;
  read: Database.Statement<[string, number, number], EventRow>;
  seqOf: Database.Statement<[string], number>;
  stored: Database.Statement<[string], string>;
  docs: Database.Statement<[], { job: string; seq: number; base: number | null; doc: string }>;
  recoverEvents: Database.Statement;
  replay: Database.Statement<[string, number, number], EventRow>;
  clear: Database.Statement;
  dataVersion: Database.Statement<[], number>;
}

function prepareLog(db: Database.Database, jobs: JobStatements): LogStatements {
  return {
    ...jobs,
    insertEvent: db.prepare(SQL.insertEvent),
    append: db.prepare(LOG_SQL.append),
    move: db.prepare(LOG_SQL.move),
    trim: db.prepare(LOG_SQL.trim),
    read: db.prepare(LOG_SQL.read),
    seqOf: db.prepare<[string], number>(LOG_SQL.seqOf).pluck(),
    stored: db.prepare<[string], string>(LOG_SQL.stored).pluck(),
    docs: db.prepare(LOG_SQL.docs),
    recoverEvents: db.prepare(LOG_SQL.recoverEvents),
    replay: db.prepare(LOG_SQL.replay),
    clear: db.prepare(LOG_SQL.clear),
    // Prepared once: `db.pragma` prepares its statement at every call.
    dataVersion: db.prepare<[], number>(LOG_SQL.dataVersion).pluck(),
  };
}

/** A job being recovered: its row (the document and its seq), and the document its log's changes make of it. */
interface Recovered {
  seq: number;
  row: string;
  doc: Record<string, unknown>;
}

/** A job with events in the log and not yet in `events`. */
interface Pending {
  /** Its log rows not yet moved, oldest first; their seqs run from `firstSeq` without gaps. */
  rowids: number[];
  firstSeq: number;
  /** Its newest state, and the seq that its row in `jobs` holds. */
  state: JobState;
  rowSeq: number;
}

/** Writes `state` as its job's row, which must be at `rowSeq`. */
function writeRow(s: LogStatements, state: JobState, rowSeq: number): void {
  if (s.updateJob.run({ ...jobColumns(state), prevSeq: rowSeq }).changes !== 1) {
    throw new Error(`event log: job ${state.id}'s row is not at seq ${rowSeq}`);
  }
}

/** What a transaction gives back when it finds the file changed by another connection. */
const STALE = Symbol('stale');

/** Thrown inside a transaction that finds the file changed by another connection, to roll it back. */
class Stale extends Error {}

export class EventLog {
  /** For `LogBatch`: the statements a write runs. */
  readonly statements: LogStatements;
  /** In the order they began to wait, so the first one holds the log's oldest row. */
  private readonly pending = new Map<string, Pending>();
  private waiting = 0;
  /** `PRAGMA data_version` when this connection last knew the whole log. */
  private version = -1;
  constructor(
    private readonly db: Database.Database,
    jobs: JobStatements,
    private readonly limit = LOG_LIMIT,
  ) {
    this.statements = prepareLog(db, jobs);
  }

  /** Events committed and not yet moved into `events`. */
  get pendingEvents(): number {
    return this.waiting;
  }

  /**
   * Moves the whole log if another connection changed the file since this one
   * last looked (and when the store opens: a crash may have left rows behind).
   */
  sync(): void {
    if (this.dataVersion() === this.version) return;
    this.db.transaction(() => this.recover()).immediate();
    this.pending.clear();
    this.waiting = 0;
    this.version = this.dataVersion();
  }

  /**
   * Runs `fn` in a write transaction that this connection's memory is right
   * for, then updates the memory. `fn` gets a batch to write through.
   */
  write<T>(fn: (batch: LogBatch) => T): T {
    for (;;) {
      if (this.waiting > this.limit) this.move(Math.max(MOVE_EVENTS, this.waiting - this.limit));
      const batch = new LogBatch(this);
      const result = this.inTransaction(() => fn(batch));
      if (result !== STALE) {
        this.apply(batch.heads);
        return result;
      }
      this.sync();
    }
  }

  /** Moves every waiting event, and brings every job's row up to date. */
  drain(): void {
    this.move(Number.POSITIVE_INFINITY);
  }

  /** Brings the rows in `jobs` of the waiting jobs up to date, for a query over them. */
  catchUpRows(): void {
    const behind = [...this.pending.values()].filter((p) => p.rowSeq !== p.state.seq);
    if (behind.length === 0) return;
    const done = this.inTransaction(() => {
      for (const p of behind) writeRow(this.statements, p.state, p.rowSeq);
    });
    if (done !== STALE) for (const p of behind) p.rowSeq = p.state.seq;
  }

  /** The job's newest state if it is newer than its row in `jobs`, or may be. */
  newest(id: string): JobState | undefined {
    return this.pending.get(id)?.state;
  }

  /** `job`'s events after `since` that wait in the log, up to `limit`. */
  waitingEvents(job: string, since: number, limit: number): JobEvent[] {
    const p = this.pending.get(job);
    if (p === undefined || p.firstSeq + p.rowids.length - 1 <= since || limit <= 0) return [];
    return this.statements.read
      .all(JSON.stringify(p.rowids), since, limit)
      .map((r) => eventOfStoredRow(job, r));
  }

  /** For `LogBatch`: the job as this connection knows it, before the batch. */
  known(id: string): Pending | undefined {
    return this.pending.get(id);
  }

  /**
   * The whole log, moved: events into `events` (those already there are
   * skipped), and each job's changes folded, oldest first, onto its row.
   */
  private recover(): void {
    const s = this.statements;
    const docs = new Map<string, Recovered | null>();
    for (const r of s.docs.all()) {
      let entry = docs.get(r.job);
      if (entry === undefined) {
        const row = s.stored.get(r.job);
        const doc = row === undefined ? null : (JSON.parse(row) as Record<string, unknown>);
        entry = doc === null || row === undefined ? null : { seq: doc.seq as number, row, doc };
        docs.set(r.job, entry);
      }
      // A job deleted since, or a change its row holds already.
      if (entry === null || r.seq <= (entry.doc.seq as number)) continue;
      if (r.base === null) entry.doc = JSON.parse(r.doc);
      else if (r.base === entry.doc.seq) Object.assign(entry.doc, JSON.parse(r.doc));
      else
        throw new Error(
          `event log: job ${r.job} changed at seq ${r.seq} from seq ${r.base}, its state is at ${entry.doc.seq}`,
        );
    }
    s.recoverEvents.run();
    for (const [job, entry] of docs) {
      if (entry === null || entry.doc.seq === entry.seq) continue;
      writeRow(s, this.recovered(job, entry), entry.seq);
    }
    s.clear.run();
  }

  /**
   * A job's state as the log left it: the fields of its folded changes, and the
   * estimator: its row's, folded on by the job's events since the row.
   * Only the estimator is taken from the fold: the ETA it shows also depends on
   * the kind's history, which has learned meanwhile.
   */
  private recovered(job: string, entry: Recovered): JobState {
    let folded = jobOfRow(entry.row);
    for (const r of this.statements.replay.all(job, entry.seq, entry.doc.seq as number)) {
      folded = reduce(folded, eventOfStoredRow(job, r), null);
    }
    return withEstimator(stateOfStored(entry.doc as unknown as JobState), estimatorOf(folded));
  }

  /** Moves the events of the jobs that waited longest, at least `count` of them. */
  private move(count: number): void {
    const chosen: [string, Pending][] = [];
    let moved = 0;
    let next: Pending | undefined;
    for (const entry of this.pending) {
      if (moved >= count) {
        next = entry[1];
        break;
      }
      chosen.push(entry);
      moved += entry[1].rowids.length;
    }
    if (chosen.length === 0) return;
    const done = this.inTransaction(() => {
      this.statements.move.run(JSON.stringify(chosen.flatMap(([, p]) => p.rowids)));
      for (const [, p] of chosen) if (p.rowSeq !== p.state.seq) writeRow(this.statements, p.state, p.rowSeq);
      // Every row before the oldest one still waiting has moved.
      this.statements.trim.run(next === undefined ? Number.MAX_SAFE_INTEGER : next.rowids[0]!);
    });
    if (done === STALE) return;
    for (const [id] of chosen) this.pending.delete(id);
    this.waiting -= moved;
  }

  /**
   * `fn` in a write transaction that this connection's memory is right for;
   * `STALE`, with nothing done, if the file changed meanwhile (the next `sync`
   * moves the whole log).
   */
  private inTransaction<T>(fn: () => T): T | typeof STALE {
    try {
      return this.db
        .transaction(() => {
          if (this.dataVersion() !== this.version) throw new Stale();
          return fn();
        })
        .immediate();
    } catch (err) {
      if (err instanceof Stale) return STALE;
      throw err;
    }
  }

  private apply(heads: ReadonlyMap<string, Pending | null>): void {
    for (const [id, head] of heads) {
      this.waiting += (head?.rowids.length ?? 0) - (this.pending.get(id)?.rowids.length ?? 0);
      // A job already waiting keeps its place in the order.
      if (head === null) this.pending.delete(id);
      else this.pending.set(id, head);
    }
  }

  private dataVersion(): number {
    return this.statements.dataVersion.get()!;
  }
}

/** Called with each event's columns as it is written. */
type EachEvent = (event: JobEvent, at: number, data: string) => void;

/** The writes of one commit, inside its transaction. */
export class LogBatch {
  /** The jobs this batch wrote, as they will be once it commits: null when none of its events wait. */
  readonly heads = new Map<string, Pending | null>();

  constructor(private readonly log: EventLog) {}

  /**
   * Writes `w` if the job is at `w.prevSeq`; false if not. `each` is called with
   * each event's columns as it is written.
   */
  write(w: JobWrite, each: EachEvent): boolean {
    const s = this.log.statements;
    const { state } = w;
    const before = this.heads.has(state.id)
      ? (this.heads.get(state.id) ?? undefined)
      : this.log.known(state.id);
    let rowSeq: number;
    if (w.prevSeq === 0) {
      if (s.insertJob.run({ ...jobColumns(state), prevSeq: 0 }).changes !== 1) return false;
      rowSeq = state.seq;
    } else {
      const seq = before?.state.seq ?? s.seqOf.get(state.id);
      if (seq !== w.prevSeq) return false;
      rowSeq = before?.rowSeq ?? seq;
    }
    if (w.events.length === 0) {
      // Nothing to append: the row itself is written, now.
      if (w.prevSeq !== 0) writeRow(s, state, rowSeq);
      if (before !== undefined) {
        this.heads.set(state.id, { ...before, rowids: [...before.rowids], state, rowSeq: state.seq });
      }
      return true;
    }
    if (w.events.length >= IN_PLACE_EVENTS) return this.inPlace(w, before, rowSeq, each);
    // The state to recover from the log: none when the row was just written, what
    // changed since the state this connection holds, or whole.
    let base: number | null = null;
    let doc: string | null = null;
    if (rowSeq !== state.seq) {
      if (before !== undefined) base = before.state.seq;
      doc = before === undefined ? storedStateJson(state) : statePatchJson(before.state, state);
    }
    // A head this batch made already is its own to extend; the log's is copied once.
    const head: Pending =
      before === undefined
        ? { rowids: [], firstSeq: w.events[0]!.seq, state, rowSeq }
        : this.heads.get(state.id) === before
          ? Object.assign(before, { state, rowSeq })
          : { ...before, rowids: [...before.rowids], state, rowSeq };
    const last = w.events.length - 1;
    w.events.forEach((e, i) => {
      const { at, data } = eventColumns(e);
      const result = s.append.run(
        e.job,
        e.seq,
        e.kind,
        at,
        data,
        i === last ? base : null,
        i === last ? doc : null,
      );
      head.rowids.push(Number(result.lastInsertRowid));
      each(e, at, data);
    });
    this.heads.set(state.id, head);
    return true;
  }

  /** Writes `w`'s events and row in their places, after the job's events that wait in the log. */
  private inPlace(w: JobWrite, before: Pending | undefined, rowSeq: number, each: EachEvent): true {
    const s = this.log.statements;
    if (before !== undefined) s.move.run(JSON.stringify(before.rowids));
    for (const e of w.events) {
      const { at, data } = eventColumns(e);
      s.insertEvent.run(e.job, e.seq, e.kind, at, data);
      each(e, at, data);
    }
    if (rowSeq !== w.state.seq) writeRow(s, w.state, rowSeq);
    this.heads.set(w.state.id, null);
    return true;
  }
}
