/**
 * user-dashboard (seed 4, a video-list importer): `/api/ws/progress?token=` pushes
 * `{job_id, status, progress, current_video, total_videos, message, video_id,
 * error}` for every change to one of the user's jobs; the client keeps the
 * latest per `job_id`. On reconnect it reads what it missed from `GET
 * /api/jobs/{job_id}/progress-history?since=<ISO time>`.
 *
 * A batch of videos is a parent job with a child job per video: the parent's
 * message counts the finished children (`current_video` of `total_videos`);
 * the children themselves are not sent, since the seed's dashboard shows one
 * entry per batch. A job that reports counts in `videos` works the same way
 * without children.
 *
 * A missing or invalid token closes with 1008; a user past the dashboard's
 * connection limit (5 by default) is closed with 1013. A cancelled or deleted
 * job sends status `cancelled`.
 */
import { ErrorCode, type JobEvent, type JobState } from '@headway/protocol';
import { ConnectionCounter } from '../../context.js';
import type { Delivery } from '../../delivery.js';
import { HeadwayError, notFound } from '../../errors.js';
import { canSee } from '../../policy.js';
import { reduce } from '../../state/index.js';
import { DialectClose, DialectConnection, type DialectInit } from './base.js';
import { reportedString, UNSHOWN_KINDS, wholePercent } from './fields.js';
import type { Dialect, DialectEnv } from './index.js';
import { requestPrincipal } from './session.js';

export type DashboardStatus = 'pending' | 'processing' | 'completed' | 'failed' | 'cancelled';

export interface DashboardUpdate {
  job_id: string;
  status: DashboardStatus;
  /** Whole percent 0–100. */
  progress: number;
  /** Videos done: finished children, or progress `current` in `videos`. */
  current_video: number;
  total_videos: number;
  message: string;
  /** The job's `video_id` (metadata or result), when the worker reports one. */
  video_id?: string;
  /** The failure's message, else null. */
  error: string | null;
  /** Time of the change, ms since epoch (the seed's client ages entries by it). */
  timestamp: number;
}

/** Most entries in one progress-history answer: the latest. */
export const HISTORY_LIMIT = 1000;
/** Longest log folded to compute a history; longer jobs answer with their current state. */
const HISTORY_FOLD_LIMIT = 10_000;
const EVENTS_PAGE = 1000;
const COUNTED_UNITS: ReadonlySet<string | undefined> = new Set([undefined, 'videos', 'video']);

export function dashboardStatus(state: JobState): DashboardStatus {
  switch (state.status) {
    case 'queued':
      return 'pending';
    case 'running':
    case 'paused':
      return 'processing';
    default:
      return state.status;
  }
}

function videoCounts(state: JobState): { current: number; total: number } {
  const c = state.children;
  if (c !== null) return { current: c.completed + c.failed + c.cancelled, total: c.total };
  const p = state.progress;
  if (COUNTED_UNITS.has(p.unit) && p.total !== undefined) return { current: p.current ?? 0, total: p.total };
  return { current: 0, total: 0 };
}

export function dashboardUpdate(state: JobState, at: string = state.updatedAt): DashboardUpdate {
  const counts = videoCounts(state);
  let message = state.message ?? '';
  if (state.status === 'failed' && state.error !== null) message = `Failed: ${state.error.message}`;
  else if (state.status === 'cancelled') message = 'Cancelled';
  const update: DashboardUpdate = {
    job_id: state.id,
    status: dashboardStatus(state),
    progress: wholePercent(state.progress.percent),
    current_video: counts.current,
    total_videos: counts.total,
    message,
    error: state.status === 'failed' ? (state.error?.message ?? null) : null,
    timestamp: Date.parse(at),
  };
  const video = reportedString(state, 'video_id', 'videoId');
  if (video !== undefined) update.video_id = video;
  return update;
}

