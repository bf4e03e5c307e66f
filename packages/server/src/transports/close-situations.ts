/**
 * The situations in which every WebSocket endpoint closes a connection, and the
 * reason sent with each; every protocol maps them to close codes of its own.
 */

/** The situations in which every endpoint closes a connection. */
export type CloseSituation =
  | 'slowReader'
  | 'shutdown'
  | 'tokenExpired'
  | 'authTimeout'
  | 'flood'
  | 'invalidMessages'
  | 'internalError';

/** A protocol's close code for each situation; null: the connection stays open. */
export type CloseCodes = Readonly<Record<CloseSituation, number | null>>;

/** Close reasons (at most 123 bytes by the protocol; these stay short). */
export const CLOSE_REASONS: Readonly<Record<CloseSituation, string>> = {
  slowReader: 'too far behind: reconnect and resume',
  shutdown: 'server going away, reconnect',
  tokenExpired: 'token expired',
  authTimeout: 'no credentials in time',
  flood: 'message flood',
  invalidMessages: 'too many invalid messages',
  internalError: 'internal error',
};
