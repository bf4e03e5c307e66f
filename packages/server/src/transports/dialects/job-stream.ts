/**
 * job-stream (seed 2, a music-transcription service):
 * `/api/v1/jobs/{job_id}/stream` streams `progress` messages, then one
 * `completed` or `error` message, after which the server closes the stream
 * (1000). A `heartbeat` comes every heartbeat interval (30 s by default); the
 * client answers `pong`. `GET /api/v1/jobs/{job_id}` serves the client's polling
 * fallback, and upgrades are limited per client IP (10 a minute by default).
 *
 * Credentials: `?token=`, else the session cookie; without either, only public
 * jobs can be watched. An invalid token is answered with an `error` message and
 * a 1008 close; a job that is missing, or not visible to the caller, with an
 * `error` message (code HW_ERR_NOT_FOUND) and a 1000 close, the same for both.
 */
import { ErrorCode, type JobState } from '@headway/protocol';
import type { Principal } from '../../auth.js';
import { BoundedMap } from '../../bounded-map.js';
import type { Delivery } from '../../delivery.js';
import { HeadwayError, notFound } from '../../errors.js';
import { canSee } from '../../policy.js';
import { DialectClose, DialectConnection, type Snapshot } from './base.js';
import { elapsedSeconds, reportedNumber, resultUrl, stageName, wholePercent } from './fields.js';
import type { Dialect, DialectEnv } from './index.js';
import { requestPrincipal } from './session.js';

export interface StreamError {
  message: string;
  retryable: boolean;
  stage: string | null;
  /** Headway's addition: the failure's code (`CANCELLED` for a cancelled job). */
  code: string;
}

/** Code of the `error` message for a cancelled job (the seed has no cancel message). */
export const CANCELLED_CODE = 'CANCELLED';
const WINDOW_MS = 60_000; // the limit is per minute
/** Client addresses whose window is remembered; the oldest are forgotten first. */
const MAX_TRACKED_ADDRESSES = 100_000;

/**
 * Connections per client IP per minute, in fixed one-minute windows (the
 * seed's `@limiter.limit("10/minute")`). Memory is bounded: past
 * `MAX_TRACKED_ADDRESSES` the oldest windows are forgotten.
 */
export class ConnectionRateLimiter {
  private readonly windows = new BoundedMap<string, { start: number; count: number }>(MAX_TRACKED_ADDRESSES);

  constructor(
    /** Connections per minute; 0 or less disables the limit. */
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Count one connection from `ip`; false when it is over the limit. */
  take(ip: string): boolean {
    if (this.perMinute <= 0) return true;
    const now = this.now();
    let window = this.windows.get(ip);
    if (window === undefined || now - window.start >= WINDOW_MS) {
      // Re-inserted, so that the map's order is the order in which windows started.
      this.windows.delete(ip);
      window = { start: now, count: 0 };
      this.windows.set(ip, window);
    }
    if (window.count >= this.perMinute) return false;
    window.count++;
    return true;
  }
}

/** The seed's job statuses: `processing` while running, and a cancelled job has `failed`. */
export function streamStatus(state: JobState): string {
  switch (state.status) {
    case 'running':
      return 'processing';
    case 'cancelled':
      return 'failed';
    default:
      return state.status;
  }
}

export function streamError(state: JobState, reason?: string): StreamError | null {
  if (state.status === 'failed' && state.error !== null) {
    return {
      message: state.error.message,
      retryable: state.error.retryable,
      stage: state.error.stage,
      code: state.error.code,
    };
  }
  if (state.status === 'cancelled') {
    return {
      message: reason ?? 'cancelled',
      retryable: false,
      stage: state.stage?.name ?? null,
      code: CANCELLED_CODE,
    };
  }
  return null;
}

function progressMessage(state: JobState, timestamp: string) {
  return {
    type: 'progress',
    job_id: state.id,
    progress: wholePercent(state.progress.percent),
    stage: stageName(state),
    message: state.message ?? '',
    timestamp,
  };
}

function completedMessage(state: JobState, timestamp: string) {
  const message: Record<string, unknown> = {
    type: 'completed',
    job_id: state.id,
    progress: 100,
    result_url: resultUrl(state, 'result_url', 'resultUrl', 'url') ?? null,
    duration_seconds: reportedNumber(state, 'duration_seconds') ?? elapsedSeconds(state),
    timestamp,
  };
  return message;
}

function errorMessage(jobId: string, error: StreamError, timestamp: string) {
  return { type: 'error', job_id: jobId, error, timestamp };
}

/** The message that ends the stream of a finished job, or null while it runs. */
function endMessage(state: JobState, timestamp: string, reason?: string): object | null {
  if (state.status === 'completed') return completedMessage(state, timestamp);
  const error = streamError(state, reason);
  return error === null ? null : errorMessage(state.id, error, timestamp);
}

function encode(d: Delivery): string | null {
  const { state, event } = d;
  switch (event.kind) {
    case 'progress':
    case 'stage':
    case 'children':
    case 'paused':
    case 'resumed':
      return JSON.stringify(progressMessage(state, event.at));
    case 'completed':
    case 'failed':
    case 'cancelled': {
      const end = endMessage(state, event.at, (event.data as { reason?: string }).reason);
      return end === null ? null : JSON.stringify(end);
    }
    case 'deleted':
      return JSON.stringify(
        errorMessage(
          d.job,
          { message: 'the job was deleted', retryable: false, stage: null, code: ErrorCode.JOB_DELETED },
          event.at,
        ),
      );
    default:
      return null;
  }
}

class JobStreamConnection extends DialectConnection {
  private get jobId(): string {
    return this.upgrade.params.job_id!;
  }

