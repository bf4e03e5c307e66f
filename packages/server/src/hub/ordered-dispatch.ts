import type { JobState } from '@headway/protocol';
import { BoundedMap } from '../bounded-map.js';
import { Delivery } from '../delivery.js';
import type { Metrics } from '../metrics.js';
import { SnapshotHold } from '../snapshot-hold.js';
import { isTerminal, reduce } from '../state/index.js';
import type { Store } from '../store/store.js';
import type { Topics } from './topics.js';

/** Events read from the store per backfill query. */
const BACKFILL_PAGE = 500;
/** Pause before a backfill that failed (the store is down) is tried again, ms. */
const BACKFILL_RETRY_MS = 1_000; // 1 second

type BackfillReason = 'gap' | 'idle' | 'resync' | 'retry';

/** Deliveries of one job held back during its backfill; the store has any beyond. */
const MAX_HELD = 10_000;

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
  /** Deliveries held back while missed events are read; past `MAX_HELD` the store has the rest. */
  hold: SnapshotHold<Delivery>;
}

function newTrack(seq: number, state: JobState | null, owner: string): Track {
  return {
    seq,
    state: state && kept(state),
    owner,
    activeAt: Date.now(),
    hold: new SnapshotHold<Delivery>(MAX_HELD),
  };
}

/**
 * The state a track keeps. A finished job's is a copy of its fields alone: the
 * state object itself carries, out of sight, what only a running job needs (its
 * ETA estimator) and its encodings, some 1.3 KB more, and the jobs of a watched
 * scope stay tracked long after they end (up to `trackSize`). Nothing folded onto
 * a finished state reads either.
 */
function kept(state: JobState): JobState {
  return isTerminal(state.status) ? { ...state } : state;
}

/** The track is at `seq`, with `state` (the job after it, or the state the next event folds onto). */
function moveTrack(track: Track, seq: number, state: JobState): void {
  track.seq = seq;
  track.state = kept(state);
}

/** Jobs compared with the store per query of an idle check or a resync. */
const CHECK_BATCH = 500;
/** Clock skew and commit time allowed for when a resync looks for jobs changed since the loss, ms. */
const RESYNC_SLACK_MS = 2_000; // 2 seconds
/** Most jobs of scope topics a resync catches up. */
const RESYNC_MAX_JOBS = 5_000;

/** What ordered dispatch needs of the hub. */
export interface OrderedDispatchContext {
  store: Pick<Store, 'getEvents' | 'getJobs' | 'isDeleted' | 'listJobs'>;
  topics: Pick<Topics, 'deliver' | 'covers' | 'watchesJob' | 'scopes'>;
  metrics:
    | Pick<
        Metrics,
        | 'busLagSeconds'
        | 'busDuplicates'
        | 'deliveriesDispatched'
        | 'backfills'
        | 'backfilledEvents'
        | 'storeReadSeconds'
        | 'busResyncs'
      >
    | undefined;
  /** Longest log a resync folds from the first event; a longer one starts at its latest. */
  replayLimit: number;
  /** Jobs tracked at most, besides those with job subscribers or a backfill under way. */
  trackSize: number;
  /** Quiet time after which a followed job is compared with the store, ms; 0: never. */
  idleCheckMs: number;
  /** Called after each delivery reached its subscribers. */
  dispatched(d: Delivery): void;
  /** The final delivery of a job deleted by another process. */
  deletion(state: JobState): Delivery;
}

/**
 * Dispatch in seq order per job, once each, with what the bus lost read back
 * from the store: a seq gap, a job quiet for `idleCheckMs` whose last deliveries
 * never came (the idle check), or everything after a bus reconnect (resync).
 */
export class OrderedDispatch {
  private readonly tracks: BoundedMap<string, Track>;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private idleTimer: NodeJS.Timeout | null = null;
  private checkingIdle = false;
  private closed = false;

  constructor(private readonly ctx: OrderedDispatchContext) {
    this.tracks = new BoundedMap(
      ctx.trackSize,
      undefined,
      (id, t) => t.hold.holding || ctx.topics.watchesJob(id),
    );
    if (ctx.idleCheckMs > 0) {
      this.idleTimer = setInterval(() => {
        this.checkIdle().catch(() => {});
      }, ctx.idleCheckMs);
      this.idleTimer.unref();
    }
  }

