import { mkdirSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import pino, { type Logger } from 'pino';
import { Auth } from './auth.js';
import type { Bus } from './bus/bus.js';
import { RedisBus } from './bus/redis.js';
import { ConnectionCounter, type ConnectionLimiter, type ServerContext } from './context.js';
import { Hub } from './hub.js';
import { Metrics } from './metrics.js';
import { type HeadwayOptions, type HeadwayOptionsInput, resolveOptions } from './options.js';
import { OriginPolicy } from './origins.js';
import { RedisConnectionCounter } from './redis-connection-counter.js';
import { PostgresStore } from './store/postgres.js';
import { SqliteStore } from './store/sqlite.js';
import type { Store } from './store/store.js';
import { Sweeper } from './sweeper.js';
import { registerDashboard } from './transports/dashboard.js';
import { checkDialectOptions, registerDialects } from './transports/dialects/index.js';
import { registerHttp } from './transports/http/index.js';
import { registerStats } from './transports/http/stats.js';
import { SocketServer } from './transports/socket-server.js';
import { SseTransport } from './transports/sse.js';
import { nativeEndpoint } from './transports/ws.js';

export interface CreateServerOptions extends HeadwayOptionsInput {
  /** A store to use instead of PostgreSQL (`postgresUrl`) or the SQLite file in `dataDir`. */
  store?: Store;
  /** A bus to use instead of Redis (`redisUrl`) or the in-process one. */
  bus?: Bus;
  logger?: Logger;
  /** The dashboard's build, served at `/`. Default `apps/dashboard/dist` of the repository. */
  dashboardDir?: string;
}

export interface HeadwayServer {
  readonly app: FastifyInstance;
  readonly hub: Hub;
  readonly auth: Auth;
  readonly context: ServerContext;
  readonly options: HeadwayOptions;
  /** Start listening; resolves with the base URL, e.g. `http://127.0.0.1:7070`. */
  listen(): Promise<string>;
  /** The base URL once listening. */
  readonly url: string;
  /**
   * Graceful shutdown: stop accepting, close client connections with a
   * "going away, reconnect" code, flush and close the store.
   */
  close(): Promise<void>;
}

/**
 * Assemble a hub server: store, bus, hub, auth, HTTP routes and the WebSocket
 * endpoint. Requires `jwtSecret` and at least one API key (the CLI generates
 * them in development).
 */
export async function createServer(input: CreateServerOptions): Promise<HeadwayServer> {
  const options = resolveOptions(input);
  checkDialectOptions(options.dialects);
  if (!options.jwtSecret) throw new TypeError('createServer: "jwtSecret" is required');
  const logger = input.logger ?? pino({ level: options.logLevel, name: 'headway' });
  let store = input.store;
  if (!store && options.postgresUrl) {
    store = new PostgresStore({ connectionString: options.postgresUrl, schema: options.postgresSchema });
  }
  if (!store) {
    mkdirSync(options.dataDir, { recursive: true });
    store = new SqliteStore({ path: join(options.dataDir, 'headway.db') });
  }
  try {
    await store.migrate();
  } catch (err) {
    if (!input.store) await store.close();
    throw err;
  }
  const metrics = new Metrics({ defaultMetrics: true });
  let bus = input.bus;
  let connections: ConnectionLimiter = new ConnectionCounter(options.limits.connectionsPerUser);
  if (!bus && options.redisUrl) {
    const redisBus = new RedisBus({
      url: options.redisUrl,
      prefix: options.redisPrefix,
      connectionName: `headway@${options.redisPrefix.replace(/[^!-~]/g, '_')}`,
      logger: logger.child({ component: 'bus' }),
      metrics,
    });
    bus = redisBus;
    connections = new RedisConnectionCounter({
      redis: redisBus.client,
      prefix: options.redisPrefix,
      limit: options.limits.connectionsPerUser,
      logger: logger.child({ component: 'connections' }),
    });
  }
  const hub = new Hub({
    store,
    bus,
    metrics,
    replayLimit: options.limits.replayLimit,
    maxJsonBytes: options.limits.maxJsonBytes,
    // Unset: the hub's default, which checks only with a shared bus.
    idleCheckMs: input.idleCheckMs,
  });
  const auth = new Auth({ jwtSecret: options.jwtSecret, apiKeys: options.apiKeys });
  const context: ServerContext = {
    hub,
    auth,
    metrics,
    logger,
    options,
    origins: new OriginPolicy(options.allowedOrigins, !options.production),
    connections,
  };

  const app = Fastify({
    loggerInstance: logger.child({ component: 'http' }) as FastifyBaseLogger,
    // Per-request log lines would dominate the log of a hub taking thousands of reports a second.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.limits.bodyBytes,
    forceCloseConnections: true,
  });
  await registerHttp(app, context);
  const sse = new SseTransport(context);
  sse.register(app);

  const dialects = registerDialects(app, context);
  await registerStats(app, context);
  await registerDashboard(app, { dir: input.dashboardDir });

  const sockets = new SocketServer(context, [nativeEndpoint, ...dialects.endpoints]);
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (sockets.handleUpgrade(req, socket, head)) return;
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  const sweeper = new Sweeper(store, options.retention, logger.child({ component: 'sweeper' }));
  let url = '';
  let closing: Promise<void> | null = null;

  return {
    app,
    hub,
    auth,
    context,
    options,
    get url() {
      return url;
    },
    async listen() {
      await app.listen({ port: options.port, host: options.host });
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : options.port;
      const host = options.host.includes(':') ? `[${options.host}]` : options.host;
      url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
      sweeper.start();
      return url;
    },
    close() {
      closing ??= (async () => {
        sweeper.stop();
        await sockets.close();
        await sse.close();
        await app.close();
        await hub.close();
        await connections.close?.();
        await hub.bus.close();
        await store.close();
      })();
      return closing;
    },
  };
}
