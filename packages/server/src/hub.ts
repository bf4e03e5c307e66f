import { randomUUID } from 'node:crypto';
import {
  type ChildrenSummary,
  type Control,
  type CreateJobInput,
  ErrorCode,
  type EventDataMap,
  type EventInput,
  type EventKind,
  type JobEvent,
  type JobState,
  type PublishResult,
} from '@headway/protocol';
import type { Bus } from './bus/bus.js';
import { MemoryBus } from './bus/memory.js';
import { Delivery } from './delivery.js';
import { HeadwayError, notFound } from './errors.js';
import type { Metrics } from './metrics.js';
import {
  applyChildChange,
  createdData,
  isTerminal,
  prepareControl,
  prepareEvent,
  reduce,
  rollupOutcome,
} from './state/index.js';
import {
  type JobWrite,
  type ListJobsPage,
  type ListJobsQuery,
  type Store,
  StoreConflictError,
  StoreUnavailableError,
} from './store/store.js';

/** Receives the deliveries of the topics it subscribed to. */
export interface Subscriber {
  deliver(delivery: Delivery): void;
}

/** What a subscriber listens to: one job, all jobs of one user, or everything. */
export type Topic = { job: string } | { user: string } | { all: true };

export type ControlAction = 'cancel' | 'pause' | 'resume';

export interface HubOptions {
  store: Store;
  /** Defaults to the in-process bus. */
  bus?: Bus;
  metrics?: Metrics;
  /** Most events replayed to a resuming subscriber before it gets the state instead. Default 1000. */
  replayLimit?: number;
  /** Largest serialized `metadata` or `result`, bytes. Default 16 KiB. */
  maxJsonBytes?: number;
  /** Job states kept in memory (least recently used are evicted). Default 10,000. */
  cacheSize?: number;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
}

export const hubDefaults = {
  replayLimit: 1000,
  maxJsonBytes: 16 * 1024, // 16 KiB
  cacheSize: 10_000,
} as const;

export interface ResumeResult {
  state: JobState;
  /** Events after `since`, oldest first, when they could all be replayed. */
  events: JobEvent[];
  recovered: boolean;
}

export type PublishManyItem = EventInput & { job: string };
export type PublishManyResult =
  | { job: string; seq: number; control: Control }
  | { job: string; error: { code: ErrorCode; message: string } };

/** One job as the hub holds it in memory. */
interface Entry {
  /** Latest state, possibly ahead of the store while a batch is being committed. */
  head: JobState;
  /** Latest state known to be durable: what readers get. */
  committed: JobState;
  /** Idempotency keys applied through this process (bounded), with their seqs. */
  keys: Map<string, number>;
  /** Writes of this job in the open batch or in the commit under way. */
  inFlight: number;
  /** Pending roll-up of this job's children, applied at the next flush. */
  rollup: ChildrenSummary | null;
  /** A commit of this entry failed: its head is ahead of the store and must not be built on. */
  stale: boolean;
}

interface PendingWrite {
  entry: Entry;
  prevSeq: number;
  events: JobEvent[];
  /** State after each event, for the deliveries. */
  states: JobState[];
  keys: { key: string; seq: number }[];
  created: boolean;
}

interface Batch {
  writes: Map<string, PendingWrite>;
  done: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const KEYS_PER_JOB = 1024;

/**
 * The hub accepts events (validate, sequence, fold, persist, publish) and keeps
 * the subscription registry. It knows nothing of WebSocket or HTTP.
 *
 * Writes of one tick go to the store in one commit (group commit); a publish is
 * answered only after its commit, and subscribers see an event only after it is
 * durable, so a client never sees a seq that a restart could take back.
 */
export class Hub {
  readonly store: Store;
  readonly bus: Bus;
  readonly replayLimit: number;
  private readonly maxJsonBytes: number;
  private readonly cacheSize: number;
  private readonly metrics: Metrics | undefined;
  private readonly now: () => number;

  private readonly cache = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry | null>>();
  private readonly topics = new Map<string, Set<Subscriber>>();
  private readonly waiters = new Map<string, Set<() => void>>();

  private open: Batch | null = null;
  private committing: Promise<void> = Promise.resolve();
  private flushScheduled = false;
  private closed = false;

