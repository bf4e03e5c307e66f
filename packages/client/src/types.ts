import type { EventKind, JobEvent, JobState } from '@headway/protocol';
import type { HeadwayClientError } from './errors.js';

export type { EventKind, JobEvent, JobState, JobStatus } from '@headway/protocol';

/** The connection's state. */
export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** How the client reaches the hub: WebSocket, Server-Sent Events, or long-poll over REST. */
export type TransportKind = 'ws' | 'sse' | 'poll';

/** What a collection watches: the token's user's jobs, or every job (API keys and admin tokens). */
export type Scope = 'user' | 'all';

/** A token, or a function that returns a fresh one (called again when the hub says it expired). */
export type TokenSource = string | (() => string | Promise<string>);

/** The `WebSocket` constructor: the browser's, Node's global one, or the `ws` package. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** The part of a WebSocket the client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: never) => unknown) | null;
  onmessage: ((ev: { data: unknown }) => unknown) | null;
  onclose: ((ev: { code: number; reason: string }) => unknown) | null;
  onerror: ((ev: never) => unknown) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** The `EventSource` constructor (the browser's, or any implementation of the standard). */
export type EventSourceConstructor = new (url: string) => EventSourceLike;

/** The part of an EventSource the client uses. */
export interface EventSourceLike {
  onmessage: ((ev: { data: string }) => unknown) | null;
  onerror: ((ev: never) => unknown) | null;
  addEventListener(type: string, listener: (ev: { data: string }) => void): void;
  close(): void;
}

/** Where the client learns that the network went away or came back (`window` in browsers). */
export interface NetworkTarget {
  /** Whether the network is up; `navigator.onLine` when absent. */
  readonly onLine?: boolean;
  addEventListener(type: 'online' | 'offline', listener: () => void): void;
  removeEventListener(type: 'online' | 'offline', listener: () => void): void;
}

/** Where the client learns that the page became visible (`document` in browsers). */
export interface VisibilityTarget {
  readonly visibilityState: string;
  addEventListener(type: 'visibilitychange', listener: () => void): void;
  removeEventListener(type: 'visibilitychange', listener: () => void): void;
}

export interface ClientOptions {
  /** The hub's base URL, e.g. `https://hub.example.com` (a `ws(s)://` URL works too). */
  url: string;
  /** A browser token or API key, or a function returning a fresh token. */
  token: TokenSource;
  /**
   * Transports to try, in order, when one fails to connect. Default `['ws', 'sse', 'poll']`,
   * without those whose constructor is missing.
   */
  transports?: TransportKind[];
  /** Default `globalThis.WebSocket`. In Node 20, pass the `ws` package's `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Default `globalThis.EventSource`. */
  EventSource?: EventSourceConstructor;
  /** Default `globalThis.fetch`: REST calls, history, control, long-poll. */
  fetch?: typeof fetch;
  /** Online/offline events. Default `window` in browsers; null to ignore. */
  network?: NetworkTarget | null;
  /** Visibility events. Default `document` in browsers; null to ignore. */
  visibility?: VisibilityTarget | null;
  /**
   * Share one connection between the tabs of this origin that use the same
   * identity (Web Locks and BroadcastChannel; ignored where they are missing).
   * A string names the group. Default true in browsers.
   */
  shared?: boolean | string;
  /** First reconnect delay cap, ms; doubles per attempt. Default 500. */
  minReconnectDelayMs?: number;
  /** Largest reconnect delay, ms. Default 20,000 (20 seconds). */
  maxReconnectDelayMs?: number;
  /** Time a transport has to connect before the next one is tried, ms. Default 10,000. */
  connectTimeoutMs?: number;
  /** While on SSE or long-poll, how often WebSocket is tried again, ms. Default 60,000. */
  upgradeIntervalMs?: number;
  /** Long-poll: wait per request, seconds. Default 25. */
  longPollSeconds?: number;
  /** Long-poll: interval of scope and overflow polls, ms. Default 2,000. */
  pollIntervalMs?: number;
  /** A token function is called again this long before the token's `exp`, ms. Default 30,000. */
  tokenRefreshMarginMs?: number;
  /** Random source in [0, 1) for the backoff jitter. Default `Math.random`. */
  random?: () => number;
}

/** Passed to `state` listeners. */
export interface StateChange {
  oldState: ConnectionState;
  newState: ConnectionState;
  /**
   * Why: `connect`, `connected`, `connect-failed` (every transport failed), `lost`
   * (the connection closed), `heartbeat-timeout`, `offline`, `token-error`, `stop`
   * (a close code that says not to reconnect), `close` (`client.close()`), or the
   * same reasons relayed from the tab that holds the shared connection.
   */
  reason: string;
  /** The close code, when one caused the change. */
  code?: number;
  /** Delay before the next attempt, ms, when entering `reconnecting` with one scheduled. */
  delayMs?: number;
}

export interface ClientEvents {
  state: StateChange;
  /** A transport connected (also when an upgrade or a fallback changed it). */
  transport: { transport: TransportKind; previous: TransportKind | null };
  /** Something failed that the client handles on its own (it retries); for logs and indicators. */
  error: { error: HeadwayClientError };
}

/** Passed to a job's event listeners. */
export interface JobEventContext {
  event: JobEvent;
  /**
   * The job's state after the event. Events that arrive without one (filled from
   * the history endpoint, or over long-poll) carry the nearest later state known.
   */
  state: JobState;
}

/** Events of a job handle and of a collection. */
export type JobEvents = { [K in EventKind]: JobEventContext } & {
  /** Any event. */
  event: JobEventContext;
  /** The state changed (after an event, a snapshot or a reset). */
  change: { state: JobState };
  /** The hub could not replay what was missed: the state was replaced, events in between are lost. */
  reset: { state: JobState };
  /** A subscription failed (e.g. `HW_ERR_NOT_FOUND`). */
  error: { error: HeadwayClientError; job: string };
};

export type CollectionEvents = JobEvents & {
  /** A job entered the collection (it was created, or the snapshot listed it). */
  add: { state: JobState };
  /** A job left the collection (deleted, or evicted past `limit`). */
  remove: { id: string };
};

export interface JobsOptions {
  /** Default `user`. */
  scope?: Scope;
  /** Most jobs kept; the oldest finished ones leave first. Default 1000. */
  limit?: number;
}

export type ControlAction = 'cancel' | 'pause' | 'resume';