  async start(): Promise<void> {
    let principal: Principal | null;
    try {
      principal = await this.upgradePrincipal();
    } catch (err) {
      if (!(err instanceof HeadwayError)) throw err;
      this.end(err.code, 'invalid credentials', DialectClose.POLICY_VIOLATION);
      return;
    }
    if (!(await (principal === null ? this.admitAnonymous() : this.admitUser(principal)))) {
      this.end(ErrorCode.TOO_MANY_CONNECTIONS, 'too many connections', DialectClose.TRY_AGAIN_LATER);
      return;
    }
    this.principal = principal;
    const job = this.jobId;
    let finished = false;
    const snapshot = await this.subscribeWithSnapshot({ job }, async (): Promise<Snapshot | null> => {
      const state = await this.ctx.hub.getJob(job);
      if (state === null || !(state.public || (principal !== null && canSee(principal, state)))) return null;
      const end = endMessage(state, state.updatedAt);
      finished = end !== null;
      return { frames: [end ?? progressMessage(state, state.updatedAt)], seen: [[job, state.seq]] };
    });
    if (snapshot === null) this.end(ErrorCode.NOT_FOUND, notFound(job).message, DialectClose.NORMAL);
    else if (finished) this.closeAfterFlush(DialectClose.NORMAL, 'job finished');
  }

  protected override delivered(d: Delivery): void {
    // The stream ends with the job, as the seed's server breaks its loop.
    if (d.terminal) this.closeAfterFlush(DialectClose.NORMAL, 'job finished');
  }

  protected override onHeartbeat(): void {
    this.sendJson({ type: 'heartbeat', timestamp: new Date().toISOString() });
  }

  /** Answer with an `error` message, then close. */
  private end(code: string, text: string, closeCode: number): void {
    const error: StreamError = { message: text, retryable: false, stage: null, code };
    this.sendJson(errorMessage(this.jobId, error, new Date().toISOString()));
    this.closeAfterFlush(closeCode, text.slice(0, 100));
  }
}

export function jobStream({ ctx }: DialectEnv): Dialect {
  const limiter = new ConnectionRateLimiter(ctx.options.dialects.streamConnectionsPerMinute);
  return {
    endpoint: {
      path: '/api/v1/jobs/:job_id/stream',
      admit: (upgrade) => (limiter.take(upgrade.ip) ? null : 429),
      encode,
      connect: (init) => new JobStreamConnection(init),
    },
    routes: {
      // The polling fallback reads `progress` and `status` until completed or failed.
      '/api/v1/jobs/:job_id': async function pollJob(request) {
        const principal = await requestPrincipal(ctx, request.headers, request.query.token);
        const id = request.params.job_id;
        const state = await ctx.hub.getJob(id);
        if (state === null || !(state.public || (principal !== null && canSee(principal, state)))) {
          throw notFound(id);
        }
        return {
          job_id: state.id,
          status: streamStatus(state),
          progress: wholePercent(state.progress.percent),
          stage: stageName(state),
          message: state.message ?? '',
          result_url:
            state.status === 'completed'
              ? (resultUrl(state, 'result_url', 'resultUrl', 'url') ?? null)
              : null,
          duration_seconds:
            state.status === 'completed'
              ? (reportedNumber(state, 'duration_seconds') ?? elapsedSeconds(state))
              : null,
          error: streamError(state),
          created_at: state.createdAt,
          updated_at: state.updatedAt,
        };
      },
    },
  };
}
