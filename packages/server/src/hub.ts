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
  /**
   * A followed job that has been quiet this long is compared with the store, to
   * find deliveries the bus lost at the end of a burst, ms; 0 disables the check.
   * Default 5000 with a shared bus, 0 with the in-process one (which loses nothing).
   */
  idleCheckMs?: number;
  /** Jobs whose last dispatched seq is remembered; those with job subscribers are always kept. Default 100,000. */
  trackSize?: number;
}

export const hubDefaults = {
  replayLimit: 1000,
  maxJsonBytes: 16 * 1024, // 16 KiB
  cacheSize: 10_000,
  idleCheckMs: 5_000, // 5 seconds
  trackSize: 100_000,
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

/** A fresh cache entry for `state` (read from the store, or just created): no keys, no writes in flight. */
function cacheEntry(state: JobState): Entry {
  return { head: state, committed: state, keys: new Map(), inFlight: 0, rollup: null, stale: false };
}

/**
 * A job this process dispatches deliveries of (it has local subscribers): the last
 * seq dispatched, to drop repeats and to notice the deliveries the bus lost.
 */
interface Track {
  seq: number;
  /** State after `seq`, from which backfilled events are folded; null before the first event. */
  state: JobState | null;
  owner: string;
  /** Last dispatch or store check, ms since epoch (for the idle check). */
  activeAt: number;
  /** Deliveries held back while missed events are read from the store; null when no backfill runs. */
  held: Delivery[] | null;
}

type BackfillReason = 'gap' | 'idle' | 'resync' | 'retry';

interface PendingWrite {
  entry: Entry;
  prevSeq: number;
  events: JobEvent[];
  /** State after each event, for the deliveries. */
  states: JobState[];
  keys: { key: string; seq: number }[];
  created: boolean;
  /** Why the write was not stored, once its batch is over. */
  error?: unknown;
}

interface Batch {
  writes: Map<string, PendingWrite>;
  done: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const KEYS_PER_JOB = 1024;
/** Attempts of one write request that keeps losing races with other processes for its job. */
const MAX_WRITE_ATTEMPTS = 12;
/** Longest random pause before a retry, ms; it doubles with each attempt from 2 ms up to this. */
const MAX_RETRY_PAUSE_MS = 64;
/** Commits of one batch: each conflict removes the conflicting writes and commits the rest again. */
const MAX_COMMIT_ROUNDS = 4;
/** Deliveries of one job held back during its backfill; the store has any beyond. */
const MAX_HELD = 10_000;
/** Events read from the store per backfill query. */
const BACKFILL_PAGE = 500;
/** Pause before a backfill that failed (the store is down) is tried again, ms. */
const BACKFILL_RETRY_MS = 1_000; // 1 second
/** Longest wait for the bus to confirm a new topic before a read goes ahead anyway, ms. */
const BUS_SUBSCRIBE_TIMEOUT_MS = 2_000; // 2 seconds
/** Jobs compared with the store per query of an idle check or a resync. */
const CHECK_BATCH = 500;
/** Clock skew and commit time allowed for when a resync looks for jobs changed since the loss, ms. */
const RESYNC_SLACK_MS = 2_000; // 2 seconds
/** Most jobs of scope topics a resync catches up. */
const RESYNC_MAX_JOBS = 5_000;

/** A write that lost a race for its job with another process: the request is applied again on the reloaded job. */
class WriteConflict extends HeadwayError {
  constructor(cause?: unknown) {
    super(ErrorCode.STORE_UNAVAILABLE, 'the job was written concurrently; retry', { retryAfter: 1, cause });
  }
}

/**
 * The hub accepts events (validate, sequence, fold, persist, publish) and keeps
 * the subscription registry. It knows nothing of WebSocket or HTTP.
 *
 * Writes of one tick go to the store in one commit (group commit); a publish is
 * answered only after its commit, and subscribers see an event only after it is
 * durable, so a client never sees a seq that a restart could take back.
 *
 * With several processes (a shared bus), a write that another process raced is
 * applied again on the reloaded job; deliveries are dispatched per job in seq
 * order and once, and whatever the bus lost (a gap, a reconnect, a quiet job
 * whose last deliveries never came) is read back from the store.
 */
export class Hub {
  readonly store: Store;
  readonly bus: Bus;
  readonly replayLimit: number;
  private readonly maxJsonBytes: number;
  private readonly cacheSize: number;
  private readonly metrics: Metrics | undefined;
  private readonly now: () => number;
  private readonly idleCheckMs: number;
  private readonly trackSize: number;

  private readonly cache = new Map<string, Entry>();
  private readonly tracks = new Map<string, Track>();
  /** Bus subscriptions of new topics not confirmed yet. */
  private readonly listening = new Set<Promise<void>>();
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private idleTimer: NodeJS.Timeout | null = null;
  private checkingIdle = false;
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
    this.idleCheckMs = options.idleCheckMs ?? (this.bus.shared ? hubDefaults.idleCheckMs : 0);
    this.trackSize = options.trackSize ?? hubDefaults.trackSize;
    this.bus.onDelivery((d, sentAt) => this.receive(d, sentAt));
    this.bus.onResync((lostSince) => {
      this.resync(lostSince).catch(() => {
        // The store is down too: the idle check and later gaps catch up.
      });
    });
    if (this.idleCheckMs > 0) {
      this.idleTimer = setInterval(() => {
        this.checkIdle().catch(() => {});
      }, this.idleCheckMs);
      this.idleTimer.unref();
    }
  }

  // -------------------------------------------------------------------------
  // Writes

  /** Create a job. Its id is generated when absent. */
  async createJob(input: CreateJobInput): Promise<JobState> {
    const id = input.id ?? randomUUID();
    return this.retrying(() => this.createOnce(id, input));
  }

  private async createOnce(id: string, input: CreateJobInput): Promise<JobState> {
    this.assertOpen();
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
    const entry = cacheEntry(state);
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
    return this.retrying(() => this.publishOnce(jobId, inputs));
  }

  private async publishOnce(jobId: string, inputs: readonly EventInput[]): Promise<PublishResult> {
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

  private applyControl(
    jobId: string,
    action: ControlAction,
    reason: string | undefined,
    by: string,
  ): Promise<JobState> {
    return this.retrying(() => this.applyControlOnce(jobId, action, reason, by));
  }

  private async applyControlOnce(
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
   * Runs one write request, and again on the reloaded job when another process
   * wrote the job first (or a job whose roll-up shared the commit), a few times.
   */
  private async retrying<T>(apply: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await apply();
      } catch (err) {
        if (!(err instanceof WriteConflict) || attempt >= MAX_WRITE_ATTEMPTS) throw err;
        this.metrics?.writeRetries.inc();
        // Processes racing for one job would otherwise keep colliding in step.
        const pause = Math.random() * Math.min(MAX_RETRY_PAUSE_MS, 2 ** attempt);
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
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
      this.bus.publish(this.deletion(state));
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
    const entry = await this.loadFresh(id);
    return entry ? entry.committed : null;
  }

  async getEvents(id: string, since: number, limit: number): Promise<JobEvent[]> {
    const entry = await this.loadFresh(id);
    if (!entry) throw notFound(id);
    const events = await this.store.getEvents(id, since, limit);
    // The store may already hold a commit whose deliveries are not out yet; never
    // show a reader more than subscribers have been sent.
    const last = entry.committed.seq;
    return events.length > 0 && events[events.length - 1]!.seq > last
      ? events.filter((e) => e.seq <= last)
      : events;
  }

  async listJobs(query: ListJobsQuery): Promise<ListJobsPage> {
    // A scope subscriber lists its jobs right after subscribing: the bus must
    // already be listening, and the listed states are where its tracking starts.
    await this.busReady();
    const page = await this.store.listJobs(query);
    for (const state of page.jobs) this.follow(state);
    return page;
  }

  /**
   * What a subscriber that saw `since` missed: every event after it when the log
   * still holds them all and they fit the replay limit, else only the state.
   */
  async resume(jobId: string, since: number | undefined): Promise<ResumeResult | null> {
    await this.busReady();
    const entry = await this.loadFresh(jobId);
    if (!entry) return null;
    const state = entry.committed;
    this.follow(state);
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
    // Other processes' writes arrive only on the topics this process listens to:
    // listen to the job's before reading it, so that no change falls in between.
    const listener: Subscriber | null = this.bus.shared && timeoutMs > 0 ? { deliver() {} } : null;
    if (listener) {
      this.subscribe({ job: jobId }, listener);
      await this.busReady();
    }
    try {
      return await this.waitOnce(jobId, since, timeoutMs, signal);
    } finally {
      if (listener) this.unsubscribe({ job: jobId }, listener);
    }
  }

  private async waitOnce(
    jobId: string,
    since: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<JobState | null> {
    const entry = await this.loadFresh(jobId);
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
    return (this.cache.get(jobId) ?? (await this.loadFresh(jobId)))?.committed ?? null;
  }

  // -------------------------------------------------------------------------
  // Subscriptions

  subscribe(topic: Topic, subscriber: Subscriber): void {
    const key = topicKey(topic);
    let set = this.topics.get(key);
    if (!set) {
      this.topics.set(key, (set = new Set()));
      this.listen(key);
    }
    set.add(subscriber);
  }

  unsubscribe(topic: Topic, subscriber: Subscriber): void {
    const key = topicKey(topic);
    const set = this.topics.get(key);
    if (!set) return;
    set.delete(subscriber);
    if (set.size > 0) return;
    this.topics.delete(key);
    this.bus.unsubscribe(key);
    // A job topic's track goes with it; tracks of a scope's jobs are dropped by
    // the idle check or the size bound, rather than by a walk over all of them here.
    if ('job' in topic) {
      const track = this.tracks.get(topic.job);
      if (track && !this.covers(topic.job, track.owner)) this.tracks.delete(topic.job);
    }
  }

  /** Ask the bus for a new topic; reads that must not miss its deliveries wait for `busReady`. */
  private listen(key: string): void {
    if (!this.bus.shared) {
      void this.bus.subscribe(key);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const ready: Promise<void> = Promise.race([
      this.bus.subscribe(key).catch(() => {}),
      // A bus that stalls must not stall subscribers: a reconnect resyncs anyway.
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, BUS_SUBSCRIBE_TIMEOUT_MS);
      }),
    ]).finally(() => {
      clearTimeout(timer);
      this.listening.delete(ready);
    });
    this.listening.add(ready);
  }

  private async busReady(): Promise<void> {
    if (this.listening.size > 0) await Promise.all(this.listening);
  }

  /** Whether a local subscriber watches the job, through its own topic, its owner's or `all`. */
  private covers(id: string, owner: string): boolean {
    return this.topics.has(`j:${id}`) || this.topics.has(`u:${owner}`) || this.topics.has('*');
  }

  /** Number of distinct topics with at least one subscriber. */
  get topicCount(): number {
    return this.topics.size;
  }

  // -------------------------------------------------------------------------
  // Dispatch, in seq order per job and once, with what the bus lost read back

  /** A delivery from the bus (this process's commits included). */
  private receive(d: Delivery, sentAt?: number): void {
    if (sentAt !== undefined) this.metrics?.busLagSeconds.observe(Math.max(0, Date.now() - sentAt) / 1000);
    let track = this.tracks.get(d.job);
    if (track === undefined) {
      this.dispatch(d);
      return;
    }
    if (track.held !== null) {
      // Released in order when the backfill ends; past the bound the store has them anyway.
      if (track.held.length < MAX_HELD) track.held.push(d);
      return;
    }
    if (d.kind === 'created' && track.seq > 1) {
      // The id was swept by retention and used again: a new job.
      this.tracks.delete(d.job);
      track = undefined;
    } else if (d.seq <= track.seq) {
      this.metrics?.busDuplicates.inc();
      return;
    } else if (d.seq > track.seq + 1) {
      track.held = [d];
      this.backfill(d.job, track, 'gap');
      return;
    }
    this.dispatch(d, track);
  }

  /**
   * Hand a committed delivery to every subscriber of its job, its owner and `all`,
   * once each even when several of its topics match.
   */
  private dispatch(d: Delivery, track = this.tracks.get(d.job)): void {
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
    if (d.kind === 'deleted') {
      this.tracks.delete(d.job);
      const entry = this.cache.get(d.job);
      if (entry && entry.inFlight === 0) this.cache.delete(d.job);
    } else {
      if (track) {
        track.seq = d.seq;
        track.state = d.state;
        track.activeAt = Date.now();
      } else if (sources > 0) {
        this.follow(d.state);
      }
      if (this.bus.shared) this.refresh(d.state);
    }
    const waiting = this.waiters.get(d.job);
    if (waiting) for (const wake of [...waiting]) wake();
  }

  /** Start tracking a job that local subscribers watch, from the state they were given. */
  private follow(state: JobState): void {
    if (this.tracks.has(state.id) || !this.covers(state.id, state.owner)) return;
    this.tracks.set(state.id, {
      seq: state.seq,
      state,
      owner: state.owner,
      activeAt: Date.now(),
      held: null,
    });
    if (this.tracks.size > this.trackSize) {
      for (const [id, t] of this.tracks) {
        if (this.tracks.size <= this.trackSize) break;
        if (t.held === null && !this.topics.has(`j:${id}`)) this.tracks.delete(id);
      }
    }
  }

  /** Another process moved a cached job on: build the next local write on its state. */
  private refresh(state: JobState): void {
    const entry = this.cache.get(state.id);
    if (!entry || entry.stale || entry.inFlight > 0 || state.seq <= entry.committed.seq) return;
    entry.head = state;
    entry.committed = state;
  }

  /** Read the events after the track's seq from the store and dispatch them, then the held deliveries. */
  private backfill(job: string, track: Track, reason: BackfillReason): void {
    this.metrics?.backfills.inc({ reason });
    this.readMissed(job, track).then(
      (found) => this.release(job, track, found),
      () => {
        // The store is down: keep holding (bounded) and try again.
        const timer = setTimeout(() => {
          this.retryTimers.delete(timer);
          if (this.closed) return;
          if (this.tracks.get(job) === track) this.backfill(job, track, 'retry');
          else track.held = null;
        }, BACKFILL_RETRY_MS);
        timer.unref();
        this.retryTimers.add(timer);
      },
    );
  }

  /** Resolves with whether the store had any event after the track's seq. */
  private async readMissed(job: string, track: Track): Promise<boolean> {
    let found = false;
    for (;;) {
      const started = performance.now();
      const events = await this.store.getEvents(job, track.seq, BACKFILL_PAGE);
      this.metrics?.storeReadSeconds.observe({ op: 'events' }, (performance.now() - started) / 1000);
      for (const event of events) {
        // A hole in the log (swept by retention): what follows comes as it is.
        if (event.seq !== track.seq + 1) return found;
        found = true;
        this.metrics?.backfilledEvents.inc();
        this.dispatch(new Delivery(event, reduce(track.state, event)), track);
      }
      if (events.length < BACKFILL_PAGE) return found;
    }
  }

  private release(job: string, track: Track, found: boolean): void {
    const held = track.held ?? [];
    track.held = null;
    held.sort((a, b) => a.seq - b.seq);
    for (let i = 0; i < held.length; i++) {
      const d = held[i]!;
      if (d.seq <= track.seq) {
        this.metrics?.busDuplicates.inc();
        continue;
      }
      if (d.seq > track.seq + 1 && found) {
        // Committed after the store was read: read again. When the store had
        // nothing (a deleted job's final delivery), the gap cannot be filled.
        track.held = held.slice(i);
        this.backfill(job, track, 'gap');
        return;
      }
      this.dispatch(d, track);
    }
  }

  /** Compare followed jobs with the store and backfill those it holds newer events of. */
  private async compare(ids: string[], reason: BackfillReason): Promise<void> {
    const started = performance.now();
    const states = await this.store.getJobs(ids);
    this.metrics?.storeReadSeconds.observe({ op: 'jobs' }, (performance.now() - started) / 1000);
    const found = new Set<string>();
    for (const state of states) {
      found.add(state.id);
      const track = this.tracks.get(state.id);
      if (!track || track.held !== null || state.seq <= track.seq) continue;
      track.held = [];
      this.backfill(state.id, track, reason);
    }
    for (const id of ids) {
      if (found.has(id)) continue;
      // Gone from the store: deleted by another process whose final delivery was lost.
      const track = this.tracks.get(id);
      if (!track?.state || track.held !== null || !(await this.store.isDeleted(id))) continue;
      if (this.tracks.get(id) === track && track.held === null)
        this.dispatch(this.deletion(track.state), track);
    }
  }

  /**
   * The idle check: followed jobs quiet for `idleCheckMs` are compared with the
   * store, which finds deliveries lost at the end of a burst (no later seq shows
   * the gap). Finished jobs are not checked: nothing follows an ending but a deletion.
   */
  private async checkIdle(): Promise<void> {
    if (this.checkingIdle || this.closed) return;
    this.checkingIdle = true;
    try {
      const now = Date.now();
      const due: string[] = [];
      for (const [id, t] of this.tracks) {
        if (!this.covers(id, t.owner)) {
          this.tracks.delete(id);
          continue;
        }
        if (t.held !== null || now - t.activeAt < this.idleCheckMs) continue;
        if (t.state && isTerminal(t.state.status)) continue;
        t.activeAt = now;
        due.push(id);
        if (due.length >= CHECK_BATCH) break;
      }
      if (due.length > 0) await this.compare(due, 'idle');
    } finally {
      this.checkingIdle = false;
    }
  }

  /**
   * The bus reconnected: compare every followed job with the store, and catch up
   * the jobs of watched scopes that changed since the loss and are not followed
   * yet (new jobs, mostly).
   */
  private async resync(lostSince: number): Promise<void> {
    if (this.closed) return;
    this.metrics?.busResyncs.inc();
    const ids: string[] = [];
    for (const [id, t] of this.tracks) if (this.covers(id, t.owner)) ids.push(id);
    for (let i = 0; i < ids.length; i += CHECK_BATCH)
      await this.compare(ids.slice(i, i + CHECK_BATCH), 'resync');
    const since = lostSince - RESYNC_SLACK_MS;
    if (this.topics.has('*')) {
      await this.catchUpScope(undefined, since);
      return;
    }
    for (const key of [...this.topics.keys()]) {
      if (key.startsWith('u:')) await this.catchUpScope(key.slice(2), since);
    }
  }

  private async catchUpScope(owner: string | undefined, since: number): Promise<void> {
    let cursor: string | undefined;
    let seen = 0;
    for (;;) {
      const page = await this.store.listJobs({ owner, limit: CHECK_BATCH, cursor });
      for (const state of page.jobs) {
        if (Date.parse(state.updatedAt) < since || ++seen > RESYNC_MAX_JOBS) return;
        if (!this.tracks.has(state.id)) await this.catchUpJob(state, since);
      }
      if (page.next === undefined) return;
      cursor = page.next;
    }
  }

  /**
   * Dispatch what a job no local subscriber followed did since `since`: its events
   * folded from the first when the log is short enough, else its latest event.
   */
  private async catchUpJob(latest: JobState, since: number): Promise<void> {
    if (!this.covers(latest.id, latest.owner)) return;
    const track: Track = { seq: 0, state: null, owner: latest.owner, activeAt: Date.now(), held: [] };
    this.tracks.set(latest.id, track);
    let found = false;
    try {
      const from = latest.seq <= this.replayLimit ? 0 : latest.seq - 1;
      const events = await this.store.getEvents(latest.id, from, latest.seq - from);
      if (from > 0 || events[0]?.seq !== 1) {
        track.seq = latest.seq - 1;
        track.state = latest;
      }
      for (const event of events) {
        if (event.seq !== track.seq + 1) break;
        const state = event.seq === latest.seq ? latest : reduce(track.state, event);
        found = true;
        if (Date.parse(event.at) >= since) this.dispatch(new Delivery(event, state), track);
        else {
          track.seq = event.seq;
          track.state = state;
        }
      }
    } finally {
      if (track.state === null) {
        track.seq = latest.seq;
        track.state = latest;
      }
      this.release(latest.id, track, found);
    }
  }

  private deletion(state: JobState): Delivery {
    const event: JobEvent = {
      job: state.id,
      seq: state.seq + 1,
      kind: 'deleted',
      data: {},
      at: this.isoNow(),
    };
    return new Delivery(event, { ...state, seq: event.seq, updatedAt: event.at });
  }

  // -------------------------------------------------------------------------
  // Batching

  /** Add a job's write to the open batch, opening one if needed. */
  private stage(
    jobId: string,
    entry: Entry,
    prevSeq: number,
    created: boolean,
    batch: Batch = this.openBatch(),
  ): PendingWrite {
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
      if (write.error !== undefined) throw write.error;
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

  /**
   * Commit a batch. When another process wrote some of its jobs first, only the
   * writes of those jobs (and of the jobs their roll-ups tie them to) fail, and
   * the rest is committed again; failed writes carry their error to their
   * requests, which `retrying` applies again on the reloaded jobs.
   */
  private async commitBatch(batch: Batch): Promise<void> {
    this.applyRollups(batch);
    // A write built on an entry whose earlier commit failed would fork the job's log.
    const staleIds: string[] = [];
    for (const [id, w] of batch.writes) if (w.entry.stale) staleIds.push(id);
    let failed = this.linked(batch, staleIds);
    let error: unknown = null;
    let writes: JobWrite[] = [];
    const started = performance.now();
    for (let round = 1; ; round++) {
      writes = [];
      for (const [id, w] of batch.writes) {
        if (w.events.length === 0 || failed.has(id)) continue;
        writes.push({
          state: w.states[w.states.length - 1]!,
          prevSeq: w.prevSeq,
          events: w.events,
          keys: w.keys,
        });
      }
      try {
        if (writes.length > 0) await this.store.commit(writes);
        break;
      } catch (err) {
        this.metrics?.storeErrors.inc();
        if (err instanceof StoreConflictError && round < MAX_COMMIT_ROUNDS) {
          this.metrics?.storeConflicts.inc(err.jobs.length);
          failed = this.linked(batch, [...failed, ...err.jobs]);
          continue;
        }
        error =
          err instanceof StoreConflictError
            ? new WriteConflict(err)
            : err instanceof StoreUnavailableError
              ? new HeadwayError(ErrorCode.STORE_UNAVAILABLE, 'the store did not accept the write; retry', {
                  retryAfter: 1,
                  cause: err,
                })
              : err;
        break;
      }
    }
    if (error === null) {
      this.metrics?.storeCommitSeconds.observe((performance.now() - started) / 1000);
      this.metrics?.storeBatchEvents.observe(writes.reduce((n, w) => n + w.events.length, 0));
    }
    for (const [id, w] of batch.writes) {
      w.entry.inFlight--;
      if (error !== null || failed.has(id)) {
        w.error = error ?? new WriteConflict();
        // The head ran ahead of the store: forget it, the next read reloads the truth.
        w.entry.stale = true;
        if (this.cache.get(id) === w.entry) this.cache.delete(id);
      } else if (w.states.length > 0) {
        w.entry.committed = w.states[w.states.length - 1]!;
      }
    }
    if (error !== null) return;
    for (const [id, w] of batch.writes) {
      if (failed.has(id)) continue;
      for (let i = 0; i < w.events.length; i++) this.bus.publish(new Delivery(w.events[i]!, w.states[i]!));
    }
    this.evict();
  }

  /**
   * These jobs and every job of the batch tied to them by a roll-up: a child's
   * change is folded into its parent's write, so they are stored together or not at all.
   */
  private linked(batch: Batch, ids: readonly string[]): Set<string> {
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

  // -------------------------------------------------------------------------
  // Roll-up of batch parents

  private noteParent(parentId: string, before: JobState, after: JobState): void {
    if (!movesRollup(before, after)) return;
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

  /** Record a child's change in its parent's pending roll-up; the parent is written in `batch` (default: the open one). */
  private noteChildChange(
    parent: Entry,
    before: JobState | null,
    after: JobState | null,
    batch?: Batch,
  ): void {
    parent.rollup = applyChildChange(parent.rollup ?? parent.head.children, before, after);
    // The parent is written even if no child write lands in the same batch.
    this.stage(parent.head.id, parent, parent.head.seq, false, batch);
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
    if (!movesRollup(before, after)) return;
    this.noteChildChange(parent, before, after, batch);
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
        const entry = cacheEntry(state);
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
    if (loaded.stale) throw new WriteConflict();
    this.cache.set(id, loaded);
    return loaded;
  }

  /**
   * The job's entry for a read. With other processes writing, a cached job that
   * no local subscriber follows on the bus may be behind: it is read again.
   */
  private async loadFresh(id: string): Promise<Entry | null> {
    const cached = this.cache.get(id);
    const entry = await this.load(id);
    if (!entry || !cached || !this.bus.shared) return entry;
    const track = this.tracks.get(id);
    if (track && track.held === null && this.covers(id, track.owner)) return entry;
    const started = performance.now();
    const state = await this.store.getJob(id);
    this.metrics?.storeReadSeconds.observe({ op: 'job' }, (performance.now() - started) / 1000);
    if (!state) {
      if (this.cache.get(id) === entry && entry.inFlight === 0) this.cache.delete(id);
      return null;
    }
    this.refresh(state);
    return this.cache.get(id) ?? entry;
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
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = null;
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    await this.flush();
    for (const set of this.waiters.values()) for (const wake of [...set]) wake();
  }

  stats(): { cachedJobs: number; topics: number; waiters: number; trackedJobs: number } {
    return {
      cachedJobs: this.cache.size,
      topics: this.topics.size,
      waiters: this.waiters.size,
      trackedJobs: this.tracks.size,
    };
  }
}

export function topicKey(topic: Topic): string {
  if ('job' in topic) return `j:${topic.job}`;
  if ('user' in topic) return `u:${topic.user}`;
  return '*';
}

export function asHeadwayError(err: unknown): HeadwayError {
  if (err instanceof HeadwayError) return err;
  // A read that found the store unreachable: the client retries, as it would a write.
  if (err instanceof StoreUnavailableError) {
    return new HeadwayError(ErrorCode.STORE_UNAVAILABLE, 'the store is unavailable; retry', {
      retryAfter: 1,
      cause: err,
    });
  }
  return new HeadwayError(ErrorCode.INTERNAL, 'internal error', { cause: err });
}

/** Whether a child's change alters its parent's roll-up (which counts statuses and percents only). */
function movesRollup(before: JobState, after: JobState): boolean {
  return before.status !== after.status || before.progress.percent !== after.progress.percent;
}
