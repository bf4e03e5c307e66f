import { ErrorCode, httpStatus } from '@headway/protocol';

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
