/**
 * What the client needs of a way to reach the hub. Each transport turns what it
 * receives into native protocol server messages, so the client handles one
 * message shape:
 *
 * - `ws` (websocket-transport.ts): the native protocol itself;
 * - `sse` (sse-transport.ts): `GET /v1/stream`, whose events carry native
 *   messages; a change of subscriptions reopens the stream with the seqs reached;
 * - `poll` (long-poll-transport.ts): REST long-polls for jobs and a periodic list
 *   for scopes, answered as `subscribed` messages that carry only states; the
 *   client fills the events in between from the history endpoint.
 *
 * Subscription errors are reported with the subscription's key (`j:<job>` or
 * `s:<scope>`) as their `id`.
 */
import type { ClientMessage, ServerMessage } from '@headway/protocol';
import type { EventSourceConstructor, Scope, TransportKind, WebSocketConstructor } from './types.js';

/** One subscription the client wants: a job or a scope. */
export interface Want {
  key: string;
  job?: string;
  scope?: Scope;
}

/** What a transport gets from the client. */
export interface Link {
  token(): string;
  /** The subscriptions wanted now, by key. */
  wanted(): Map<string, Want>;
  /** Where a subscription resumes: the last seq of a job, or seqs by job for a scope. */
  since(want: Want): number | Record<string, number> | undefined;
  /** Newest seq known of a job (0: none). */
  seen(job: string): number;
  user(): string | null;
  /** The transport is up: authenticated and ready for subscriptions. */
  opened(info: { user: string; heartbeatMs: number }): void;
  message(m: ServerMessage): void;
  /** The transport is gone (never called after `Transport.close()`). */
  closed(code: number, reason: string): void;
}

export interface Transport {
  kind: TransportKind;
  /** Bring the transport's subscriptions in line with `link.wanted()`. */
  sync(): void;
  /** Send a native message; false when this transport cannot. */
  send(m: ClientMessage): boolean;
  /** Close without calling `link.closed`. */
  close(): void;
}

export interface Env {
  base: string;
  WebSocket?: WebSocketConstructor;
  EventSource?: EventSourceConstructor;
  fetch?: typeof fetch;
  longPollSeconds: number;
  pollIntervalMs: number;
  timeoutMs: number;
}

/**
 * The standard close code of a connection that ended without a close frame
 * (RFC 6455, 7.1.5). The hub never sends it: transports report with it that the
 * hub could not be reached or the stream broke, which `closeAction` reads as
 * "reconnect" and the client as "try the next transport" while connecting.
 */
export const ABNORMAL_CLOSURE = 1006;

/** `Transport.send` of the transports that cannot send. */
export const cannotSend = () => false;
