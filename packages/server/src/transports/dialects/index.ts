/**
 * The dialects: the protocols of the five seed applications, each a thin
 * translation between Headway's job states and events and that application's
 * own messages, so that its front end works against Headway unchanged
 * (docs/dialects.md). The hub knows nothing of them: they subscribe to its
 * topics like any transport.
 *
 * `registerDialects` registers the session cookie endpoints (always) and the
 * enabled dialects' HTTP routes, and returns their WebSocket endpoints, which
 * the hub's one socket server serves beside the native protocol. Which
 * dialects are served, and under which path prefix, comes from `options.dialects`.
 */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../../context.js';
import { DIALECT_NAMES, DIALECT_PREFIX, type DialectName, type DialectOptions } from '../../options.js';
import type { SocketEndpoint } from '../socket-server.js';
import { type DialectEndpoint, type DialectRoute, type DialectRouteTypes, socketEndpoint } from './base.js';
import { downloadStatus } from './download-status.js';
import { jobStream } from './job-stream.js';
import { registerSession } from './session.js';
import { taskSubscribe } from './task-subscribe.js';
import { userDashboard } from './user-dashboard.js';
import { userProgress } from './user-progress.js';

/** What a dialect needs from the server that hosts it. */
export interface DialectEnv {
  ctx: ServerContext;
}

/** One seed protocol: its WebSocket endpoint and its HTTP routes (polling fallbacks, history). */
export interface Dialect {
  endpoint: DialectEndpoint;
  /**
   * GET routes by path (without the prefix). They are the seeds' API rather than
   * Headway's, so they stay out of the OpenAPI document.
   */
  routes?: Record<string, DialectRoute>;
}

/** Every dialect by name; each call makes a fresh instance (its own rate limiters and counters). */
export const dialectFactories: Readonly<Record<DialectName, (env: DialectEnv) => Dialect>> = {
  'user-progress': userProgress,
  'task-subscribe': taskSubscribe,
  'job-stream': jobStream,
  'download-status': downloadStatus,
  'user-dashboard': userDashboard,
};

export interface Dialects {
  /** The enabled dialects. */
  readonly enabled: readonly DialectName[];
  /** Their WebSocket endpoints, for the hub's socket server. */
  readonly endpoints: readonly SocketEndpoint[];
}

/**
 * Register the session endpoints and the enabled dialects' routes on `app`, and
 * return their WebSocket endpoints. Call before `listen`.
 */
export function registerDialects(app: FastifyInstance, ctx: ServerContext): Dialects {
  checkDialectOptions(ctx.options.dialects);
  registerSession(app, ctx);
  const { enabled, prefix } = ctx.options.dialects;
  const names = [...new Set(enabled)];
  const env: DialectEnv = { ctx };
  const dialects = names.map((name) => dialectFactories[name](env));
  for (const d of dialects) {
    for (const [path, route] of Object.entries(d.routes ?? {})) {
      app.get<DialectRouteTypes>(`${prefix}${path}`, { schema: { hide: true } }, route);
    }
  }
  const endpoints = names.map((name, i) => socketEndpoint(prefix, name, dialects[i]!.endpoint));
  return { enabled: names, endpoints };
}

/**
 * Refuse dialect options that would silently serve nothing, or fail later.
 * @throws TypeError naming the option.
 */
export function checkDialectOptions(options: DialectOptions): void {
  for (const name of options.enabled) {
    if (!Object.hasOwn(dialectFactories, name)) {
      throw new TypeError(`dialects.enabled: unknown dialect "${name}" (known: ${DIALECT_NAMES.join(', ')})`);
    }
  }
  if (options.prefix !== '' && !DIALECT_PREFIX.test(options.prefix)) {
    throw new TypeError(`dialects.prefix must be '' or a path such as '/compat' (got "${options.prefix}")`);
  }
  for (const key of ['streamConnectionsPerMinute', 'dashboardConnectionsPerUser'] as const) {
    const value = options[key];
    if (!Number.isSafeInteger(value) || value < 0 || (key === 'dashboardConnectionsPerUser' && value === 0)) {
      throw new TypeError(
        `dialects.${key} must be a ${key === 'dashboardConnectionsPerUser' ? 'positive' : 'non-negative'} integer (got ${value})`,
      );
    }
  }
}

export { SESSION_COOKIE } from '../credentials.js';
export { DialectClose } from './base.js';