  /** A delivery from the bus (this process's commits included). */
  receive(d: Delivery, sentAt?: number): void {
    if (sentAt !== undefined)
      this.ctx.metrics?.busLagSeconds.observe(Math.max(0, Date.now() - sentAt) / 1000);
    let track = this.tracks.get(d.job);
    if (track === undefined) {
      this.dispatch(d);
      return;
    }
    if (track.hold.holding) {
      // Released in order when the backfill ends; when full, the next gap reads the rest.
      track.hold.offer(d);
      return;
    }
    if (d.kind === 'created' && track.seq > 1) {
      // The id was swept by retention and used again: a new job.
      this.tracks.delete(d.job);
      track = undefined;
    } else if (d.seq <= track.seq) {
      this.ctx.metrics?.busDuplicates.inc();
      return;
    } else if (d.seq > track.seq + 1) {
      holdFrom(track, [d]);
      this.backfill(d.job, track, 'gap');
      return;
    }
    this.dispatch(d, track);
  }

  private dispatch(d: Delivery, track = this.tracks.get(d.job)): void {
    // A delivery from another process comes without the state before it; the track has it.
    if (d.prev === undefined && track?.state && track.state.seq === d.seq - 1) d.prev = track.state;
    const sources = this.ctx.topics.deliver(d);
    this.ctx.metrics?.deliveriesDispatched.inc();
    if (d.kind === 'deleted') {
      this.tracks.delete(d.job);
    } else if (track) {
      moveTrack(track, d.seq, d.state);
      track.activeAt = Date.now();
    } else if (sources > 0) {
      this.follow(d.state);
    }
    this.ctx.dispatched(d);
  }

  /**
   * Start tracking a job that local subscribers watch, from `state`, which was
   * read for them. Returns the state to give them: the tracked one when the bus
   * has already dispatched a later one (a delivery that came while `state` was
   * read started the track), so that they miss none of the events before it.
   * A track of an earlier job of the same id (swept by retention) is not used.
   */
  follow(state: JobState): JobState {
    const track = this.tracks.get(state.id);
    if (track) {
      const tracked = track.state;
      const later = tracked !== null && tracked.seq > state.seq && tracked.createdAt === state.createdAt;
      return later ? tracked : state;
    }
    if (this.ctx.topics.covers(state.id, state.owner))
      this.tracks.set(state.id, newTrack(state.seq, state, state.owner));
    return state;
  }

  /** Stop tracking a job that no local subscriber watches any more (its topic lost its last one). */
  unfollow(id: string): void {
    const track = this.tracks.get(id);
    if (track && !this.ctx.topics.covers(id, track.owner)) this.tracks.delete(id);
  }

  /** Whether the bus keeps this process up to date on the job: followed, and no backfill under way. */
  isFollowed(id: string): boolean {
    const track = this.tracks.get(id);
    return track !== undefined && !track.hold.holding && this.ctx.topics.covers(id, track.owner);
  }

  get size(): number {
    return this.tracks.size;
  }

  // -------------------------------------------------------------------------
  // Backfill: read what the bus lost from the store

