/**
 * Stable error and close codes of the Headway protocol, and what a client does
 * after a close: `closeAction` (reconnect, refresh the token, or stop) and
 * `backoffDelay` (how long to wait before trying again).
 *
 * Error codes are never reused once retired; tests assert codes, never messages.
 * This module has no dependencies so that clients can import it on its own
 * (`@headway/client` bundles nothing else of the protocol).
 */
import type { JobStatus } from './job-state.js';

/** Error codes carried by `error` messages and REST error bodies. */
export const ErrorCode = {
  /** A frame or body that is not valid JSON. */
  BAD_JSON: 'HW_ERR_BAD_JSON',
  /** A message whose `type` is not part of the protocol. */
  UNKNOWN_TYPE: 'HW_ERR_UNKNOWN_TYPE',
  /** A message or body with a missing, extra or mistyped field. */
  INVALID_MESSAGE: 'HW_ERR_INVALID_MESSAGE',
  /** No credentials were given, or they are not valid. */
  UNAUTHORIZED: 'HW_ERR_UNAUTHORIZED',
  /** The token was valid but has expired: refresh it. */
  TOKEN_EXPIRED: 'HW_ERR_TOKEN_EXPIRED',
  /** The credentials are valid but do not allow this operation. */
  FORBIDDEN: 'HW_ERR_FORBIDDEN',
  /** No such job, or a job the caller may not see (the two are indistinguishable). */
  NOT_FOUND: 'HW_ERR_NOT_FOUND',
  /** A job with this id already exists. */
  JOB_EXISTS: 'HW_ERR_JOB_EXISTS',
  /** The job has reached a terminal status; it accepts no more events. */
  JOB_FINISHED: 'HW_ERR_JOB_FINISHED',
  /** The job was deleted: a worker reporting for it should stop. */
  JOB_DELETED: 'HW_ERR_JOB_DELETED',
  /** The event is not allowed in the job's current status (e.g. `resumed` while running). */
  INVALID_TRANSITION: 'HW_ERR_INVALID_TRANSITION',
  /** A value is outside its allowed range (e.g. percent above 100). */
  INVALID_VALUE: 'HW_ERR_INVALID_VALUE',
  /** A field or body is larger than its limit. */
  PAYLOAD_TOO_LARGE: 'HW_ERR_PAYLOAD_TOO_LARGE',
  /** Too many messages or requests in a short time. */
  RATE_LIMITED: 'HW_ERR_RATE_LIMITED',
  /** The connection already has the maximum number of subscriptions. */
  TOO_MANY_SUBSCRIPTIONS: 'HW_ERR_TOO_MANY_SUBSCRIPTIONS',
  /** The user already has the maximum number of connections. */
  TOO_MANY_CONNECTIONS: 'HW_ERR_TOO_MANY_CONNECTIONS',
  /** A subscription id that is already in use on this connection. */
  DUPLICATE_SUBSCRIPTION: 'HW_ERR_DUPLICATE_SUBSCRIPTION',
  /** A subscription id that is not in use on this connection. */
  UNKNOWN_SUBSCRIPTION: 'HW_ERR_UNKNOWN_SUBSCRIPTION',
  /** `auth` sent on a connection that is already authenticated. */
  ALREADY_AUTHENTICATED: 'HW_ERR_ALREADY_AUTHENTICATED',
  /** The request's Origin is not in the allow-list. */
  ORIGIN_NOT_ALLOWED: 'HW_ERR_ORIGIN_NOT_ALLOWED',
  /** A webhook URL the hub may not send to (a private address in production, `http:` where not allowed). */
  WEBHOOK_TARGET_REFUSED: 'HW_ERR_WEBHOOK_TARGET_REFUSED',
  /** The store cannot take writes right now; retry after the indicated delay. */
  STORE_UNAVAILABLE: 'HW_ERR_STORE_UNAVAILABLE',
  /** The hub is shutting down. */
  SHUTTING_DOWN: 'HW_ERR_SHUTTING_DOWN',
  /** An unexpected server error. */
  INTERNAL: 'HW_ERR_INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * WebSocket close codes, grouped in ranges by what the client must do, so that a
 * client meeting a code it does not know still acts correctly:
 *
 * - 4000–4099: reconnect (with backoff) and resume with the last seq seen;
 * - 4100–4199: obtain a fresh token first, then reconnect and resume;
 * - 4200–4299: do not reconnect: the same request would fail again.
 *
 * Standard codes used as well: 1009 (frame larger than the limit; do not reconnect
 * without fixing the client) and 1011 (internal error; reconnect).
 */
export const CloseCode = {
  /** Generic: reconnect and resume. */
  RECONNECT: 4000,
  /** The connection fell too far behind (send queue over its hard limit). */
  SLOW_READER: 4001,
  /** The server is shutting down or restarting. */
  SHUTDOWN: 4002,
  /**
   * No message or pong for two heartbeat intervals. The hub closes with it; a
   * client that notices the silence first (its ping unanswered, an SSE stream
   * without `ping` events) drops the connection and reports this code too.
   */
  HEARTBEAT_TIMEOUT: 4003,

  /** Generic: refresh the token, then reconnect. */
  REFRESH_TOKEN: 4100,
  /** The token has expired. */
  TOKEN_EXPIRED: 4101,
  /** The token is missing or invalid. */
  TOKEN_INVALID: 4102,
  /** No `auth` message arrived within the authentication timeout. */
  AUTH_TIMEOUT: 4103,

  /** Generic: do not reconnect. */
  STOP: 4200,
  /** The credentials do not allow this connection. */
  FORBIDDEN: 4201,
  /** Too many invalid messages, or a sustained flood. */
  PROTOCOL_VIOLATION: 4202,
  /** The user already has the maximum number of open connections. */
  TOO_MANY_CONNECTIONS: 4203,

  /** A frame exceeded the inbound size limit (standard code). */
  MESSAGE_TOO_BIG: 1009,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** What a client should do after the connection closed with `code`. */
export type CloseAction = 'reconnect' | 'refresh-token' | 'stop';

export function closeAction(code: number): CloseAction {
  if (code >= 4000 && code < 4100) return 'reconnect';
  if (code >= 4100 && code < 4200) return 'refresh-token';
  if (code >= 4200 && code < 4300) return 'stop';
  // 1000 normal closure by the server, 1001 going away, 1006 abnormal, 1011 error, 1012 restart.
  if (code === 1008 || code === 1009 || code === 1002 || code === 1003 || code === 1007) return 'stop';
  return 'reconnect';
}

/** How far apart retries of one request, or reconnects of one client, are spread. */
export interface BackoffOptions {
  /** Upper bound of the first delay, ms. */
  initialDelayMs: number;
  /** Upper bound of any delay, ms (a longer `Retry-After` from the hub still wins). */
  maxDelayMs: number;
}

/**
 * Delay before retry number `attempt` (1-based): a random delay up to
 * `initialDelayMs × 2^(attempt-1)`, capped at `maxDelayMs` ("full jitter", so
 * that clients the hub turned away together do not come back together), and
 * never shorter than the hub's `Retry-After`.
 *
 * Every Headway package that retries or reconnects uses this one rule.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const cap = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** Math.max(0, attempt - 1));
  const jittered = cap * random();
  return retryAfterMs !== undefined ? Math.max(retryAfterMs, jittered) : jittered;
}

// ---------------------------------------------------------------------------
// Values that clients check without the schema validator; the schemas use the
// same ones, so that a client never accepts what the hub would refuse.

/** Characters a job id may hold (a regular-expression character class body). */
export const JOB_ID_CHARACTERS = 'A-Za-z0-9._:-';
/** Longest job id, characters. */
export const JOB_ID_MAX_LENGTH = 128;
/** A whole job id: 1–128 letters, digits and `._:-`. */
export const JOB_ID = new RegExp(`^[${JOB_ID_CHARACTERS}]{1,${JOB_ID_MAX_LENGTH}}$`);

/** Longest job kind, characters. */
export const MAX_KIND_LENGTH = 64;
/** A job kind: 1–64 of the id's characters, starting with a letter or digit (`transcode`). */
export const JOB_KIND = /* @__PURE__ */ new RegExp(
  `^[A-Za-z0-9][${JOB_ID_CHARACTERS}]{0,${MAX_KIND_LENGTH - 1}}$`,
);

/** Statuses a job never leaves: it accepts no more reports. */
export const TERMINAL_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];

/** HTTP status for each error code, used by the REST API. */
export const httpStatus: Record<ErrorCode, number> = {
  HW_ERR_BAD_JSON: 400,
  HW_ERR_UNKNOWN_TYPE: 400,
  HW_ERR_INVALID_MESSAGE: 400,
  HW_ERR_UNAUTHORIZED: 401,
  HW_ERR_TOKEN_EXPIRED: 401,
  HW_ERR_FORBIDDEN: 403,
  HW_ERR_NOT_FOUND: 404,
  HW_ERR_JOB_EXISTS: 409,
  HW_ERR_JOB_FINISHED: 409,
  HW_ERR_JOB_DELETED: 410,
  HW_ERR_INVALID_TRANSITION: 409,
  HW_ERR_INVALID_VALUE: 400,
  HW_ERR_PAYLOAD_TOO_LARGE: 413,
  HW_ERR_RATE_LIMITED: 429,
  HW_ERR_TOO_MANY_SUBSCRIPTIONS: 429,
  HW_ERR_TOO_MANY_CONNECTIONS: 429,
  HW_ERR_DUPLICATE_SUBSCRIPTION: 400,
  HW_ERR_UNKNOWN_SUBSCRIPTION: 400,
  HW_ERR_ALREADY_AUTHENTICATED: 400,
  HW_ERR_ORIGIN_NOT_ALLOWED: 403,
  HW_ERR_WEBHOOK_TARGET_REFUSED: 400,
  HW_ERR_STORE_UNAVAILABLE: 503,
  HW_ERR_SHUTTING_DOWN: 503,
  HW_ERR_INTERNAL: 500,
};
