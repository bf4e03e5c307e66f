import { randomUUID } from 'node:crypto';
import {
  type CreateJobInput,
  ErrorCode,
  type EventInput,
  type JobEvent,
  type JobState,
  type PublishResult,
} from '@headway/protocol';
import type { Bus } from './bus/bus.js';
import { MemoryBus } from './bus/memory.js';
import type { Delivery } from './delivery.js';
import { HeadwayError, notFound } from './errors.js';
import { GroupCommit } from './hub/group-commit.js';
import { JobCache } from './hub/job-cache.js';
import { KindHistory } from './hub/kind-history.js';
import { type HubOptions, hubDefaults, type ResumeResult } from './hub/options.js';
import { OrderedDispatch } from './hub/ordered-dispatch.js';
import { Rollups } from './hub/rollups.js';
import { StallMonitor } from './hub/stall-monitor.js';
import { type Subscriber, type Topic, Topics } from './hub/topics.js';
import { Waiters } from './hub/waiters.js';
import {
  type ControlAction,
  deletion,
  type PublishManyItem,
  type PublishManyResult,
  Writes,
} from './hub/writes.js';
import { type KindSummary, type StallOptions, stallDefaults } from './state/index.js';
import type { ListJobsPage, ListJobsQuery, Store } from './store/store.js';
import { writeNow } from './write-tick.js';

// The edges (transports) import these from here, beside the hub itself.
export { asHeadwayError } from './errors.js';
export { type HubOptions, hubDefaults, type ResumeResult } from './hub/options.js';
export { type Subscriber, type Topic, topicKey } from './hub/topics.js';
export type { ControlAction, PublishManyItem, PublishManyResult } from './hub/writes.js';

/**
 * The hub accepts events (validate, sequence, fold, persist, publish) and keeps
 * the subscription registry. It knows nothing of WebSocket or HTTP.
 *
 * It is a facade; each concern lives in a collaborator under `hub/`, handed
 * only what it needs. One worker report goes down and back up through them:
 *
 * 1. `writes` — validate the events, sequence and fold them on the cached job
 *    (`job-cache`), note the parent's roll-up (`rollups`);
 * 2. `group-commit` — add them to this tick's batch, commit the batch in one
 *    store transaction (conflict rounds when another process raced), answer the
 *    request, and publish each committed event on the bus;
 * 3. `ordered-dispatch` — receive it from the bus (on every process), drop
 *    repeats, backfill gaps from the store, and hand it in seq order to the
 *    subscribers of its `topics`; long-poll `waiters` wake.
 */
export class Hub {
  readonly store: Store;
  readonly bus: Bus;
  readonly replayLimit: number;
  private readonly now: () => number;
  private isoMs = Number.NaN;
  private iso = '';
  private readonly topics: Topics;
  private readonly cache: JobCache;
  private readonly commits: GroupCommit;
  private readonly rollups: Rollups;
  private readonly writes: Writes;
  private readonly dispatch: OrderedDispatch;
  private readonly waiters: Waiters;
  private readonly history: KindHistory;
  private readonly stalls: StallMonitor;
  private closed = false;

