import { ErrorCode, type JobEvent, type JobState } from '@headway/protocol';
import { Delivery } from '../delivery.js';
import { commitError, HeadwayError, WriteConflict } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { type JobWrite, type Store, StoreConflictError, StoreUnavailableError } from '../store/store.js';
import type { Entry, JobCache } from './job-cache.js';

/** One job's changes in a batch. */
export interface PendingWrite {
  entry: Entry;
  /** The job's seq in the store before this write (0 for a new job). */
  prevSeq: number;
  events: JobEvent[];
  /** State after each event, for the deliveries. */
  states: JobState[];
  /** State before the first event (null for a new job; undefined: not known), for the first patch. */
  before: JobState | null | undefined;
  keys: { key: string; seq: number }[];
  created: boolean;
  /** Why the write was not stored, once its batch is over. */
  error?: unknown;
}

/** The writes of one tick, committed together. */
export interface Batch {
  writes: Map<string, PendingWrite>;
  done: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Commits of one batch: each conflict removes the conflicting writes and commits the rest again. */
const MAX_COMMIT_ROUNDS = 4;

/** What group commit needs of the hub. */
export interface GroupCommitContext {
  store: Pick<Store, 'commit'>;
  metrics:
    | Pick<Metrics, 'storeErrors' | 'storeConflicts' | 'storeCommitSeconds' | 'storeBatchEvents'>
    | undefined;
  cache: Pick<JobCache, 'drop' | 'evict'>;
  /** Called with each batch right before its commit: folds pending roll-ups into it. */
  beforeCommit(batch: Batch): void;
  /** Hands a committed delivery to the bus. */
  publish(delivery: Delivery): void;
  /** Called once a commit's deliveries are all published. */
  published?(): void;
}

/**
 * Group commit: the writes of one tick go to the store in one commit. A write
 * request is answered only after its commit, and deliveries are published only
 * after it too, so a client never sees a seq that a restart could take back.
 * Batches commit one after the other, in the order they were closed.
 */
export class GroupCommit {
  private open: Batch | null = null;
  private committing: Promise<void> = Promise.resolve();
  private flushScheduled = false;

  constructor(private readonly ctx: GroupCommitContext) {}

  /**
   * The job's write in `batch` (default: the open batch, opened and scheduled for
   * this tick's end when there is none), added if it is not there yet.
   */
  addWrite(jobId: string, entry: Entry, prevSeq: number, created: boolean, batch?: Batch): PendingWrite {
    const target = batch ?? this.openBatch();
    let write = target.writes.get(jobId);
    if (!write) {
      // Called before the write's events are folded into the entry: its head is the state before them.
      const before = created ? null : entry.head.seq === prevSeq ? entry.head : undefined;
      write = { entry, prevSeq, events: [], states: [], before, keys: [], created };
      target.writes.set(jobId, write);
      entry.inFlight++;
    }
    return write;
  }

  /**
   * Resolves once `write` (just added to the open batch) is stored; rejects with
   * why it was not (a `WriteConflict` when another process wrote the job first).
   */
  whenCommitted(write: PendingWrite): Promise<void> {
    return this.whenBatchDone().then(() => {
      const err = this.failure(write);
      if (err !== undefined) throw err;
    });
  }

  /**
   * Settles once the open batch (which a write was just added to) is over; it
   * rejects only when the whole commit failed. Each write's own outcome is then
   * `failure(write)`.
   */
  whenBatchDone(): Promise<void> {
    return this.open!.done;
  }

  /** Once its batch committed: why `write` was not stored, or undefined if it was. */
  failure(write: PendingWrite): unknown {
    if (write.error !== undefined) return write.error;
    if (write.entry.committed.seq < write.states[write.states.length - 1]!.seq) {
      return new HeadwayError(ErrorCode.STORE_UNAVAILABLE, 'write was not stored', { retryAfter: 1 });
    }
    return undefined;
  }

  /** Resolves when every write accepted so far is committed (or failed). */
  async flush(): Promise<void> {
    if (this.open) this.closeBatch();
    await this.committing.catch(() => {});
  }