  /** Read the events after the track's seq from the store and dispatch them, then the held deliveries. */
  private backfill(job: string, track: Track, reason: BackfillReason): void {
    this.ctx.metrics?.backfills.inc({ reason });
    this.readMissed(job, track).then(
      (found) => this.release(job, track, found),
      () => {
        // The store is down: keep holding (bounded) and try again.
        const timer = setTimeout(() => {
          this.retryTimers.delete(timer);
          if (this.closed) return;
          if (this.tracks.get(job) === track) this.backfill(job, track, 'retry');
          else track.hold.release();
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
      const events = await this.ctx.store.getEvents(job, track.seq, BACKFILL_PAGE);
      this.ctx.metrics?.storeReadSeconds.observe({ op: 'events' }, (performance.now() - started) / 1000);
      for (const event of events) {
        // A hole in the log (swept by retention): what follows comes as it is.
        if (event.seq !== track.seq + 1) return found;
        found = true;
        this.ctx.metrics?.backfilledEvents.inc();
        this.dispatch(new Delivery(event, reduce(track.state, event), track.state), track);
      }
      if (events.length < BACKFILL_PAGE) return found;
    }
  }

  private release(job: string, track: Track, found: boolean): void {
    // Oldest seq first: the bus may deliver out of order.
    const held = track.hold.release().sort((a, b) => a.seq - b.seq);
    for (let i = 0; i < held.length; i++) {
      const d = held[i]!;
      if (d.seq <= track.seq) {
        this.ctx.metrics?.busDuplicates.inc();
        continue;
      }
      if (d.seq > track.seq + 1 && found) {
        // Committed after the store was read: read again. When the store had
        // nothing (a deleted job's final delivery), the gap cannot be filled.
        holdFrom(track, held.slice(i));
        this.backfill(job, track, 'gap');
        return;
      }
      this.dispatch(d, track);
    }
  }

  // -------------------------------------------------------------------------
  // Idle check and resync: compare followed jobs with the store

  /** Compare followed jobs with the store and backfill those it holds newer events of. */
  private async compare(ids: string[], reason: BackfillReason): Promise<void> {
    const started = performance.now();
    const states = await this.ctx.store.getJobs(ids);
    this.ctx.metrics?.storeReadSeconds.observe({ op: 'jobs' }, (performance.now() - started) / 1000);
    const found = new Set<string>();
    for (const state of states) {
      found.add(state.id);
      const track = this.tracks.get(state.id);
      if (!track || track.hold.holding || state.seq <= track.seq) continue;
      track.hold.start();
      this.backfill(state.id, track, reason);
    }
    for (const id of ids) {
      if (found.has(id)) continue;
      // Gone from the store: deleted by another process whose final delivery was lost.
      const track = this.tracks.get(id);
      if (!track?.state || track.hold.holding || !(await this.ctx.store.isDeleted(id))) continue;
      if (this.tracks.get(id) === track && !track.hold.holding)
        this.dispatch(this.ctx.deletion(track.state), track);
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
        if (!this.ctx.topics.covers(id, t.owner)) {
          this.tracks.delete(id);
          continue;
        }
        if (t.hold.holding || now - t.activeAt < this.ctx.idleCheckMs) continue;
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
  async resync(lostSince: number): Promise<void> {
    if (this.closed) return;
    this.ctx.metrics?.busResyncs.inc();
    const ids: string[] = [];
    for (const [id, t] of this.tracks) if (this.ctx.topics.covers(id, t.owner)) ids.push(id);
    for (let i = 0; i < ids.length; i += CHECK_BATCH)
      await this.compare(ids.slice(i, i + CHECK_BATCH), 'resync');
    const since = lostSince - RESYNC_SLACK_MS;
    const scopes = this.ctx.topics.scopes();
    if ('all' in scopes) {
      await this.catchUpScope(undefined, since);
      return;
    }
    for (const owner of scopes.owners) await this.catchUpScope(owner, since);
  }

  private async catchUpScope(owner: string | undefined, since: number): Promise<void> {
    let cursor: string | undefined;
    let seen = 0;
    for (;;) {
      const page = await this.ctx.store.listJobs({ owner, limit: CHECK_BATCH, cursor });
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
    if (!this.ctx.topics.covers(latest.id, latest.owner)) return;
    const track = newTrack(0, null, latest.owner);
    track.hold.start();
    this.tracks.set(latest.id, track);
    let found = false;
    try {
      const from = latest.seq <= this.ctx.replayLimit ? 0 : latest.seq - 1;
      const events = await this.ctx.store.getEvents(latest.id, from, latest.seq - from);
      if (from > 0 || events[0]?.seq !== 1) {
        moveTrack(track, latest.seq - 1, latest);
      }
      for (const event of events) {
        if (event.seq !== track.seq + 1) break;
        const state = event.seq === latest.seq ? latest : reduce(track.state, event);
        found = true;
        if (Date.parse(event.at) >= since) this.dispatch(new Delivery(event, state), track);
        else {
          moveTrack(track, event.seq, state);
        }
      }
    } finally {
      if (track.state === null) {
        moveTrack(track, latest.seq, latest);
      }
      this.release(latest.id, track, found);
    }
  }

  /** Stop the idle check and the backfill retries. */
  close(): void {
    this.closed = true;
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = null;
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
  }
}

/** Start holding a track's deliveries, beginning with `held`. */
function holdFrom(track: Track, held: readonly Delivery[]): void {
  track.hold.start();
  for (const d of held) track.hold.offer(d);
}
