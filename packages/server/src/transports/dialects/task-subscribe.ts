/**
 * task-subscribe (seed 1, a speech-to-text service): `/ws/progress/{taskId}`,
 * where the client sends `subscribe {taskId, token}` on open and `ping
 * {timestamp}` every 30 s, and receives `progress_update`, `stage_change`,
 * `time_estimate`, `complete` and `error` messages. The current state comes at
 * once on `subscribe`, so a client that reconnects (1 s, 2 s, 4 s … five times)
 * converges; after that it polls `GET /api/progress/{taskId}`.
 *
 * The connection is anonymous until a `subscribe` carries a valid token; a
 * missing or invalid token is answered with an `error` message and a 1008
 * close, as is a connection that subscribes to nothing within the
 * authentication timeout.
 */
import { ErrorCode, JOB_ID, type JobState } from '@headway/protocol';
import type { Principal } from '../../auth.js';
import type { Delivery } from '../../delivery.js';
import { HeadwayError, notFound } from '../../errors.js';
import { canSee } from '../../policy.js';
import { DialectClose, DialectConnection, type Snapshot } from './base.js';
import { elapsedSeconds, leftStage, reportedNumber, resultUrl, stageName } from './fields.js';
import type { Dialect, DialectEnv } from './index.js';
import { requestPrincipal } from './session.js';

export interface ProgressPayload {
  /** Overall percent 0–100 (two decimals). */
  percentage: number;
  stage: string;
  /** Progress `current` when the unit is bytes. */
  bytesProcessed?: number;
  /** Progress `total` when the unit is bytes. */
  bytesTotal?: number;
  /** Smoothed bytes per second, when the unit is bytes and there is an estimate. */
  processingSpeed?: number;
  /** Time of the event (ISO 8601). */
  timestamp: string;
}

export interface TimeEstimatePayload {
  /** Whole seconds remaining. */
  estimatedTimeRemaining: number;
  /** 0–1. */
  confidence: number;
}

export interface CompletePayload {
  resultUrl: string;
  /** Seconds from start to completion. */
  duration: number;
}

export interface TaskErrorPayload {
  code: string;
  message: string;
}

/** Code of the `error` message for a cancelled task (the seed has no cancel message). */
export const CANCELLED_CODE = 'CANCELLED';
const TIME_ESTIMATE_SHAPE = 'task-subscribe:time_estimate';

export function progressPayload(state: JobState, timestamp: string): ProgressPayload {
  const payload: ProgressPayload = {
    percentage: state.progress.percent,
    stage: stageName(state),
    timestamp,
  };
  if (state.progress.unit === 'bytes') {
    if (state.progress.current !== undefined) payload.bytesProcessed = state.progress.current;
    if (state.progress.total !== undefined) payload.bytesTotal = state.progress.total;
    if (state.eta?.unit === 'bytes') payload.processingSpeed = Math.round(state.eta.rate);
  }
  return payload;
}

export function timeEstimatePayload(state: JobState): TimeEstimatePayload | null {
  if (state.eta === null) return null;
  return { estimatedTimeRemaining: Math.round(state.eta.seconds), confidence: state.eta.confidence };
}

export function completePayload(state: JobState): CompletePayload {
  return {
    resultUrl: resultUrl(state, 'resultUrl', 'result_url', 'url') ?? '',
    duration: reportedNumber(state, 'duration') ?? elapsedSeconds(state),
  };
}

/** The `error` payload of a failed or cancelled task; null for any other status. */
export function errorPayload(state: JobState, reason?: string): TaskErrorPayload | null {
  if (state.status === 'failed' && state.error !== null) {
    return { code: state.error.code, message: state.error.message };
  }
  if (state.status === 'cancelled') return { code: CANCELLED_CODE, message: reason ?? 'cancelled' };
  return null;
}

function message(type: string, taskId: string, payload: unknown): string {
  return JSON.stringify({ type, taskId, payload });
}

function encode(d: Delivery): string | null {
  const { state, event } = d;
  switch (event.kind) {
    case 'progress':
    case 'children':
      return message('progress_update', d.job, progressPayload(state, event.at));
    case 'stage':
      return message('stage_change', d.job, {
        fromStage: leftStage(state, event.at),
        toStage: stageName(state),
        timestamp: event.at,
      });
    case 'completed':
      return message('complete', d.job, completePayload(state));
    case 'failed':
    case 'cancelled':
      return message('error', d.job, errorPayload(state, (event.data as { reason?: string }).reason));
    case 'deleted':
      return message('error', d.job, { code: ErrorCode.JOB_DELETED, message: 'the task was deleted' });
    default:
      return null;
  }
}

function encodeTimeEstimate(d: Delivery): string | null {
  const payload = timeEstimatePayload(d.state);
  return payload === null ? null : message('time_estimate', d.job, payload);
}

/** What a subscriber gets at once: the state, the estimate, and how the task ended if it has. */
function currentFrames(state: JobState): unknown[] {
  const frames: unknown[] = [
    { type: 'progress_update', taskId: state.id, payload: progressPayload(state, state.updatedAt) },
  ];
  const estimate = timeEstimatePayload(state);
  if (estimate !== null) frames.push({ type: 'time_estimate', taskId: state.id, payload: estimate });
  if (state.status === 'completed') {
    frames.push({ type: 'complete', taskId: state.id, payload: completePayload(state) });
  }
  const error = errorPayload(state);
  if (error !== null) frames.push({ type: 'error', taskId: state.id, payload: error });
  return frames;
}

type ClientMessage =
  | { type: 'subscribe'; taskId: string; token: string }
  | { type: 'unsubscribe'; taskId: string }
  | { type: 'get_state'; taskId: string }
  | { type: 'ping'; timestamp?: unknown };

