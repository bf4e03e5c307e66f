/**
 * Every option of the hub with its default and unit, in one place. The CLI and
 * the environment (see `config.ts`) and `createServer()` all start from these.
 */
export interface Limits {
  /** Largest inbound WebSocket frame, bytes; larger frames close the connection with 1009. */
  maxMessageBytes: number;
  /** Subscriptions per connection. */
  maxSubscriptions: number;
  /** Client messages per second per connection (burst of the same size). */
  messagesPerSecond: number;
  /** Invalid messages tolerated per connection in a 10 s window before it is closed. */
  maxInvalidMessages: number;
  /** Open connections per user (WebSocket, SSE and long-poll alike). */
  connectionsPerUser: number;
  /** Largest REST request body, bytes. */
  bodyBytes: number;
  /** Largest serialized job `metadata` or `result`, bytes. */
  maxJsonBytes: number;
  /** Most events replayed on resume before the state is sent instead. */
  replayLimit: number;
  /** Time a connection has to authenticate, ms. */
  authTimeoutMs: number;
  /** Interval of protocol pings, ms; a connection silent for two intervals is closed. */
  heartbeatMs: number;
  /** Queued bytes on one connection past which queued progress events collapse to the newest. */
  outboxSoftBytes: number;
  /** Queued bytes on one connection past which it is closed with a reconnect code. */
  outboxHardBytes: number;
  /** Longest long-poll wait, seconds. */
  longPollMaxSeconds: number;
  /** Default lifetime of minted browser tokens, seconds. */
  tokenTtlSeconds: number;
  /** Longest lifetime of minted browser tokens, seconds. */
  maxTokenTtlSeconds: number;
}

export interface Retention {
  /** Events older than this are deleted, days. */
  eventsDays: number;
  /** Finished jobs older than this are deleted with their events, days. */
  jobsDays: number;
  /** Time between sweeps, ms. */
  sweepIntervalMs: number;
  /** Rows deleted per statement during a sweep. */
  batchSize: number;
}

export interface HeadwayOptions {
  /** TCP port; 0 picks a free one. */
  port: number;
  host: string;
  /** Directory of the SQLite file and the development secrets. */
  dataDir: string;
  /** Refuse to start without configured secrets; no generated development credentials. */
  production: boolean;
  /** Run the demo workers. */
  demo: boolean;
  /** HS256 secret for browser tokens (at least 32 bytes). Generated in development. */
  jwtSecret?: string;
  /** API keys for workers and back ends. One is generated in development. */
  apiKeys: string[];
  /** Origins allowed for CORS and WebSocket upgrades; empty in development means any localhost origin. */
  allowedOrigins: string[];
  limits: Limits;
  retention: Retention;
  /** Longest graceful shutdown before the process exits anyway, ms. */
  shutdownTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

const KiB = 1024;
const MiB = 1024 * KiB;

export const defaultLimits: Limits = {
  maxMessageBytes: 64 * KiB,
  maxSubscriptions: 100,
  messagesPerSecond: 50,
  maxInvalidMessages: 20,
  connectionsPerUser: 10,
  bodyBytes: 1 * MiB,
  maxJsonBytes: 16 * KiB,
  replayLimit: 1000,
  authTimeoutMs: 5_000, // 5 seconds
  heartbeatMs: 30_000, // 30 seconds
  outboxSoftBytes: 256 * KiB,
  outboxHardBytes: 1 * MiB,
  longPollMaxSeconds: 60,
  tokenTtlSeconds: 3_600, // 1 hour
  maxTokenTtlSeconds: 7 * 24 * 3_600, // 7 days
};

export const defaultRetention: Retention = {
  eventsDays: 30,
  jobsDays: 30,
  sweepIntervalMs: 60 * 60 * 1000, // 1 hour
  batchSize: 500,
};

export const defaults: HeadwayOptions = {
  port: 7070,
  host: '127.0.0.1',
  dataDir: '.headway',
  production: false,
  demo: false,
  apiKeys: [],
  allowedOrigins: [],
  limits: defaultLimits,
  retention: defaultRetention,
  shutdownTimeoutMs: 10_000, // 10 seconds
  logLevel: 'info',
};

export type HeadwayOptionsInput = Partial<Omit<HeadwayOptions, 'limits' | 'retention'>> & {
  limits?: Partial<Limits>;
  retention?: Partial<Retention>;
};

/** Spread the defaults under the given options. */
export function resolveOptions(input: HeadwayOptionsInput = {}): HeadwayOptions {
  return {
    ...defaults,
    ...input,
    limits: { ...defaultLimits, ...input.limits },
    retention: { ...defaultRetention, ...input.retention },
  };
}