  constructor(options: HubOptions) {
    this.store = options.store;
    this.bus = options.bus ?? new MemoryBus();
    this.metrics = options.metrics;
    this.replayLimit = options.replayLimit ?? hubDefaults.replayLimit;
    this.maxJsonBytes = options.maxJsonBytes ?? hubDefaults.maxJsonBytes;
    this.cacheSize = options.cacheSize ?? hubDefaults.cacheSize;
    this.now = options.now ?? Date.now;
    this.bus.onDelivery((d) => this.dispatch(d));
  }

  // -------------------------------------------------------------------------
  // Writes

  /** Create a job. Its id is generated when absent. */
  async createJob(input: CreateJobInput): Promise<JobState> {
    this.assertOpen();
    const id = input.id ?? randomUUID();
    const data = createdData({ ...input, id });
    this.checkSize('metadata', data.metadata);
    const [existing, parent] = await Promise.all([
      this.load(id),
      input.parent ? this.load(input.parent) : null,
    ]);
    if (existing || this.cache.has(id)) throw new HeadwayError(ErrorCode.JOB_EXISTS, `job "${id}" exists`);
    if (await this.store.isDeleted(id))
      throw new HeadwayError(ErrorCode.JOB_EXISTS, `job "${id}" existed and was deleted`);
    if (input.parent) {
      if (!parent) throw notFound(input.parent);
      if (isTerminal(parent.head.status)) {
        throw new HeadwayError(ErrorCode.JOB_FINISHED, `parent job "${input.parent}" has finished`);
      }
    }
    // Checked again after the awaits: another request may have created it meanwhile.
    if (this.cache.has(id)) throw new HeadwayError(ErrorCode.JOB_EXISTS, `job "${id}" exists`);
    const event: JobEvent = { job: id, seq: 1, kind: 'created', data, at: this.isoNow() };
    const state = reduce(null, event);
    const entry: Entry = {
      head: state,
      committed: state,
      keys: new Map(),
      inFlight: 0,
      rollup: null,
      stale: false,
    };
    this.cache.set(id, entry);
    const write = this.stage(id, entry, 0, true);
    write.events.push(event);
    write.states.push(state);
    if (parent) this.noteChildChange(parent, null, state);
    try {
      await this.commitOf(write);
    } catch (err) {
      if (this.cache.get(id) === entry && entry.inFlight === 0) this.cache.delete(id);
      throw err;
    }
    return state;
  }

  /**
   * Apply reported events to one job, in order and all-or-nothing. Events whose
   * idempotency key was already applied are skipped. Resolves after the commit.
   */
  async publish(jobId: string, inputs: readonly EventInput[]): Promise<PublishResult> {
    this.assertOpen();
    const entry = await this.require(jobId);
    const keys = inputs.flatMap((i) => (i.key !== undefined && !entry.keys.has(i.key) ? [i.key] : []));
    const known = keys.length > 0 ? await this.store.findKeys(jobId, keys) : new Map<string, number>();
    // From here to `stage` everything is synchronous, so no other request interleaves.
    const current = this.current(jobId, entry);
    const first = current.head;
    let head = first;
    const events: JobEvent[] = [];
    const states: JobState[] = [];
    const newKeys: { key: string; seq: number }[] = [];
    const batchKeys = new Set<string>();
    for (const input of inputs) {
      if (input.key !== undefined) {
        if (current.keys.has(input.key) || known.has(input.key) || batchKeys.has(input.key)) continue;
      }
      const { kind, data } = prepareEvent(head, input);
      this.checkEventSize(kind, data);
      const event: JobEvent = { job: jobId, seq: head.seq + 1, kind, data, at: this.isoNow() };
      head = reduce(head, event);
      events.push(event);
      states.push(head);
      if (input.key !== undefined) {
        batchKeys.add(input.key);
        newKeys.push({ key: input.key, seq: event.seq });
      }
    }
    if (events.length === 0) return { seq: head.seq, control: head.control };
    const write = this.stage(jobId, current, first.seq, false);
    if (head.parent) this.noteParent(head.parent, first, head);
    current.head = head;
    write.events.push(...events);
    write.states.push(...states);
    write.keys.push(...newKeys);
    for (const k of newKeys) this.rememberKey(current, k.key, k.seq);
    this.metrics?.eventsIngested.inc(events.length);
    await this.commitOf(write);
    return { seq: head.seq, control: head.control };
  }

