/**
 * @headway/server: the hub as a library (`createServer`, or the pieces it is
 * assembled from) and the `headway` command (`main`).
 */

export type { AuthOptions, MintOptions, Principal } from './auth.js';
export { Auth, generateSecret } from './auth.js';
export type { Bus } from './bus/bus.js';
export { MemoryBus } from './bus/memory.js';
export type { RedisBusOptions } from './bus/redis.js';
export { RedisBus } from './bus/redis.js';
export { BANNER_TOKEN_TTL_SECONDS, DEMO_USER, EXIT_CONFIG, main, version } from './cli.js';
export type { ConfigErrorReason, LogLevel } from './config.js';
export { ConfigError, LOG_LEVELS, loadConfig, MIN_API_KEY_LENGTH, MIN_JWT_SECRET_BYTES } from './config.js';
export type { ConnectionLimiter, ServerContext } from './context.js';
export { ConnectionCounter } from './context.js';
export { Delivery } from './delivery.js';
export { ServerErrorCode } from './error-codes.js';
export { HeadwayError, notFound } from './errors.js';
export type {
  ControlAction,
  HubOptions,
  PublishManyItem,
  PublishManyResult,
  ResumeResult,
  Subscriber,
  Topic,
} from './hub.js';
export { Hub, hubDefaults, topicKey } from './hub.js';
export { Metrics } from './metrics.js';
export type { HeadwayOptions, HeadwayOptionsInput, Limits, Retention } from './options.js';
export { defaultLimits, defaultRetention, defaults, resolveOptions } from './options.js';
export { OriginPolicy } from './origins.js';
export { canControl, canReport, canSee, canWatchAll, isPrivileged, scopeUser } from './policy.js';
export type { RedisConnectionCounterOptions } from './redis-connection-counter.js';
export { RedisConnectionCounter } from './redis-connection-counter.js';
export type { DevelopmentSecrets, ResolvedSecrets } from './secrets.js';
export { readOrCreateSecrets, resolveSecrets, SECRETS_FILE } from './secrets.js';
export type { CreateServerOptions, HeadwayServer } from './server.js';
export { createServer } from './server.js';
export type { PostgresStoreOptions } from './store/postgres.js';
export { PostgresStore } from './store/postgres.js';
export type { SqliteStoreOptions } from './store/sqlite.js';
export { SqliteStore } from './store/sqlite.js';
export type {
  JobWrite,
  ListJobsPage,
  ListJobsQuery,
  Store,
  SweepOptions,
  SweepResult,
} from './store/store.js';
export { StoreConflictError, StoreUnavailableError } from './store/store.js';
export { Sweeper } from './sweeper.js';
