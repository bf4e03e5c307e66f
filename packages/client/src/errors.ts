import type { ErrorCode } from '@headway/protocol/codes';

/** Codes of failures detected by the client itself; the hub's own codes are `HW_ERR_*` from the protocol. */
export const ClientErrorCode = {
  /** The hub could not be reached, or answered something that is not the API. */
  NETWORK: 'HW_ERR_CLIENT_NETWORK',
  /** The token function threw or returned something other than a non-empty string. */
  TOKEN: 'HW_ERR_CLIENT_TOKEN',
  /** The hub closed the connection with a code that says not to reconnect. */
  STOPPED: 'HW_ERR_CLIENT_STOPPED',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

/** Every error the client reports or rejects with; act on `code`, never on `message`. */
export class HeadwayClientError extends Error {
  constructor(
    /** A protocol `HW_ERR_*` code from the hub, or a `HW_ERR_CLIENT_*` code. */
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    /** HTTP status, for errors of REST calls. */
    readonly status?: number,
  ) {
    super(message);
    this.name = 'HeadwayClientError';
  }
}
