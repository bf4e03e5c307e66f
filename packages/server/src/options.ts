/**
 * Every option of the hub with its default and unit, in one place. The CLI and
 * the environment (see `config.ts`) and `createServer()` all start from these.
 */
import { type StallOptions, stallDefaults } from './state/stall.js';

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
  /** Time a client has to send a request's headers, ms. */
  headersTimeoutMs: number;
  /** Time a client has to send a whole request, headers and body, ms (not the answer: long-polls and streams may last longer). */
  requestTimeoutMs: number;
  /**
   * Open TCP connections, at most (also kept below the process's open-file limit).
   * Past it, a new connection displaces the oldest one that has not yet made an
   * authenticated request, so that health checks, workers and watchers stay served.
   */
  maxConnections: number;
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

/** Webhook delivery: timeouts, retries, concurrency and the targets allowed (docs/webhooks.md). */
export interface WebhookOptions {
  /** Longest wait for a receiver's answer, ms; a 2xx within it is a success. */
  timeoutMs: number;
  /** How long a delivery is retried after its event before it is marked failed, ms. */
  retryForMs: number;
  /** Upper bound of the first retry's delay, ms (doubling per attempt, full jitter). */
  backoffInitialMs: number;
  /** Upper bound of any retry's delay, ms. */
  backoffMaxMs: number;
  /** Attempts in flight per process, all webhooks together. */
  concurrency: number;
  /** Attempts in flight per process to one webhook. */
  concurrencyPerWebhook: number;
  /** Time between looks for due deliveries when idle, ms. */
  pollMs: number;
  /** How long a claimed delivery stays with the claiming process, ms; another process takes it over after. */
  leaseMs: number;
  /** Consecutive failed attempts to one webhook after which this process pauses it (opens its circuit). */
  circuitFailures: number;
  /** How long an open circuit pauses the webhook before one trial attempt, ms. */
  circuitOpenMs: number;
  /** How long the previous secret keeps signing after a rotation, ms. */
  secretOverlapMs: number;
  /** Settled (succeeded or failed) deliveries are deleted this long after their last attempt, days. */
  keepDays: number;
  /** In production: allow targets that resolve to loopback, private, link-local or metadata addresses. */
  allowPrivate: boolean;
  /** In production: allow `http:` targets (development allows both always). */
  allowHttp: boolean;
}
/** When a running job counts as stalled (see `state/stall.ts` for the rule). */
export type { StallOptions } from './state/stall.js';

/**
 * The seed applications' protocols Headway speaks besides its own, each named
 * after what it is (see docs/dialects.md).
 */
export const DIALECT_NAMES = [
  'user-progress',
  'task-subscribe',
  'job-stream',
  'download-status',
  'user-dashboard',
] as const;
export type DialectName = (typeof DIALECT_NAMES)[number];

/** Other accepted spellings of the dialect names: the seeds' numbers. */
export const DIALECT_ALIASES: Readonly<Record<string, DialectName>> = {
  seed0: 'user-progress',
  seed1: 'task-subscribe',
  seed2: 'job-stream',
  seed3: 'download-status',
  seed4: 'user-dashboard',
};

/** A dialect path prefix: URL path segments of letters, digits and `._~-`, each after a `/`. */
export const DIALECT_PREFIX = /^(\/[A-Za-z0-9._~-]+)+$/;

export interface DialectOptions {
  /** The seed protocols served. Default: all of them. */
  enabled: DialectName[];
  /** Put before every dialect path, e.g. `/compat` serves `/compat/ws/{user_id}`; `''` serves the seeds' own paths. */
  prefix: string;
  /** job-stream: WebSocket connections per client IP per minute; 0 disables the limit. */
  streamConnectionsPerMinute: number;
  /** user-dashboard: open connections per user. */
  dashboardConnectionsPerUser: number;
  /** user-dashboard: `progress-history` requests per user (or API key) per minute; 0 disables the limit. */
  historyRequestsPerMinute: number;
}

export const DURABILITIES = ['normal', 'full'] as const;
export type Durability = (typeof DURABILITIES)[number];