  /**
   * Events of many jobs in one call: each job's events are applied in order and
   * all-or-nothing; one job's error does not fail the others.
   */
  async publishMany(items: readonly PublishManyItem[]): Promise<PublishManyResult[]> {
    const byJob = new Map<string, EventInput[]>();
    for (const { job, ...input } of items) {
      let list = byJob.get(job);
      if (!list) byJob.set(job, (list = []));
      list.push(input as EventInput);
    }
    return Promise.all(
      [...byJob].map(async ([job, inputs]): Promise<PublishManyResult> => {
        try {
          return { job, ...(await this.publish(job, inputs)) };
        } catch (err) {
          const e = asHeadwayError(err);
          return { job, error: { code: e.code, message: e.message } };
        }
      }),
    );
  }

  /**
   * A cancel, pause or resume request. Cancelling a parent cancels its unfinished
   * descendants too. Resolves with the job's state after the request.
   */
  async control(
    jobId: string,
    action: ControlAction,
    reason: string | undefined,
    by: string,
  ): Promise<JobState> {
    this.assertOpen();
    const state = await this.applyControl(jobId, action, reason, by);
    if (action === 'cancel') {
      const descendants = await this.store.descendants(jobId);
      await Promise.all(
        descendants.map((id) =>
          this.applyControl(id, action, reason, by).catch((err) => {
            // A child that finished or was deleted meanwhile needs no cancel.
            if (!(err instanceof HeadwayError)) throw err;
          }),
        ),
      );
    }
    return (await this.getJob(jobId)) ?? state;
  }

  private async applyControl(
    jobId: string,
    action: ControlAction,
    reason: string | undefined,
    by: string,
  ): Promise<JobState> {
    const entry = await this.require(jobId);
    const current = this.current(jobId, entry);
    const prepared = prepareControl(current.head, action, reason, by);
    if (!prepared) return current.head;
    const before = current.head;
    const event: JobEvent = {
      job: jobId,
      seq: before.seq + 1,
      kind: prepared.kind,
      data: prepared.data,
      at: this.isoNow(),
    };
    const after = reduce(before, event);
    const write = this.stage(jobId, current, before.seq, false);
    current.head = after;
    write.events.push(event);
    write.states.push(after);
    if (after.parent) this.noteParent(after.parent, before, after);
    await this.commitOf(write);
    return after;
  }

  /**
   * Delete a job with its descendants and their logs. Subscribers receive a final
   * `deleted` event; later reports for these ids are refused with HW_ERR_JOB_DELETED.
   */
  async deleteJob(jobId: string): Promise<void> {
    this.assertOpen();
    const entry = await this.require(jobId);
    // Let writes already accepted for these jobs land first, so nothing resurrects them.
    await this.flush();
    const ids = [jobId, ...(await this.store.descendants(jobId))];
    const states = await this.store.getJobs(ids);
    await this.store.deleteJobs(ids);
    for (const state of states) {
      this.cache.delete(state.id);
      const event: JobEvent = {
        job: state.id,
        seq: state.seq + 1,
        kind: 'deleted',
        data: {},
        at: this.isoNow(),
      };
      this.bus.publish(new Delivery(event, { ...state, seq: event.seq, updatedAt: event.at }));
    }
    const parentId = entry.committed.parent;
    if (parentId) {
      const parent = await this.load(parentId);
      if (parent) {
        this.noteChildChange(parent, entry.committed, null);
        this.scheduleFlush();
        await this.flush();
      }
    }
  }

  /** Resolves when every write accepted so far is committed (or failed). */
  async flush(): Promise<void> {
    if (this.open) this.runFlush();
    await this.committing.catch(() => {});
  }

  // -------------------------------------------------------------------------
  // Reads (committed data only)

  async getJob(id: string): Promise<JobState | null> {
    const entry = await this.load(id);
    return entry ? entry.committed : null;
  }

  async getEvents(id: string, since: number, limit: number): Promise<JobEvent[]> {
    const entry = await this.load(id);
    if (!entry) throw notFound(id);
    const events = await this.store.getEvents(id, since, limit);
    // The store may already hold a commit whose deliveries are not out yet; never
    // show a reader more than subscribers have been sent.
    const last = entry.committed.seq;
    return events.length > 0 && events[events.length - 1]!.seq > last
      ? events.filter((e) => e.seq <= last)
      : events;
  }