  constructor(options: HubOptions) {
    const store = (this.store = options.store);
    const bus = (this.bus = options.bus ?? new MemoryBus());
    const metrics = options.metrics;
    this.replayLimit = options.replayLimit ?? hubDefaults.replayLimit;
    this.now = options.now ?? Date.now;
    const isoNow = () => this.isoNow();
    const onError = options.onError ?? (() => {});
    const stall: StallOptions = { ...stallDefaults, ...options.stall };
    this.history = new KindHistory({
      store,
      refreshMs: options.historyRefreshMs ?? hubDefaults.historyRefreshMs,
      now: this.now,
      onError,
    });

    this.topics = new Topics(bus);
    this.cache = new JobCache({
      store,
      metrics,
      cacheSize: options.cacheSize ?? hubDefaults.cacheSize,
      shared: bus.shared,
      isFollowed: (id) => this.dispatch.isFollowed(id),
      isWaitedOn: (id) => this.waiters.has(id),
    });
    this.commits = new GroupCommit({
      store,
      metrics,
      cache: this.cache,
      beforeCommit: (batch) => this.rollups.foldInto(batch),
      publish: (d) => {
        // Committed here: this process watches the job for stalls and learns from it.
        this.stalls.note(d.state);
        if (d.kind === 'completed') void this.history.learnFrom(d.state);
        bus.publish(d);
      },
      // The connections that a commit's deliveries reached are written now, together,
      // rather than a turn of the event loop later.
      published: writeNow,
    });
    this.rollups = new Rollups({ cache: this.cache, commits: this.commits, history: this.history, isoNow });
    this.writes = new Writes({
      store,
      cache: this.cache,
      commits: this.commits,
      rollups: this.rollups,
      history: this.history,
      stall,
      metrics,
      maxJsonBytes: options.maxJsonBytes ?? hubDefaults.maxJsonBytes,
      publish: (d) => bus.publish(d),
      isoNow,
      assertOpen: () => this.assertOpen(),
    });
    this.dispatch = new OrderedDispatch({
      store,
      topics: this.topics,
      metrics,
      replayLimit: this.replayLimit,
      trackSize: options.trackSize ?? hubDefaults.trackSize,
      idleCheckMs: options.idleCheckMs ?? (bus.shared ? hubDefaults.idleCheckMs : 0),
      dispatched: (d) => this.dispatched(d),
      deletion: (state) => deletion(state, this.isoNow()),
    });
    this.waiters = new Waiters({
      shared: bus.shared,
      watch: (jobId) => this.watch(jobId),
      committed: (jobId) => this.cache.readFresh(jobId),
      cached: (jobId) => this.cache.get(jobId)?.committed,
    });

    this.stalls = new StallMonitor({
      history: this.history,
      options: stall,
      now: this.now,
      markStalled: (jobId, now) => this.writes.markStalled(jobId, now),
      onError,
    });
    this.stalls.start();

    bus.onDelivery((d, sentAt) => this.dispatch.receive(d, sentAt));
    bus.onResync((lostSince) => {
      this.dispatch.resync(lostSince).catch(() => {
        // The store is down too: the idle check and later gaps catch up.
      });
    });
  }

  // -------------------------------------------------------------------------
  // Writes

  /** Create a job. Its id is generated when absent. */
  createJob(input: CreateJobInput): Promise<JobState> {
    return this.writes.createJob(input.id ?? randomUUID(), input);
  }

  /**
   * Apply reported events to one job, in order and all-or-nothing. Events whose
   * idempotency key was already applied are skipped. Resolves after the commit.
   */
  publish(jobId: string, inputs: readonly EventInput[]): Promise<PublishResult> {
    return this.writes.publish(jobId, inputs);
  }

  /**
   * Events of many jobs in one call: each job's events are applied in order and
   * all-or-nothing; one job's error does not fail the others.
   */
  publishMany(items: readonly PublishManyItem[]): Promise<PublishManyResult[]> {
    return this.writes.publishMany(items);
  }

  /**
   * A cancel, pause or resume request. Cancelling a parent cancels its unfinished
   * descendants too. Resolves with the job's state after the request.
   */
  control(jobId: string, action: ControlAction, reason: string | undefined, by: string): Promise<JobState> {
    return this.writes.control(jobId, action, reason, by);
  }

  /**
   * Delete a job with its descendants and their logs. Subscribers receive a final
   * `deleted` event; later reports for these ids are refused with HW_ERR_JOB_DELETED.
   */
  deleteJob(jobId: string): Promise<void> {
    return this.writes.deleteJob(jobId);
  }

  /**
   * Look for stalled jobs now (the hub also does every `stall.checkMs`): a running
   * job this process writes that has been quiet past its threshold gets a
   * `stalled` event. Resolves with the number of jobs marked.
   */
  checkStalls(): Promise<number> {
    return this.stalls.check();
  }

  /** What the hub has learned about a job kind's durations; null before its first completed job. */
  async kindSummary(kind: string): Promise<KindSummary | null> {
    await this.history.settled();
    return this.history.load(kind);
  }

  /** Resolves when every write accepted so far is committed (or failed). */
  flush(): Promise<void> {
    return this.commits.flush();
  }

  // -------------------------------------------------------------------------
  // Reads (committed data only)

