/**
 * What a scope subscriber starts from, on the native WebSocket (`subscribe` with
 * a `scope`) and on an SSE stream with `?scope=` alike.
 */
import type { JobEvent, JobState, JobStatus } from '@headway/protocol';
import type { Principal } from '../auth.js';
import type { Hub } from '../hub.js';
import { canSee } from '../policy.js';

/** Jobs listed in a scope subscription's `subscribed` message: active ones first, then the latest others. */
const SCOPE_JOBS_LIMIT = 100;
/** Jobs of a scope subscription's `since` that are resumed; beyond it the subscription is not recovered. */
const SCOPE_SINCE_LIMIT = 1000;
const ACTIVE: JobStatus[] = ['queued', 'running', 'paused'];

/** The jobs and missed events a scope subscription opens with, as in the `subscribed` message. */
export interface ScopeSnapshot {
  jobs: JobState[];
  events: JobEvent[];
  /** False when some job of `since` could not be resumed: the client takes `jobs` as the truth. */
  recovered: boolean;
}

/**
 * The scope's active jobs and the latest others, and for each `[job, seq]` of
 * `since` the events it missed, within one replay budget (`hub.replayLimit`).
 * `owner` narrows the scope to one user's jobs; undefined is every job the
 * principal may see.
 */
export async function scopeSnapshot(
  hub: Hub,
  principal: Principal,
  owner: string | undefined,
  since: readonly (readonly [string, number])[],
): Promise<ScopeSnapshot> {
  const p = principal;
  const inScope = (s: JobState) => (owner === undefined || s.owner === owner) && canSee(p, s);
  // A token limited to some jobs lists those; their children arrive live.
  const ids = p.kind === 'user' && !p.admin && p.jobs ? [...p.jobs] : undefined;
  const [active, recent] = await Promise.all([
    hub.snapshotJobs({ owner, ids, status: ACTIVE, limit: SCOPE_JOBS_LIMIT }),
    hub.snapshotJobs({ owner, ids, limit: SCOPE_JOBS_LIMIT }),
  ]);
  const jobs = new Map<string, JobState>();
  for (const s of [...active.jobs, ...recent.jobs]) {
    if (jobs.size >= SCOPE_JOBS_LIMIT) break;
    if (!jobs.has(s.id) && inScope(s)) jobs.set(s.id, s);
  }
  const events: JobEvent[] = [];
  let recovered = since.length <= SCOPE_SINCE_LIMIT;
  let budget = hub.replayLimit;
  for (const [job, seq] of since.slice(0, SCOPE_SINCE_LIMIT)) {
    const state = await hub.getJob(job);
    // Gone, or never visible: the client takes `jobs` as the truth.
    if (!state || !inScope(state)) {
      recovered = false;
      continue;
    }
    if (state.seq - seq > budget) {
      recovered = false;
      jobs.set(job, state);
      continue;
    }
    const result = await hub.resume(job, seq);
    if (!result) {
      // Deleted between the two reads.
      recovered = false;
      continue;
    }
    events.push(...result.events);
    budget -= result.events.length;
    recovered &&= result.recovered;
    jobs.set(job, result.state);
  }
  return { jobs: [...jobs.values()], events, recovered };
}
