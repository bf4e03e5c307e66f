/**
 * Codes of the errors `@headway/server` raises to its own caller: the operator
 * starting `headway`, or code that embeds the hub or implements a `Store`.
 * Clients never see them: what reaches the wire is a protocol `HW_ERR_*` code.
 * Stable, and never reused once retired (see docs/errors.md).
 */
export const ServerErrorCode = {
  /** A flag or variable of `headway start` is wrong (`ConfigError`); `setting` names it. */
  CONFIG: 'HW_ERR_CONFIG',
  /** A commit built on a seq another process has moved past (`StoreConflictError`); the hub retries. */
  STORE_CONFLICT: 'HW_STORE_CONFLICT',
  /** The store cannot be reached (`StoreUnavailableError`); clients get `HW_ERR_STORE_UNAVAILABLE`. */
  STORE_UNAVAILABLE: 'HW_STORE_UNAVAILABLE',
} as const;
export type ServerErrorCode = (typeof ServerErrorCode)[keyof typeof ServerErrorCode];
