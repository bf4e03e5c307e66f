import type { ErrorCode } from '@headway/protocol/codes';

/**
 * Codes of errors raised by the SDK itself. Errors that come from the hub keep
 * the hub's `HW_ERR_*` code (see docs/protocol.md); both kinds are stable and
 * never reused, so code may branch on them.
 */
export const WorkerErrorCode = {
  /** A missing or invalid option (a `TypeError`). */
  INVALID_OPTION: 'HW_WORKER_INVALID_OPTION',
  /** The job was cancelled: the reason of `handle.signal`, and what `checkpoint()` rejects with. */
  CANCELLED: 'HW_WORKER_CANCELLED',
  /** The worker was closed; it takes no more jobs or reports. */
  CLOSED: 'HW_WORKER_CLOSED',
  /** Events were dropped: the queue overflowed, or `close()` timed out before they were delivered. */
  DROPPED: 'HW_WORKER_DROPPED',
  /** The hub could not be reached, or kept failing, after every retry of a request. */
  UNREACHABLE: 'HW_WORKER_UNREACHABLE',
  /** The hub answered something that is not the Headway API. */
  BAD_RESPONSE: 'HW_WORKER_BAD_RESPONSE',
} as const;
export type WorkerErrorCode = (typeof WorkerErrorCode)[keyof typeof WorkerErrorCode];

/** Every code a `HeadwayWorkerError` may carry. */
export type HeadwayWorkerErrorCode = WorkerErrorCode | ErrorCode;

/** An error with a stable code: one of `WorkerErrorCode`, or the hub's `HW_ERR_*` code. */
export class HeadwayWorkerError extends Error {
  readonly code: HeadwayWorkerErrorCode;
  /** HTTP status of the hub's answer, when the error came from one. */
  readonly status: number | undefined;
  /** The job the error concerns, when it concerns one. */
  readonly job: string | undefined;

  constructor(
    code: HeadwayWorkerErrorCode,
    message: string,
    options: { status?: number; job?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HeadwayWorkerError';
    this.code = code;
    this.status = options.status;
    this.job = options.job;
  }
}

/**
 * The job was cancelled (or deleted, or ended by someone else). Its `name` is
 * `AbortError`, like the error of an aborted `fetch`, so code that already
 * handles aborts handles it too; `code` says why.
 */
export class JobAbortedError extends HeadwayWorkerError {
  constructor(code: HeadwayWorkerErrorCode, job: string, message: string) {
    super(code, message, { job });
    this.name = 'AbortError';
  }
}

/** True for an abort of any origin: a cancelled job, an aborted fetch, a BullMQ cancel. */
export function isAbortError(err: unknown): boolean {
  return (
    typeof err === 'object' &&
    err !== null &&
    ((err as { name?: unknown }).name === 'AbortError' ||
      (err as { code?: unknown }).code === WorkerErrorCode.CANCELLED)
  );
}
