/**
 * What the client watches: the jobs of its handles, the scopes of its
 * collections and, when this tab leads a shared connection, what the other tabs
 * watch. Transports subscribe to `wanted()`, resuming from `since()`.
 */
import type { JobState } from '@headway/protocol';
import { TERMINAL_STATUSES } from '@headway/protocol/codes';
import type { ClientParts } from './client-parts.js';
import type { HeadwayClientError } from './errors.js';
import { type Core, JobCollection, JobHandle } from './handles.js';
import type { Want } from './transport.js';
import type { JobEventContext, Scope } from './types.js';

const TERMINAL = new Set<string>(TERMINAL_STATUSES);
/** Jobs whose seqs a scope subscription sends to resume from. */
const MAX_SCOPE_SINCE = 500;

/** Whether the job `s` belongs to `scope` for the user `user`. */
export function inScope(s: JobState, scope: Scope | undefined, user: string | null): boolean {
  return scope === 'all' || (scope === 'user' && s.owner === user);
}

/** What one tab watches: its handles' jobs and its collections' scopes. */
export interface Watching {
  jobs: string[];
  scopes: Scope[];
}

export interface Subscriptions extends Watching {
  /** A new handle on job `id`. */
  watchJob(id: string, core: Core): JobHandle;
  /** A new collection of `scope`, with the jobs of it already known. */
  watchScope(scope: Scope, limit: number, core: Core): JobCollection;
  /** Drop a handle or collection. */
  release(target: JobHandle | JobCollection): void;
  /** The subscriptions wanted now, by key (`j:<job>`, `s:<scope>`). */
  wanted(): Map<string, Want>;
  /** Where a subscription resumes: the last seq of a job, or seqs by job for a scope. */
  since(want: Want): number | Record<string, number> | undefined;
  /** Whether the job is watched (for scopes, its state decides). */
  watched(id: string, state: JobState | null | undefined): boolean;
  /** Whether a handle holds the job. */
  held(id: string): boolean;
  /** Hand a job's new state to its handles and collections. */
  deliver(id: string, state: JobState, event: JobEventContext | null, reset: boolean): void;
  /** A subscription (`id` its key) failed. */
  fail(id: string, error: HeadwayClientError): void;
  /** What is watched changed (here, or in another tab): tell the transport. */
  changed(): void;
  /** Compute `wanted()` afresh, without telling anyone (a new leader subscribes to all of it anyway). */
  invalidate(): void;
}

export function createSubscriptions(
  parts: Pick<ClientParts, 'connection' | 'sequencer' | 'tabs' | 'report'>,
): Subscriptions {
  const handles = new Map<string, Set<JobHandle>>();
  const collections = new Set<JobCollection>();
  let want: Map<string, Want> | null = null;
  let syncQueued = false;

  const inUserScope = (s: JobState, scope: Scope | undefined) => inScope(s, scope, parts.connection.user);

  function wanted(): Map<string, Want> {
    if (want) return want;
    const w = (want = new Map());
    const addJob = (job: string) => w.set(`j:${job}`, { key: `j:${job}`, job });
    const addScope = (scope: Scope) => w.set(`s:${scope}`, { key: `s:${scope}`, scope });
    for (const job of handles.keys()) addJob(job);
    for (const c of collections) addScope(c.scope);
    for (const r of parts.tabs.otherTabs()) {
      r.jobs.forEach(addJob);
      r.scopes.forEach(addScope);
    }
    return w;
  }

  /** Connect if idle; tell the transport (or the leading tab) once per tick; forget unwatched jobs. */
  function changed(): void {
    want = null;
    const { connection, tabs, sequencer } = parts;
    if (connection.state === 'idle') connection.connect();
    if (syncQueued) return;
    syncQueued = true;
    queueMicrotask(() => {
      syncQueued = false;
      if (tabs.following()) tabs.announce();
      else connection.sync();
      sequencer.forgetUnwatched();
    });
  }

  return {
    get jobs() {
      return [...handles.keys()];
    },
    get scopes() {
      return [...new Set([...collections].map((c) => c.scope))];
    },
    watchJob(id, core) {
      const h = new JobHandle(id, core);
      let set = handles.get(id);
      if (!set) handles.set(id, (set = new Set()));
      set.add(h);
      changed();
      return h;
    },
    watchScope(scope, limit, core) {
      const c = new JobCollection(scope, limit, core);
      collections.add(c);
      // Jobs of the scope that are already known join at once.
      for (const t of parts.sequencer.tracks.values())
        if (t.state && inUserScope(t.state, scope)) c.put(t.state, null, false);
      changed();
      return c;
    },
    release(target) {
      if (target instanceof JobHandle) {
        const set = handles.get(target.id);
        if (!set?.delete(target)) return;
        if (!set.size) handles.delete(target.id);
      } else if (!collections.delete(target)) return;
      changed();
    },
    wanted,
    since(w) {
      const { tracks } = parts.sequencer;
      const seqs = parts.tabs.otherTabsSeqs();
      if (w.job) return tracks.get(w.job)?.seq || seqs.get(w.job) || undefined;
      const map: Record<string, number> = {};
      let n = 0;
      for (const t of tracks.values()) {
        if (
          n < MAX_SCOPE_SINCE &&
          t.state &&
          !TERMINAL.has(t.state.status) &&
          inUserScope(t.state, w.scope)
        ) {
          map[t.id] = t.seq;
          n++;
        }
      }
      for (const [job, seq] of seqs) if (!(job in map) && n++ < MAX_SCOPE_SINCE) map[job] = seq;
      return n ? map : undefined;
    },
    watched(id, s) {
      const w = wanted();
      return (
        w.has(`j:${id}`) ||
        (!!s && (w.has('s:all') || (w.has('s:user') && s.owner === parts.connection.user)))
      );
    },
    held: (id) => handles.has(id),
    deliver(id, s, ev, reset) {
      for (const h of handles.get(id) ?? []) h.put(s, ev, reset);
      for (const c of collections) if (inUserScope(s, c.scope) || c.get(id)) c.put(s, ev, reset);
    },
    fail(id, error) {
      if (id.startsWith('j:')) for (const h of handles.get(id.slice(2)) ?? []) h.fail(error);
      else if (id.startsWith('s:'))
        for (const c of collections)
          if (`s:${c.scope}` === id) c.fail(error);
          else parts.report(error);
    },
    changed,
    invalidate() {
      want = null;
    },
  };
}
