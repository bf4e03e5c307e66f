import { type ChildrenSummary, ErrorCode, type JobState } from '@headway/protocol';
import { BoundedMap } from '../bounded-map.js';
import { HeadwayError, notFound, WriteConflict } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { estimatorOf } from '../state/estimator.js';
import type { Store } from '../store/store.js';

/** Idempotency keys remembered per job; older ones are looked up in the store. */
const KEYS_PER_JOB = 1024;

/** One job as the hub holds it in memory. */
export interface Entry {
  /** Latest state, possibly ahead of the store while a batch is being committed. */
  head: JobState;
  /** Latest state known to be durable: what readers get. */
  committed: JobState;
  /** Idempotency keys applied through this process (the newest), with their seqs. */
  keys: BoundedMap<string, number>;
  /** Writes of this job in the open batch or in the commit under way. */
  inFlight: number;
  /** Pending roll-up of this job's children, applied at the next flush. */
  rollup: ChildrenSummary | null;
  /** A commit of this entry failed: its head is ahead of the store and must not be built on. */
  stale: boolean;
}

/** A fresh cache entry for `state` (read from the store, or just created): no keys, no writes in flight. */
export function cacheEntry(state: JobState): Entry {
  return {
    head: state,
    committed: state,
    keys: new BoundedMap(KEYS_PER_JOB),
    inFlight: 0,
    rollup: null,
    stale: false,
  };
}

/** What the job cache needs of the hub. */
export interface JobCacheContext {
  store: Pick<Store, 'getJob' | 'isDeleted' | 'findKeys'>;
  metrics: Pick<Metrics, 'storeReadSeconds'> | undefined;
  /** Job states kept in memory. */
  cacheSize: number;
  /** True when other processes write too: a cached job may then be behind the store. */
  shared: boolean;
  /** Whether the bus keeps this process up to date on the job (a local subscriber follows it). */
  isFollowed(id: string): boolean;
  /** Whether a long-poll request waits on the job. */
  isWaitedOn(id: string): boolean;
}

/**
 * The jobs this process writes and reads, least recently used first. An entry is
 * evicted only when nothing depends on it: no write in flight, no pending
 * roll-up, no waiter. That is why eviction runs after each commit rather than on
 * every insert, as a `BoundedMap` would.
 */
export class JobCache {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry | null>>();

  constructor(private readonly ctx: JobCacheContext) {}

  get(id: string): Entry | undefined {
    return this.entries.get(id);
  }

  /** The job's entry if it is cached, made the most recently used. */
  touch(id: string): Entry | undefined {
    const cached = this.entries.get(id);
    if (cached) {
      this.entries.delete(id);
      this.entries.set(id, cached);
    }
    return cached;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  add(id: string, entry: Entry): void {
    this.entries.set(id, entry);
  }

  delete(id: string): void {
    this.entries.delete(id);
  }

  /** Drop `entry` if it is still the job's, e.g. after its commit failed. */
  drop(id: string, entry: Entry): void {
    if (this.entries.get(id) === entry) this.entries.delete(id);
  }

  /** Drop the job's entry unless a write of it is in flight. */
  forget(id: string, entry = this.entries.get(id)): void {
    if (entry && this.entries.get(id) === entry && entry.inFlight === 0) this.entries.delete(id);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The job's entry, loading it (and its ancestors, for roll-up) from the store. */
  async load(id: string): Promise<Entry | null> {
    // A cached entry is made the most recently used.
    const cached = this.touch(id);
    if (cached) return cached;
    let pending = this.loading.get(id);
    if (!pending) {
      pending = this.read(id).finally(() => this.loading.delete(id));
      this.loading.set(id, pending);
    }
    return pending;
  }

  private async read(id: string): Promise<Entry | null> {
    const state = await this.ctx.store.getJob(id);
    if (!state) return null;
    if (state.parent) await this.load(state.parent);
    const raced = this.entries.get(id);
    if (raced) return raced;
    const entry = cacheEntry(state);
    this.entries.set(id, entry);
    return entry;
  }

  /** The job's entry for a write: HW_ERR_JOB_DELETED or HW_ERR_NOT_FOUND when there is none. */
  async require(id: string): Promise<Entry> {
    const entry = await this.load(id);
    if (entry) return entry;
    if (await this.ctx.store.isDeleted(id))
      throw new HeadwayError(ErrorCode.JOB_DELETED, `job "${id}" was deleted`);
    throw notFound(id);
  }

  /**
   * The entry to build on, right before a synchronous apply. An entry evicted
   * during the caller's awaits is put back (it is evicted only when it matches the
   * store); one whose commit failed is refused, so the caller's retry reloads it.
   */
  current(id: string, loaded: Entry): Entry {
    const cached = this.entries.get(id);
    if (cached && !cached.stale) return cached;
    if (loaded.stale) throw new WriteConflict();
    this.entries.set(id, loaded);
    return loaded;
  }

  /**
   * The job's committed state for a read. With other processes writing, a cached
   * job that no local subscriber follows on the bus may be behind: it is read again.
   */
  async readFresh(id: string): Promise<JobState | null> {
    const cached = this.entries.get(id);
    const entry = await this.load(id);
    if (!entry || !cached || !this.ctx.shared || this.ctx.isFollowed(id)) return entry?.committed ?? null;
    const started = performance.now();
    const state = await this.ctx.store.getJob(id);
    this.ctx.metrics?.storeReadSeconds.observe({ op: 'job' }, (performance.now() - started) / 1000);
    if (!state) {
      this.forget(id, entry);
      return null;
    }
    this.refresh(state);
    // Dropped during the read (a delivery from the bus came without an estimator),
    // the old entry is behind what was read: a subscriber resuming from it would
    // miss the events between. The state read is not cached either, as the bus may
    // have brought a later one meanwhile; the next read goes to the store.
    return this.entries.get(id)?.committed ?? state;
  }

  /** Another process moved a cached job on: build the next local write on its state. */
  refresh(state: JobState): void {
    const entry = this.entries.get(state.id);
    if (!entry || entry.stale || entry.inFlight > 0 || state.seq <= entry.committed.seq) return;
    if (estimatorOf(state) === null && estimatorOf(entry.committed) !== null) {
      // A state from the bus carries no estimator (it is never sent): building on it
      // would restart the job's running times, so the next use reads the store.
      this.forget(state.id, entry);
      return;
    }
    entry.head = state;
    entry.committed = state;
  }

  /**
   * The idempotency keys among `keys` that the job already applied: remembered
   * in memory, or (for older ones and other processes' writes) found in the store.
   */
  async appliedKeys(id: string, entry: Entry, keys: readonly string[]): Promise<Set<string>> {
    const applied = new Set<string>();
    const unknown: string[] = [];
    for (const key of keys) {
      if (entry.keys.has(key)) applied.add(key);
      else unknown.push(key);
    }
    if (unknown.length === 0) return applied;
    for (const key of (await this.ctx.store.findKeys(id, unknown)).keys()) applied.add(key);
    return applied;
  }

  /** Drop the least recently used entries past the limit that nothing depends on. */
  evict(): void {
    if (this.entries.size <= this.ctx.cacheSize) return;
    for (const [id, entry] of this.entries) {
      if (this.entries.size <= this.ctx.cacheSize) break;
      if (entry.inFlight === 0 && entry.rollup === null && !this.ctx.isWaitedOn(id)) this.entries.delete(id);
    }
  }
}
