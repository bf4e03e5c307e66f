import { ErrorCode, httpStatus } from '@headway/protocol';
import { StoreConflictError, StoreUnavailableError } from './store/store.js';

/**
 * An error with a stable `HW_ERR_*` code, raised anywhere in the hub and turned
 * into an `error` message or a REST error body at the edge.
 */
export class HeadwayError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfter?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HeadwayError';
    this.status = httpStatus[code];
    this.retryAfter = options?.retryAfter;
  }
  /** Seconds a client should wait before retrying (503). */
  readonly retryAfter: number | undefined;

  toJSON() {
    return { code: this.code, message: this.message };
  }
}

/** The one error for a job that is missing or not visible to the caller. */
export function notFound(id: string): HeadwayError {
  return new HeadwayError(ErrorCode.NOT_FOUND, `job "${id}" not found`);
}

/**
 * A write that lost a race for its job with another process. The hub applies
 * the request again on the reloaded job; only after a few lost races does the
 * caller see it, as a 503 to retry.
 */
export class WriteConflict extends HeadwayError {
  constructor(cause?: unknown) {
    super(ErrorCode.STORE_UNAVAILABLE, 'the job was written concurrently; retry', { retryAfter: 1, cause });
  }
}

/** What the requests of a batch get when the store refused its commit. */
export function commitError(err: unknown): unknown {
  if (err instanceof StoreConflictError) return new WriteConflict(err);
  if (err instanceof StoreUnavailableError) {
    return new HeadwayError(ErrorCode.STORE_UNAVAILABLE, 'the store did not accept the write; retry', {
      retryAfter: 1,
      cause: err,
    });
  }
  return err;
}

/** Any error, as the edges (WebSocket `error`, REST error body) report it. */
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