function deletedUpdate(state: JobState, at: string): DashboardUpdate {
  return { ...dashboardUpdate(state, at), status: 'cancelled', message: 'Deleted' };
}

function encode(d: Delivery): string | null {
  const { state, event } = d;
  if (UNSHOWN_KINDS.has(event.kind)) return null;
  return JSON.stringify(
    event.kind === 'deleted' ? deletedUpdate(state, event.at) : dashboardUpdate(state, event.at),
  );
}

class UserDashboardConnection extends DialectConnection {
  constructor(
    init: DialectInit,
    private readonly perUser: ConnectionCounter,
  ) {
    super(init);
  }

  async start(): Promise<void> {
    const principal = await this.upgradePrincipalOrNull();
    // An API key has no user, hence no dashboard.
    if (principal === null || principal.kind !== 'user') {
      this.close(DialectClose.POLICY_VIOLATION, 'invalid token');
      return;
    }
    const user = principal.user;
    if (!(await this.admit(this.perUser, user)) || !(await this.admitUser(principal))) {
      this.close(DialectClose.TRY_AGAIN_LATER, 'too many connections for this user');
      return;
    }
    this.principal = principal;
    await this.subscribeUser(
      user,
      (s) => s.parent === null && canSee(principal, s),
      (s) => dashboardUpdate(s),
    );
  }

  protected override accepts(d: Delivery): boolean {
    // Children reach the dashboard through their parent's counts.
    return d.state.parent === null && canSee(this.principal!, d.state);
  }
}

/**
 * The dashboard entries of a job after `sinceMs`, oldest first: its log folded
 * from the start, one entry per change the dashboard shows. When the log is too
 * long or no longer starts at the beginning (retention), the current state only.
 */
async function history(ctx: DialectEnv['ctx'], state: JobState, sinceMs: number) {
  const entries: (DashboardUpdate & { created_at: string })[] = [];
  const add = (s: JobState, e: Pick<JobEvent, 'kind' | 'at'>) => {
    if (UNSHOWN_KINDS.has(e.kind) || !(Date.parse(e.at) > sinceMs)) return;
    entries.push({ ...dashboardUpdate(s, e.at), created_at: e.at });
    if (entries.length > HISTORY_LIMIT) entries.shift();
  };
  const current = () => {
    add(state, { kind: 'progress', at: state.updatedAt });
    return entries;
  };
  if (state.seq > HISTORY_FOLD_LIMIT) return current();
  let folded: JobState | null = null;
  let since = 0;
  while (since < state.seq) {
    const events = await ctx.hub.getEvents(state.id, since, EVENTS_PAGE);
    if (events.length === 0) break;
    for (const event of events) {
      if (event.seq !== since + 1) return current();
      folded = reduce(folded, event);
      since = event.seq;
      add(folded, event);
    }
  }
  return folded === null ? current() : entries;
}

export function userDashboard({ ctx }: DialectEnv): Dialect {
  const perUser = new ConnectionCounter(ctx.options.dialects.dashboardConnectionsPerUser);
  return {
    endpoint: {
      path: '/api/ws/progress',
      encode,
      connect: (init) => new UserDashboardConnection(init, perUser),
    },
    routes: {
      '/api/jobs/:job_id/progress-history': async function progressHistory(request) {
        const principal = await requestPrincipal(ctx, request.headers, request.query.token);
        if (principal === null) throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'missing credentials');
        const { since } = request.query;
        const sinceMs = since === undefined || since === '' ? Number.NEGATIVE_INFINITY : Date.parse(since);
        if (Number.isNaN(sinceMs)) {
          throw new HeadwayError(ErrorCode.INVALID_VALUE, 'since must be an ISO 8601 time');
        }
        const id = request.params.job_id;
        const state = await ctx.hub.getJob(id);
        if (state === null || !canSee(principal, state)) throw notFound(id);
        return history(ctx, state, sinceMs);
      },
    },
  };
}
