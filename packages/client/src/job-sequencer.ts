/**
 * Applies what the hub sends, per job: every event once, in seq order. Events
 * ahead of a gap wait while the gap is filled from the history endpoint; when
 * it cannot be filled, the job is reset to the newest state known.
 */
import type { JobEvent, JobState } from '@headway/protocol';
import type { ClientParts } from './client-parts.js';
import type { JobEventContext } from './types.js';

/** Per job: what was applied, and what waits for a gap to be filled. */
export interface Track {
  id: string;
  /** Seq of the last event applied; 0 before the first state. */
  seq: number;
  state: JobState | null;
  /** The newest state seen ahead of `seq`: what events without a state of their own carry. */
  target: JobState | null;
  /** Events ahead of a gap, by seq, with their state when they came with one. */
  pending: Map<number, [JobEvent, JobState | undefined]>;
  filling: boolean;
}

/** Events held per job while a gap is filled; past it the job is reset to its newest state. */
const MAX_PENDING = 1000;
/** History pages read to fill one gap before giving up. */
const MAX_FILL_PAGES = 20;
/** Events read per history page while filling a gap. */
const FILL_PAGE_SIZE = 1000;
/** Jobs tracked; past it the oldest without a handle are forgotten. */
const MAX_TRACKS = 10_000;

export interface JobSequencer {
  /** What is known per job, oldest first. */
  readonly tracks: ReadonlyMap<string, Track>;
  /** An event, with the job's state after it when the hub sent one. */
  ingest(event: JobEvent, state?: JobState): void;
  /** A state with the events that lead to it (a `subscribed` message). */
  absorb(state: JobState, events: JobEvent[], recovered: boolean): void;
  /** Newest seq known of a job, applied or not (0: none). */
  seen(id: string): number;
  /** Forget the jobs that are no longer watched. */
  forgetUnwatched(): void;
}

export function createJobSequencer(parts: Pick<ClientParts, 'subscriptions' | 'rest'>): JobSequencer {
  const tracks = new Map<string, Track>();

  function track(id: string, s?: JobState | null): Track | undefined {
    let t = tracks.get(id);
    if (!t && parts.subscriptions.watched(id, s)) {
      tracks.set(id, (t = { id, seq: 0, state: null, target: null, pending: new Map(), filling: false }));
      if (tracks.size > MAX_TRACKS) {
        for (const old of tracks.keys()) {
          // A job a handle holds is never forgotten to make room.
          if (!parts.subscriptions.held(old)) {
            tracks.delete(old);
            break;
          }
        }
      }
    }
    return t;
  }

  function notify(t: Track, ev: JobEventContext | null, reset = false): void {
    parts.subscriptions.deliver(t.id, t.state!, ev, reset);
  }

  function apply(t: Track, e: JobEvent, s: JobState | undefined): void {
    t.seq = e.seq;
    t.pending.delete(e.seq);
    // An event without a state of its own takes the nearest later state known.
    if (!s) {
      s = t.target ?? t.state!;
      for (const [, p] of t.pending.values()) if (p && p.seq < s.seq) s = p;
    }
    t.state = s;
    if (t.target && t.target.seq <= e.seq) t.target = null;
    notify(t, { event: e, state: s });
  }

  /** Apply the events that waited for the ones just applied. */
  function drain(t: Track): void {
    for (let p = t.pending.get(t.seq + 1); p; p = t.pending.get(t.seq + 1)) apply(t, p[0], p[1]);
  }

  function ingest(e: JobEvent, s?: JobState): void {
    const t = track(e.job, s);
    if (!t || e.seq <= t.seq) return;
    if (!t.state) {
      // First sight of the job, through an event: start from its state.
      if (s) apply(t, e, s);
      return;
    }
    if (s && s.seq > (t.target?.seq ?? 0)) t.target = s;
    if (e.seq === t.seq + 1 && !t.filling) {
      apply(t, e, s);
      drain(t);
    } else {
      t.pending.set(e.seq, [e, s]);
      if (t.pending.size > MAX_PENDING) reset(t, t.target ?? s!);
      else fill(t);
    }
  }

  function absorb(s: JobState, evs: JobEvent[], recovered: boolean): void {
    const t = track(s.id, s);
    if (!t) return;
    if (!t.state) {
      t.seq = s.seq;
      t.state = s;
      notify(t, null);
      return;
    }
    if (s.seq <= t.seq) return;
    if (s.seq > (t.target?.seq ?? 0)) t.target = s;
    for (const e of evs) ingest(e);
    if (t.seq < s.seq) {
      if (recovered) fill(t);
      else reset(t, s);
    }
  }

  /** Jump to `s`: the events in between are lost to this client. */
  function reset(t: Track, s: JobState): void {
    t.seq = s.seq;
    t.state = s;
    t.target = null;
    for (const seq of t.pending.keys()) if (seq <= s.seq) t.pending.delete(seq);
    notify(t, null, true);
    drain(t);
  }

  /** Fill a gap from the history endpoint; if that fails, reset to the newest state. */
  async function fill(t: Track): Promise<void> {
    if (t.filling) return;
    t.filling = true;
    const gap = () => t.pending.size > 0 || (t.target?.seq ?? 0) > t.seq;
    try {
      for (let page = 0; page < MAX_FILL_PAGES && gap(); page++) {
        const before = t.seq;
        const { events: log } = await parts.rest.history(t.id, { since: t.seq, limit: FILL_PAGE_SIZE });
        // Events past the newest state known come later with their own state.
        const upTo = Math.max(t.target?.seq ?? 0, ...t.pending.keys());
        for (const e of log) if (e.seq === t.seq + 1 && e.seq <= upTo) apply(t, e, t.pending.get(e.seq)?.[1]);
        drain(t);
        if (t.seq === before) break;
      }
    } catch {
      // Unreachable history: the reset below still converges on the newest state.
    }
    t.filling = false;
    if (gap() && t.target) reset(t, t.target);
  }

  return {
    tracks,
    ingest,
    absorb,
    seen(id) {
      const t = tracks.get(id);
      return Math.max(t?.seq ?? 0, t?.target?.seq ?? 0);
    },
    forgetUnwatched() {
      for (const [id, t] of tracks) if (!parts.subscriptions.watched(id, t.state)) tracks.delete(id);
    },
  };
}
