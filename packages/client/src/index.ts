/**
 * @headway/client: live job progress from a Headway hub, in browsers and Node.
 *
 * Resume is exact (every event once, in seq order, across reconnects and hub
 * restarts), transports fall back from WebSocket to SSE to long-poll and come
 * back, tokens are refreshed, and tabs share one connection.
 */
export { clientDefaults, createClient, type HeadwayClient } from './client.js';
export { ClientErrorCode, HeadwayClientError } from './errors.js';
export { JobCollection, JobHandle } from './handles.js';
export type {
  ClientEvents,
  ClientOptions,
  CollectionEvents,
  ConnectionState,
  ControlAction,
  EventKind,
  EventSourceConstructor,
  EventSourceLike,
  JobEvent,
  JobEventContext,
  JobEvents,
  JobState,
  JobStatus,
  JobsOptions,
  NetworkTarget,
  Scope,
  StateChange,
  TokenSource,
  TransportKind,
  VisibilityTarget,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