  getJob(id: string): Promise<JobState | null> {
    return this.cache.readFresh(id);
  }

  async getEvents(id: string, since: number, limit: number): Promise<JobEvent[]> {
    const committed = await this.cache.readFresh(id);
    if (!committed) throw notFound(id);
    const events = await this.store.getEvents(id, since, limit);
    // The store may already hold a commit whose deliveries are not out yet; never
    // show a reader more than subscribers have been sent.
    const last = committed.seq;
    return events.length > 0 && events[events.length - 1]!.seq > last
      ? events.filter((e) => e.seq <= last)
      : events;
  }

  /** A page of jobs as the store has them (`GET /v1/jobs`). */
  listJobs(query: ListJobsQuery): Promise<ListJobsPage> {
    return this.store.listJobs(query);
  }

  /**
   * A page of jobs for a scope subscriber that has just subscribed: read once the
   * bus listens, each job followed from the state listed, or given in the later
   * state the bus brought while the page was read (see `OrderedDispatch.follow`).
   */
  async snapshotJobs(query: ListJobsQuery): Promise<ListJobsPage> {
    await this.topics.busReady();
    const page = await this.store.listJobs(query);
    page.jobs = page.jobs.map((state) => this.dispatch.follow(state));
    return page;
  }

  /**
   * What a subscriber that saw `since` missed: every event after it when the log
   * still holds them all and they fit the replay limit, else only the state.
   */
  async resume(jobId: string, since: number | undefined): Promise<ResumeResult | null> {
    await this.topics.busReady();
    const read = await this.cache.readFresh(jobId);
    if (!read) return null;
    const state = this.dispatch.follow(read);
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
  waitForChange(
    jobId: string,
    since: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<JobState | null> {
    return this.waiters.waitForChange(jobId, since, timeoutMs, signal);
  }

  // -------------------------------------------------------------------------
  // Subscriptions

  subscribe(topic: Topic, subscriber: Subscriber): void {
    this.topics.add(topic, subscriber);
  }

  unsubscribe(topic: Topic, subscriber: Subscriber): void {
    // A job topic's track goes with it; tracks of a scope's jobs are dropped by
    // the idle check or the size bound, rather than by a walk over all of them here.
    if (this.topics.remove(topic, subscriber) && 'job' in topic) this.dispatch.unfollow(topic.job);
  }

  /** Number of distinct topics with at least one subscriber. */
  get topicCount(): number {
    return this.topics.size;
  }

  /** Listen to a job's topic (for a long-poll); resolves once the bus listens, with the way to stop. */
  private async watch(jobId: string): Promise<() => void> {
    const listener: Subscriber = { deliver() {} };
    this.subscribe({ job: jobId }, listener);
    await this.topics.busReady();
    return () => this.unsubscribe({ job: jobId }, listener);
  }

  /** A delivery reached its subscribers: keep the cache in step and answer long-polls. */
  private dispatched(d: Delivery): void {
    if (d.kind === 'deleted') this.cache.forget(d.job);
    else if (this.bus.shared) this.cache.refresh(d.state);
    this.waiters.wake(d.job);
  }

  // -------------------------------------------------------------------------
  // Lifecycle

  /** The time stamped on new events; the events of one millisecond share the string. */
  private isoNow(): string {
    const ms = this.now();
    if (ms !== this.isoMs) {
      this.isoMs = ms;
      this.iso = new Date(ms).toISOString();
    }
    return this.iso;
  }

  private assertOpen(): void {
    if (this.closed) throw new HeadwayError(ErrorCode.SHUTTING_DOWN, 'the hub is shutting down');
  }

  /** Stop accepting writes and wait for every accepted one to be committed. */
  async close(): Promise<void> {
    this.closed = true;
    this.stalls.stop();
    this.dispatch.close();
    await this.flush();
    await this.history.settled();
    this.waiters.wakeAll();
  }

  stats(): {
    cachedJobs: number;
    topics: number;
    waiters: number;
    trackedJobs: number;
    watchedForStalls: number;
  } {
    return {
      cachedJobs: this.cache.size,
      topics: this.topics.size,
      waiters: this.waiters.size,
      trackedJobs: this.dispatch.size,
      watchedForStalls: this.stalls.size,
    };
  }
}