  listJobs(query: ListJobsQuery): Promise<ListJobsPage> {
    return this.store.listJobs(query);
  }

  /**
   * What a subscriber that saw `since` missed: every event after it when the log
   * still holds them all and they fit the replay limit, else only the state.
   */
  async resume(jobId: string, since: number | undefined): Promise<ResumeResult | null> {
    const entry = await this.load(jobId);
    if (!entry) return null;
    const state = entry.committed;
    if (since === undefined) return { state, events: [], recovered: false };
    if (since >= state.seq) return { state, events: [], recovered: since === state.seq };
    const missed = state.seq - since;
    if (missed > this.replayLimit) return { state, events: [], recovered: false };
    const events = (await this.store.getEvents(jobId, since, missed)).filter((e) => e.seq <= state.seq);
    const complete = events.length === missed && events[0]?.seq === since + 1;
    return complete ? { state, events, recovered: true } : { state, events: [], recovered: false };
  }

  /**
   * Long-poll: resolves with the job's state as soon as its committed seq passes
   * `since`, or after `timeoutMs` with the current state. Null when there is no job.
   */
  async waitForChange(
    jobId: string,
    since: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<JobState | null> {
    const entry = await this.load(jobId);
    if (!entry) return null;
    if (entry.committed.seq > since || timeoutMs <= 0) return entry.committed;
    await new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        set?.delete(done);
        if (set?.size === 0) this.waiters.delete(jobId);
        resolve();
      };
      let set = this.waiters.get(jobId);
      if (!set) this.waiters.set(jobId, (set = new Set()));
      set.add(done);
      timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done, { once: true });
    });
    return (this.cache.get(jobId) ?? (await this.load(jobId)))?.committed ?? null;
  }

  // -------------------------------------------------------------------------
  // Subscriptions

  subscribe(topic: Topic, subscriber: Subscriber): void {
    const key = topicKey(topic);
    let set = this.topics.get(key);
    if (!set) this.topics.set(key, (set = new Set()));
    set.add(subscriber);
  }

  unsubscribe(topic: Topic, subscriber: Subscriber): void {
    const key = topicKey(topic);
    const set = this.topics.get(key);
    if (!set) return;
    set.delete(subscriber);
    if (set.size === 0) this.topics.delete(key);
  }

  /** Number of distinct topics with at least one subscriber. */
  get topicCount(): number {
    return this.topics.size;
  }

  /**
   * Hand a committed delivery to every subscriber of its job, its owner and `all`,
   * once each even when several of its topics match.
   */
  private dispatch(d: Delivery): void {
    const byJob = this.topics.get(`j:${d.job}`);
    const byUser = this.topics.get(`u:${d.state.owner}`);
    const byAll = this.topics.get('*');
    const sources = (byJob ? 1 : 0) + (byUser ? 1 : 0) + (byAll ? 1 : 0);
    if (sources === 1) {
      for (const s of (byJob ?? byUser ?? byAll)!) s.deliver(d);
    } else if (sources > 1) {
      const seen = new Set<Subscriber>();
      for (const set of [byJob, byUser, byAll]) {
        if (!set) continue;
        for (const s of set) {
          if (seen.has(s)) continue;
          seen.add(s);
          s.deliver(d);
        }
      }
    }
    this.metrics?.deliveriesDispatched.inc();
    const waiting = this.waiters.get(d.job);
    if (waiting) for (const wake of [...waiting]) wake();
  }

  // -------------------------------------------------------------------------
  // Batching

  /** Add a job's write to the open batch, opening one if needed. */
  private stage(jobId: string, entry: Entry, prevSeq: number, created: boolean): PendingWrite {
    const batch = this.openBatch();
    let write = batch.writes.get(jobId);
    if (!write) {
      write = { entry, prevSeq, events: [], states: [], keys: [], created };
      batch.writes.set(jobId, write);
      entry.inFlight++;
    }
    return write;
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
      this.runFlush();
    });
  }

  private commitOf(write: PendingWrite): Promise<void> {
    return this.open!.done.then(() => {
      if (write.entry.committed.seq < write.states[write.states.length - 1]!.seq) {
        throw new HeadwayError(ErrorCode.STORE_UNAVAILABLE, 'write was not stored', { retryAfter: 1 });
      }
    });
  }

  /** Close the open batch and chain its commit after the one under way. */
  private runFlush(): void {
    const batch = this.open;
    if (!batch) return;
    this.open = null;
    this.committing = this.committing
      .catch(() => {})
      .then(() => this.commitBatch(batch))
      .then(batch.resolve, batch.reject);
  }

  private async commitBatch(batch: Batch): Promise<void> {
    this.applyRollups(batch);
    const writes: JobWrite[] = [];
    for (const w of batch.writes.values()) {
      if (w.events.length === 0) continue;
      writes.push({
        state: w.states[w.states.length - 1]!,
        prevSeq: w.prevSeq,
        events: w.events,
        keys: w.keys,
      });
    }
    const started = performance.now();
    try {
      if (writes.length > 0) await this.store.commit(writes);
    } catch (err) {
      this.metrics?.storeErrors.inc();
      for (const [id, w] of batch.writes) {
        w.entry.inFlight--;
        // The head ran ahead of the store: forget it, the next read reloads the truth.
        w.entry.stale = true;
        if (this.cache.get(id) === w.entry) this.cache.delete(id);
      }
      throw err instanceof StoreConflictError || err instanceof StoreUnavailableError
        ? new HeadwayError(ErrorCode.STORE_UNAVAILABLE, 'the store did not accept the write; retry', {
            retryAfter: 1,
            cause: err,
          })
        : err;
    }
    this.metrics?.storeCommitSeconds.observe((performance.now() - started) / 1000);
    this.metrics?.storeBatchEvents.observe(writes.reduce((n, w) => n + w.events.length, 0));
    for (const w of batch.writes.values()) {
      w.entry.inFlight--;
      if (w.states.length > 0) w.entry.committed = w.states[w.states.length - 1]!;
    }
    for (const w of batch.writes.values()) {
      for (let i = 0; i < w.events.length; i++) this.bus.publish(new Delivery(w.events[i]!, w.states[i]!));
    }
    this.evict();
  }

  // -------------------------------------------------------------------------
  // Roll-up of batch parents

  private noteParent(parentId: string, before: JobState, after: JobState): void {
    if (before.status === after.status && before.progress.percent === after.progress.percent) return;
    const parent = this.cache.get(parentId);
    if (parent) {
      this.noteChildChange(parent, before, after);
      return;
    }
    // Evicted since the child was loaded: roll up in a later batch. Changes are
    // (before, after) pairs, so their order does not matter.
    this.load(parentId)
      .then((p) => {
        if (p && !p.stale) this.noteChildChange(p, before, after);
      })
      .catch(() => {});
  }

  private noteChildChange(parent: Entry, before: JobState | null, after: JobState | null): void {
    parent.rollup = applyChildChange(parent.rollup ?? parent.head.children, before, after);
    // The parent is written in the open batch even if no child write lands in it.
    this.stage(parent.head.id, parent, parent.head.seq, false);
  }

  /** Fold pending children summaries into their parents, parents of parents included. */
  private applyRollups(batch: Batch): void {
    for (let again = true; again; ) {
      again = false;
      // Map iteration also visits the grandparents that this loop adds.
      for (const [id, w] of batch.writes) {
        const entry = w.entry;
        const summary = entry.rollup;
        if (!summary) continue;
        again = true;
        entry.rollup = null;
        if (this.cache.get(id) !== entry || isTerminal(entry.head.status)) continue;
        const before = entry.head;
        let head = this.append(w, 'children', summary);
        const outcome = rollupOutcome(head, summary);
        if (outcome) {
          const { kind, data } = prepareEvent(head, outcome);
          head = this.append(w, kind, data);
        }
        if (!head.parent) continue;
        const grand = this.cache.get(head.parent);
        if (grand) this.noteParentInBatch(batch, grand, before, head);
        else this.noteParent(head.parent, before, head);
      }
    }
  }

  private noteParentInBatch(batch: Batch, parent: Entry, before: JobState, after: JobState): void {
    if (before.status === after.status && before.progress.percent === after.progress.percent) return;
    parent.rollup = applyChildChange(parent.rollup ?? parent.head.children, before, after);
    if (!batch.writes.has(parent.head.id)) {
      batch.writes.set(parent.head.id, {
        entry: parent,
        prevSeq: parent.head.seq,
        events: [],
        states: [],
        keys: [],
        created: false,
      });
      parent.inFlight++;
    }
  }

  private append<K extends EventKind>(w: PendingWrite, kind: K, data: EventDataMap[K]): JobState {
    const entry = w.entry;
    const event: JobEvent = { job: entry.head.id, seq: entry.head.seq + 1, kind, data, at: this.isoNow() };
    entry.head = reduce(entry.head, event);
    w.events.push(event);
    w.states.push(entry.head);
    return entry.head;
  }

  // -------------------------------------------------------------------------
  // Cache

  /** The job's entry, loading it (and its ancestors, for roll-up) from the store. */
  private async load(id: string): Promise<Entry | null> {
    const cached = this.cache.get(id);
    if (cached) {
      // Refresh recency for the LRU order.
      this.cache.delete(id);
      this.cache.set(id, cached);
      return cached;
    }
    let pending = this.loading.get(id);
    if (!pending) {
      pending = (async () => {
        const state = await this.store.getJob(id);
        if (!state) return null;
        if (state.parent) await this.load(state.parent);
        const raced = this.cache.get(id);
        if (raced) return raced;
        const entry: Entry = {
          head: state,
          committed: state,
          keys: new Map(),
          inFlight: 0,
          rollup: null,
          stale: false,
        };
        this.cache.set(id, entry);
        return entry;
      })().finally(() => this.loading.delete(id));
      this.loading.set(id, pending);
    }
    return pending;
  }

  /**
   * The entry to build on, right before a synchronous apply. An entry evicted
   * during the caller's awaits is put back (it is evicted only when it matches the
   * store); one whose commit failed is refused, so the caller's retry reloads it.
   */
  private current(id: string, loaded: Entry): Entry {
    const cached = this.cache.get(id);
    if (cached && !cached.stale) return cached;
    if (loaded.stale)
      throw new HeadwayError(ErrorCode.STORE_UNAVAILABLE, 'the job is being reloaded; retry', {
        retryAfter: 1,
      });
    this.cache.set(id, loaded);
    return loaded;
  }

  private async require(id: string): Promise<Entry> {
    const entry = await this.load(id);
    if (entry) return entry;
    if (await this.store.isDeleted(id))
      throw new HeadwayError(ErrorCode.JOB_DELETED, `job "${id}" was deleted`);
    throw notFound(id);
  }

  private rememberKey(entry: Entry, key: string, seq: number): void {
    entry.keys.set(key, seq);
    if (entry.keys.size > KEYS_PER_JOB) entry.keys.delete(entry.keys.keys().next().value!);
  }

  private evict(): void {
    if (this.cache.size <= this.cacheSize) return;
    for (const [id, entry] of this.cache) {
      if (this.cache.size <= this.cacheSize) break;
      if (entry.inFlight === 0 && entry.rollup === null && !this.waiters.has(id)) this.cache.delete(id);
    }
  }

  // -------------------------------------------------------------------------

  private checkEventSize(kind: EventKind, data: EventDataMap[EventKind]): void {
    if (kind === 'metadata') this.checkSize('metadata', (data as EventDataMap['metadata']).metadata);
    else if (kind === 'completed') this.checkSize('result', (data as EventDataMap['completed']).result);
  }

  private checkSize(what: string, value: unknown): void {
    if (value === undefined) return;
    const bytes = Buffer.byteLength(JSON.stringify(value));
    if (bytes > this.maxJsonBytes) {
      throw new HeadwayError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        `${what} is ${bytes} bytes; the limit is ${this.maxJsonBytes} bytes`,
      );
    }
  }

  private isoNow(): string {
    return new Date(this.now()).toISOString();
  }

  private assertOpen(): void {
    if (this.closed) throw new HeadwayError(ErrorCode.SHUTTING_DOWN, 'the hub is shutting down');
  }

  /** Stop accepting writes and wait for every accepted one to be committed. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    for (const set of this.waiters.values()) for (const wake of [...set]) wake();
  }

  stats(): { cachedJobs: number; topics: number; waiters: number } {
    return { cachedJobs: this.cache.size, topics: this.topics.size, waiters: this.waiters.size };
  }
}

export function topicKey(topic: Topic): string {
  if ('job' in topic) return `j:${topic.job}`;
  if ('user' in topic) return `u:${topic.user}`;
  return '*';
}

export function asHeadwayError(err: unknown): HeadwayError {
  if (err instanceof HeadwayError) return err;
  return new HeadwayError(ErrorCode.INTERNAL, 'internal error', { cause: err });
}