class TaskSubscribeConnection extends DialectConnection {
  /** The task of the URL, named in errors that concern no task of their own. */
  private get pathTask(): string {
    return this.upgrade.params.taskId!;
  }

  async start(): Promise<void> {
    // The token arrives in the first `subscribe`; a connection that never sends one is closed.
    this.server.awaitAuth(this);
  }

  override authTimedOut(): void {
    this.sendError(this.pathTask, ErrorCode.UNAUTHORIZED, 'no subscribe with a token in time');
    this.close(DialectClose.POLICY_VIOLATION, 'no subscribe in time');
  }

  protected override async onMessage(text: string): Promise<void> {
    const parsed = parse(text);
    if (typeof parsed === 'string') {
      if (this.countInvalid()) this.sendError(this.pathTask, parsed, 'not a message of this protocol');
      return;
    }
    switch (parsed.type) {
      case 'subscribe':
        await this.subscribeTask(parsed.taskId, parsed.token);
        return;
      case 'unsubscribe':
        this.unlisten({ job: parsed.taskId });
        return;
      case 'get_state':
        await this.getState(parsed.taskId);
        return;
      case 'ping':
        this.sendJson({ type: 'pong', timestamp: parsed.timestamp });
        return;
    }
  }

  private async subscribeTask(taskId: string, token: string): Promise<void> {
    let principal: Principal;
    try {
      principal = await this.verify(token, false);
    } catch (err) {
      if (!(err instanceof HeadwayError)) throw err;
      this.sendError(taskId, err.code, err.message);
      this.close(DialectClose.POLICY_VIOLATION, 'invalid token');
      return;
    }
    if (this.principal === null) {
      if (!(await this.admitUser(principal))) {
        this.sendError(taskId, ErrorCode.TOO_MANY_CONNECTIONS, 'too many connections for this user');
        this.close(DialectClose.TRY_AGAIN_LATER, 'too many connections for this user');
        return;
      }
      this.server.authenticated(this);
    }
    this.principal = principal;
    if (this.isListening({ job: taskId })) {
      await this.getState(taskId);
      return;
    }
    const max = this.ctx.options.limits.maxSubscriptions;
    if (this.topicCount >= max) {
      this.sendError(taskId, ErrorCode.TOO_MANY_SUBSCRIPTIONS, `at most ${max} subscriptions per connection`);
      return;
    }
    const snapshot = await this.subscribeWithSnapshot({ job: taskId }, async (): Promise<Snapshot | null> => {
      const state = await this.ctx.hub.getJob(taskId);
      if (state === null || !canSee(principal, state)) return null;
      return { frames: currentFrames(state), seen: [[taskId, state.seq]] };
    });
    if (snapshot === null) this.sendError(taskId, ErrorCode.NOT_FOUND, notFound(taskId).message);
  }

  private async getState(taskId: string): Promise<void> {
    const principal = this.principal;
    if (principal === null) {
      this.sendError(taskId, ErrorCode.UNAUTHORIZED, 'subscribe with a token first');
      return;
    }
    const state = await this.ctx.hub.getJob(taskId);
    if (state === null || !canSee(principal, state)) {
      this.sendError(taskId, ErrorCode.NOT_FOUND, notFound(taskId).message);
      return;
    }
    this.sendJson({ type: 'progress_update', taskId, payload: progressPayload(state, state.updatedAt) });
  }

  protected override delivered(d: Delivery): void {
    if (d.kind !== 'progress' && d.kind !== 'children') return;
    // Estimates are advice: a connection that is behind skips them, the next one replaces it.
    if (this.outbox.queuedBytes > this.ctx.options.limits.outboxSoftBytes / 2) return;
    const bytes = d.encode(TIME_ESTIMATE_SHAPE, encodeTimeEstimate);
    if (bytes !== null) this.sendBytes(bytes);
  }

  private sendError(taskId: string, code: string, text: string): void {
    this.sendJson({ type: 'error', taskId, payload: { code, message: text } });
  }
}

/** The message, or the error code for a frame that is not one. */
function parse(text: string): ClientMessage | ErrorCode {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return ErrorCode.BAD_JSON;
  }
  if (typeof value !== 'object' || value === null) return ErrorCode.INVALID_MESSAGE;
  const m = value as Record<string, unknown>;
  const taskOk = typeof m.taskId === 'string' && JOB_ID.test(m.taskId);
  switch (m.type) {
    case 'subscribe':
      return taskOk && typeof m.token === 'string' ? (m as ClientMessage) : ErrorCode.INVALID_MESSAGE;
    case 'unsubscribe':
    case 'get_state':
      return taskOk ? (m as ClientMessage) : ErrorCode.INVALID_MESSAGE;
    case 'ping':
      return m as ClientMessage;
    default:
      return ErrorCode.UNKNOWN_TYPE;
  }
}

export function taskSubscribe({ ctx }: DialectEnv): Dialect {
  return {
    endpoint: { path: '/ws/progress/:taskId', encode, connect: (init) => new TaskSubscribeConnection(init) },
    routes: {
      // The polling fallback: everything the WebSocket messages carry, in one answer.
      '/api/progress/:taskId': async function pollTask(request) {
        const principal = await requestPrincipal(ctx, request.headers);
        if (principal === null) throw new HeadwayError(ErrorCode.UNAUTHORIZED, 'missing credentials');
        const { taskId } = request.params;
        const state = await ctx.hub.getJob(taskId);
        if (state === null || !canSee(principal, state)) throw notFound(taskId);
        return {
          taskId,
          status: state.status,
          payload: progressPayload(state, state.updatedAt),
          timeEstimate: timeEstimatePayload(state),
          complete: state.status === 'completed' ? completePayload(state) : null,
          error: errorPayload(state),
        };
      },
    },
  };
}