  private openBatch(): Batch {
    if (!this.open) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const done = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // A batch nobody awaits (a roll-up only) must not raise an unhandled rejection.
      done.catch(() => {});
      this.open = { writes: new Map(), done, resolve, reject };
    }
    this.scheduleFlush();
    return this.open;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.closeBatch();
    });
  }

  /** Close the open batch and chain its commit after the one under way. */
  private closeBatch(): void {
    const batch = this.open;
    if (!batch) return;
    this.open = null;
    this.committing = this.committing
      .catch(() => {})
      .then(() => this.commit(batch))
      .then(batch.resolve, batch.reject);
  }

  /**
   * Commit a batch. When another process wrote some of its jobs first, only the
   * writes of those jobs (and of the jobs their roll-ups tie them to) fail, and
   * the rest is committed again (a conflict round); failed writes carry their
   * error to their requests, which apply again on the reloaded jobs.
   */
  private async commit(batch: Batch): Promise<void> {
    this.ctx.beforeCommit(batch);
    // A write built on an entry whose earlier commit failed would fork the job's log.
    const staleIds: string[] = [];
    for (const [id, w] of batch.writes) if (w.entry.stale) staleIds.push(id);
    let failed = linked(batch, staleIds);
    const errors = new Map<string, unknown>();
    let writes: JobWrite[] = [];
    const started = performance.now();
    for (let round = 1; ; round++) {
      writes = storeWrites(batch, failed);
      try {
        if (writes.length > 0) await this.ctx.store.commit(writes);
        break;
      } catch (err) {
        this.ctx.metrics?.storeErrors.inc();
        if (err instanceof StoreConflictError && round < MAX_COMMIT_ROUNDS) {
          this.ctx.metrics?.storeConflicts.inc(err.jobs.length);
          failed = linked(batch, [...failed, ...err.jobs]);
          continue;
        }
        if (err instanceof StoreUnavailableError || err instanceof StoreConflictError) {
          // The store itself is down (or keeps losing races): every write of the batch fails alike.
          for (const id of batch.writes.keys()) if (!failed.has(id)) errors.set(id, commitError(err));
        } else {
          // A statement failed on some write's data: commit the others without it.
          for (const [id, e] of await this.isolate(batch, groups(batch, failed))) errors.set(id, e);
        }
        break;
      }
    }
    for (const id of errors.keys()) failed.add(id);
    if (errors.size === 0) {
      this.ctx.metrics?.storeCommitSeconds.observe((performance.now() - started) / 1000);
      this.ctx.metrics?.storeBatchEvents.observe(writes.reduce((n, w) => n + w.events.length, 0));
    }
    this.settle(batch, failed, errors);
    for (const [id, w] of batch.writes) {
      if (failed.has(id)) continue;
      for (let i = 0; i < w.events.length; i++) {
        const prev = i > 0 ? w.states[i - 1] : w.before;
        this.ctx.publish(new Delivery(w.events[i]!, w.states[i]!, prev));
      }
    }
    this.ctx.published?.();
    this.ctx.cache.evict();
  }

  /**
   * Commit `parts` (groups of writes that must be stored together) apart, halving
   * them until each failing group stands alone, so that one write's failure fails
   * no other write. Resolves with the error of each write that failed.
   */
  private async isolate(batch: Batch, parts: readonly string[][]): Promise<Map<string, unknown>> {
    const errors = new Map<string, unknown>();
    if (parts.length === 0) return errors;
    const ids = new Set(parts.flat());
    const rest = new Set<string>();
    for (const id of batch.writes.keys()) if (!ids.has(id)) rest.add(id);
    try {
      const writes = storeWrites(batch, rest);
      if (writes.length > 0) await this.ctx.store.commit(writes);
      return errors;
    } catch (err) {
      this.ctx.metrics?.storeErrors.inc();
      if (parts.length === 1 || err instanceof StoreUnavailableError) {
        for (const id of ids) errors.set(id, commitError(err));
        return errors;
      }
    }
    const half = Math.ceil(parts.length / 2);
    for (const e of await this.isolate(batch, parts.slice(0, half))) errors.set(e[0], e[1]);
    for (const e of await this.isolate(batch, parts.slice(half))) errors.set(e[0], e[1]);
    return errors;
  }

  /** Move each committed entry on; mark each failed one stale and drop it, so the next read reloads the truth. */
  private settle(batch: Batch, failed: ReadonlySet<string>, errors: ReadonlyMap<string, unknown>): void {
    for (const [id, w] of batch.writes) {
      w.entry.inFlight--;
      if (failed.has(id)) {
        w.error = errors.get(id) ?? new WriteConflict();
        w.entry.stale = true;
        this.ctx.cache.drop(id, w.entry);
      } else if (w.states.length > 0) {
        w.entry.committed = w.states[w.states.length - 1]!;
      }
    }
  }
}

/** The store's view of the batch's writes, without the failed ones and those with no events. */
function storeWrites(batch: Batch, failed: ReadonlySet<string>): JobWrite[] {
  const writes: JobWrite[] = [];
  for (const [id, w] of batch.writes) {
    if (w.events.length === 0 || failed.has(id)) continue;
    writes.push({
      state: w.states[w.states.length - 1]!,
      prevSeq: w.prevSeq,
      events: w.events,
      keys: w.keys,
    });
  }
  return writes;
}

/** The writes of the batch not in `failed`, in groups that a roll-up ties together. */
function groups(batch: Batch, failed: ReadonlySet<string>): string[][] {
  const seen = new Set<string>(failed);
  const out: string[][] = [];
  for (const id of batch.writes.keys()) {
    if (seen.has(id)) continue;
    const group = [...linked(batch, [id])];
    for (const member of group) seen.add(member);
    out.push(group);
  }
  return out;
}

/**
 * These jobs and every job of the batch tied to them by a roll-up: a child's
 * change is folded into its parent's write, so they are stored together or not at all.
 */
function linked(batch: Batch, ids: readonly string[]): Set<string> {
  const out = new Set<string>();
  if (ids.length === 0) return out;
  const children = new Map<string, string[]>();
  for (const [id, w] of batch.writes) {
    const parent = w.entry.head.parent;
    if (parent === null || !batch.writes.has(parent)) continue;
    let list = children.get(parent);
    if (!list) children.set(parent, (list = []));
    list.push(id);
  }
  const stack = [...ids];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (out.has(id)) continue;
    out.add(id);
    const parent = batch.writes.get(id)?.entry.head.parent;
    if (parent && batch.writes.has(parent)) stack.push(parent);
    for (const child of children.get(id) ?? []) stack.push(child);
  }
  return out;
}