export interface HeadwayOptions {
  /** TCP port; 0 picks a free one. */
  port: number;
  host: string;
  /** Directory of the SQLite file and the development secrets. */
  dataDir: string;
  /**
   * SQLite: `normal` — an acknowledged event survives a crash of the hub process,
   * not an OS crash or power loss; `full` — it survives those too (PostgreSQL
   * always syncs its commits).
   */
  durability: Durability;
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
  /** The seed applications' protocols (docs/dialects.md). */
  dialects: DialectOptions;
  limits: Limits;
  retention: Retention;
  /** Webhook delivery. */
  webhooks: WebhookOptions;
  /** Stall detection: a running job quiet for `factor` × its usual gap between reports (at least `minMs`). */
  stall: StallOptions;
  /** Longest graceful shutdown before the process exits anyway, ms. */
  shutdownTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /**
   * How `headway start` writes: `pretty` (the start-up banner, then one readable
   * line per log record), `json` (pino's structured lines only, the banner's
   * facts in one record), or `auto`: pretty on a terminal, else json.
   */
  logFormat: 'auto' | 'pretty' | 'json';
  /** PostgreSQL URL; when set, jobs are stored there (shared by every hub process) instead of in SQLite. */
  postgresUrl?: string;
  /** Schema of Headway's tables in PostgreSQL, created when missing. */
  postgresSchema: string;
  /** Redis URL; when set, hub processes exchange deliveries and connection counts through it. */
  redisUrl?: string;
  /** Prefix of every Redis channel and key: one per deployment sharing a Redis. */
  redisPrefix: string;
  /**
   * With Redis: a followed job quiet this long is compared with the store, which
   * finds deliveries lost at the end of a burst, ms; 0 disables the check.
   */
  idleCheckMs: number;
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
  headersTimeoutMs: 10_000, // 10 seconds
  requestTimeoutMs: 30_000, // 30 seconds
  maxConnections: 10_000,
};

export const defaultRetention: Retention = {
  eventsDays: 30,
  jobsDays: 30,
  sweepIntervalMs: 60 * 60 * 1000, // 1 hour
  batchSize: 500,
};

export const defaultWebhooks: WebhookOptions = {
  timeoutMs: 10_000, // 10 seconds
  retryForMs: 24 * 3_600_000, // 24 hours
  backoffInitialMs: 10_000, // 10 seconds
  backoffMaxMs: 3_600_000, // 1 hour
  concurrency: 32,
  concurrencyPerWebhook: 4,
  pollMs: 500,
  leaseMs: 60_000, // 1 minute: longer than any attempt (timeoutMs)
  circuitFailures: 5,
  circuitOpenMs: 30_000, // 30 seconds
  secretOverlapMs: 24 * 3_600_000, // 24 hours
  keepDays: 7,
  allowPrivate: false,
  allowHttp: false,
};

export const defaultDialects: DialectOptions = {
  enabled: [...DIALECT_NAMES],
  prefix: '',
  streamConnectionsPerMinute: 10, // the job-stream seed's "10/minute" per IP
  dashboardConnectionsPerUser: 5, // the user-dashboard seed's "max 5 WebSocket connections per user"
  historyRequestsPerMinute: 30,
};

export const defaults: HeadwayOptions = {
  port: 7070,
  host: '127.0.0.1',
  dataDir: '.headway',
  durability: 'normal',
  production: false,
  demo: false,
  apiKeys: [],
  allowedOrigins: [],
  dialects: defaultDialects,
  limits: defaultLimits,
  retention: defaultRetention,
  webhooks: defaultWebhooks,
  stall: stallDefaults,
  shutdownTimeoutMs: 10_000, // 10 seconds
  logLevel: 'info',
  logFormat: 'auto',
  postgresSchema: 'headway',
  redisPrefix: 'headway:',
  idleCheckMs: 5_000, // 5 seconds
};

export type HeadwayOptionsInput = Partial<
  Omit<HeadwayOptions, 'limits' | 'retention' | 'dialects' | 'webhooks' | 'stall'>
> & {
  webhooks?: Partial<WebhookOptions>;
  dialects?: Partial<DialectOptions>;
  stall?: Partial<StallOptions>;
  limits?: Partial<Limits>;
  retention?: Partial<Retention>;
};

/** Spread the defaults under the given options. */
export function resolveOptions(input: HeadwayOptionsInput = {}): HeadwayOptions {
  return {
    ...defaults,
    ...input,
    dialects: { ...defaultDialects, ...input.dialects },
    limits: { ...defaultLimits, ...input.limits },
    retention: { ...defaultRetention, ...input.retention },
    webhooks: { ...defaultWebhooks, ...input.webhooks },
    stall: { ...stallDefaults, ...input.stall },
  };
}
