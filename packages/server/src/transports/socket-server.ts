/**
 * The hub's one WebSocket server. Every WebSocket endpoint, the native protocol
 * (`ws.ts`) and each dialect's paths (`dialects/`), is a small `SocketEndpoint`
 * on top of it: a path, and the connection class that speaks its protocol.
 *
 * The server matches an upgrade's path to an endpoint, checks what every upgrade
 * passes (shutdown, Origin), accepts the socket with one `ws` server in
 * `noServer` mode, and runs for all connections together: one heartbeat interval
 * (pings, silent peers, expired tokens), one timer for the authentication
 * deadline (armed for the oldest connection still waiting), and the shutdown.
 * There are no per-connection timers. Upgrades are accepted a few milliseconds'
 * worth per turn of the event loop (`upgrade-pacer.ts`).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex, Writable } from 'node:stream';
import { ErrorCode } from '@headway/protocol';
import type { Logger } from 'pino';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { ConnectionCounter, type ServerContext } from '../context.js';
import type { Delivery } from '../delivery.js';
import type { OutboxConfig } from '../outbox.js';
import { sessionToken } from './credentials.js';
import { Heartbeat } from './heartbeat.js';
import type { SocketConnection } from './socket-connection.js';
import { admitUpgrade, refuse, upgradeUrl } from './upgrade.js';
import { UpgradePacer } from './upgrade-pacer.js';

/** How long a shutdown waits for clients to answer the close handshake before cutting them off, ms. */
const SHUTDOWN_GRACE_MS = 1_000; // 1 second

/** What the upgrade request carried, for the connection to act on. */
export interface Upgrade {
  /** Path parameters, decoded. */
  params: Readonly<Record<string, string>>;
  /** `?token=` in the URL, or null. */
  token: string | null;
  /** The session cookie's browser token, or null. */
  cookie: string | null;
  /** The client's IP address (the socket's peer). */
  ip: string;
  /** The subprotocols the client offered, in its order. */
  protocols: readonly string[];
  /** A subscription asked for in the URL (see {@link SocketEndpoint.subscription}), or null; cleared once made. */
  subscribe: UrlSubscription | null;
}

/** The query of a subscription asked for in the upgrade URL, unchecked. */
export interface UrlSubscription {
  job: string;
  since: string | null;
  state: string | null;
}

/** One WebSocket endpoint: a path and the protocol spoken there. */
export interface SocketEndpoint {
  /** Label of its connections in the metrics: `ws`, or the dialect's name. */
  transport: string;
  /** Path template; `:name` matches one non-empty segment, e.g. `/ws/:user_id`. */
  path: string;
  /** The subprotocol to select among those offered; default the first one. */
  protocol?(offered: ReadonlySet<string>): string | false;
  /** Checked after the Origin: an HTTP status to refuse the upgrade with (429), or null. */
  admit?(upgrade: Upgrade): number | null;
  /** The subscription the upgrade URL's query asks for, unchecked, when the protocol takes one there. */
  subscription?(query: URLSearchParams): UrlSubscription | null;
  connect(server: SocketServer, ws: WebSocket, upgrade: Upgrade): SocketConnection;
}

type Matcher = (pathname: string) => Record<string, string> | null;

/** A socket that knows its connection, so that one set of listeners serves every socket. */
class HubSocket extends WebSocket {
  connection: SocketConnection | null = null;

  /**
   * Once the closing handshake has begun, `ws` ends the TCP socket and its frame
   * parser again when the peer's FIN and then the socket's close arrive. Node
   * answers each `end()` of a stream that has finished by building an error,
   * with a full stack trace, that nobody sees: about a seventh of the hub's CPU
   * while thousands of clients leave at once. Those calls are made no-ops here;
   * `ws` calls `close()` for every closing handshake, whichever side starts it.
   */
  override close(code?: number, data?: string | Buffer): void {
    super.close(code, data);
    const internals = this as unknown as { _socket?: Writable | null; _receiver?: Writable | null };
    quietEnd(internals._socket);
    quietEnd(internals._receiver);
  }
}

/** `end()` without arguments on a stream that has finished or is destroyed does nothing but build an error. */
function endOnce(this: Writable, ...args: unknown[]): Writable {
  if (args.length === 0 && (this.writableFinished || this.destroyed)) return this;
  return (Object.getPrototypeOf(this) as Writable).end.apply(this, args as Parameters<Writable['end']>);
}

/** Make `stream.end()` cheap once it can do nothing (see `HubSocket.close`). */
export function quietEnd(stream: Writable | null | undefined): void {
  if (stream && stream.end !== endOnce) stream.end = endOnce as Writable['end'];
}

function connectionOf(ws: WebSocket): SocketConnection | null {
  return (ws as HubSocket).connection;
}

function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  connectionOf(this)?.receive(data, isBinary);
}

/** A pong is a sign of life for the heartbeat. */
function onPong(this: WebSocket): void {
  const conn = connectionOf(this);
  if (conn) conn.idleSweeps = 0;
}

/** Logged only: a close follows. */
function onError(this: WebSocket, err: Error): void {
  connectionOf(this)?.server.logger.debug({ err }, 'websocket error');
}

function onClose(this: WebSocket): void {
  const conn = connectionOf(this);
  if (conn) conn.server.removed(conn);
}

/** A matcher for a path template; `:name` segments capture one decoded, non-empty segment. */
export function compilePath(template: string): Matcher {
  const parts = template.split('/');
  return function match(pathname) {
    const segments = pathname.split('/');
    if (segments.length !== parts.length) return null;
    const params: Record<string, string> = {};
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const segment = segments[i]!;
      if (part.startsWith(':')) {
        if (segment === '') return null;
        try {
          params[part.slice(1)] = decodeURIComponent(segment);
        } catch {
          return null;
        }
      } else if (part !== segment) {
        return null;
      }
    }
    return params;
  };
}

export class SocketServer {
  readonly ctx: ServerContext;
  readonly logger: Logger;
  /** Connections without credentials (public jobs), counted per client IP. */
  readonly anonymous: ConnectionCounter;
  private readonly routes: { endpoint: SocketEndpoint; match: Matcher }[];
  private readonly wss: WebSocketServer;
  /** The endpoint of each upgrade being accepted, for the subprotocol choice. */
  private readonly accepting = new WeakMap<IncomingMessage, SocketEndpoint>();
  private readonly connections = new Set<SocketConnection>();
  /** Connections not yet authenticated, oldest first: their deadlines are in the same order. */
  private readonly pendingAuth = new Set<SocketConnection>();
  private authTimer: NodeJS.Timeout | null = null;
  private readonly heartbeat: Heartbeat;
  private closing: Promise<void> | null = null;
  private peakOutbox = 0;
  private readonly outboxConfigs = new Map<string, OutboxConfig>();
  /** Upgrades are accepted a slice at a time, so that a storm of them cannot stall deliveries. */
  private readonly pacer = new UpgradePacer();

  constructor(ctx: ServerContext, endpoints: readonly SocketEndpoint[]) {
    this.ctx = ctx;
    this.logger = ctx.logger.child({ component: 'ws' });
    const limits = ctx.options.limits;
    this.anonymous = new ConnectionCounter(limits.connectionsPerUser);
    this.routes = endpoints.map((endpoint) => ({ endpoint, match: compilePath(endpoint.path) }));
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: limits.maxMessageBytes,
      // Compression costs memory per socket.
      perMessageDeflate: false,
      // The server keeps its own list.
      clientTracking: false,
      WebSocket: HubSocket,
      handleProtocols: (offered, req) => {
        const choose = this.accepting.get(req)?.protocol;
        return choose ? choose(offered) : (offered.values().next().value ?? false);
      },
    });
    this.heartbeat = new Heartbeat(limits.heartbeatMs, () => this.sweep());
  }

  /** Open connections. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Queued bytes now, and the highest queued + socket-buffered bytes any
   * connection reached, for diagnostics.
   */
  stats(): { connections: number; queuedBytes: number; peakOutboxBytes: number } {
    let queued = 0;
    let peak = this.peakOutbox;
    for (const c of this.connections) {
      queued += c.outbox.queuedBytes;
      peak = Math.max(peak, c.outbox.peakBytes);
    }
    return { connections: this.connections.size, queuedBytes: queued, peakOutboxBytes: peak };
  }

  /** @internal The outbox settings of an endpoint's connections. */
  outboxConfig(transport: string, encode?: (delivery: Delivery) => Buffer | null): OutboxConfig {
    // One per transport for the native encoding: connections share it.
    const shared = encode ? undefined : this.outboxConfigs.get(transport);
    if (shared) return shared;
    const limits = this.ctx.options.limits;
    const config: OutboxConfig = {
      softBytes: limits.outboxSoftBytes,
      hardBytes: limits.outboxHardBytes,
      metrics: this.ctx.metrics,
      transport,
    };
    if (encode) config.encode = encode;
    else this.outboxConfigs.set(transport, config);
    return config;
  }

  /**
   * Take an HTTP upgrade whose path belongs to an endpoint; false for any other
   * path, so that the HTTP server can answer it.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = upgradeUrl(req);
    if (url === null) return false;
    for (const { endpoint, match } of this.routes) {
      const params = match(url.pathname);
      if (params === null) continue;
      if (!admitUpgrade(this.ctx, req, socket, this.closing !== null)) return true;
      const upgrade: Upgrade = {
        params,
        token: url.searchParams.get('token') || null,
        cookie: sessionToken(req.headers.cookie),
        ip: req.socket.remoteAddress ?? 'unknown',
        protocols: (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()),
        subscribe: endpoint.subscription?.(url.searchParams) ?? null,
      };
      const status = endpoint.admit?.(upgrade) ?? null;
      if (status !== null) {
        this.ctx.metrics.clientErrors.inc({ code: ErrorCode.RATE_LIMITED });
        refuse(socket, status, status === 429 ? 'Too Many Requests' : 'Forbidden');
        return true;
      }
      this.accepting.set(req, endpoint);
      // A client that goes away while it waits must not raise an unhandled error.
      const gone = () => socket.destroy();
      socket.on('error', gone);
      this.pacer.push(() => {
        socket.off('error', gone);
        if (socket.destroyed) return;
        if (this.closing !== null) {
          refuse(socket, 503, 'Service Unavailable');
          return;
        }
        // The handshake's answer is held back (corked) until the connection's first
        // messages are written, so that they leave together in one write.
        socket.cork();
        let accepted = false;
        this.wss.handleUpgrade(req, socket, head, (ws) => {
          accepted = true;
          this.accept(endpoint, ws as HubSocket, upgrade, socket);
        });
        // Refused by `ws`: its answer goes now.
        if (!accepted) socket.uncork();
      });
      return true;
    }
    return false;
  }

  /**
   * Close every connection with its protocol's "going away, reconnect", wait up
   * to `SHUTDOWN_GRACE_MS` for the close handshakes, then cut off whoever did not answer.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopTimers();
      // Upgrades still waiting for their turn are refused (503).
      this.pacer.clear((accept) => accept());
      const connections = [...this.connections];
      const closed = Promise.all(connections.map((c) => c.closed));
      for (const c of connections) c.shutDown();
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([
        closed,
        new Promise((resolve) => (grace = setTimeout(resolve, SHUTDOWN_GRACE_MS))),
      ]);
      clearTimeout(grace);
      for (const c of connections) c.ws.terminate();
      await closed;
      await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    })();
    return this.closing;
  }

  /** @internal Close the connection with its protocol's timeout code unless it authenticates in time. */
  awaitAuth(conn: SocketConnection): void {
    conn.authDeadline = Date.now() + this.ctx.options.limits.authTimeoutMs;
    this.pendingAuth.add(conn);
    this.armAuthTimer();
  }

  /** @internal The connection authenticated: its deadline no longer applies. */
  authenticated(conn: SocketConnection): void {
    this.pendingAuth.delete(conn);
  }

  // -------------------------------------------------------------------------

  private accept(endpoint: SocketEndpoint, ws: HubSocket, upgrade: Upgrade, socket: Duplex): void {
    const conn = endpoint.connect(this, ws, upgrade);
    this.connections.add(conn);
    this.ctx.metrics.connections.inc({ transport: conn.transport });
    // The same listener functions for every socket: no closures per connection.
    ws.connection = conn;
    ws.on('message', onMessage);
    ws.on('pong', onPong);
    ws.on('error', onError);
    ws.once('close', onClose);
    this.heartbeat.start();
    conn.begin(socket);
  }

  /** @internal The connection's socket closed. */
  removed(conn: SocketConnection): void {
    conn.detach();
    if (!this.connections.delete(conn)) return;
    this.pendingAuth.delete(conn);
    this.peakOutbox = Math.max(this.peakOutbox, conn.outbox.peakBytes);
    this.ctx.metrics.connections.dec({ transport: conn.transport });
    if (this.connections.size === 0) this.stopTimers();
  }

  private armAuthTimer(): void {
    if (this.authTimer || this.pendingAuth.size === 0) return;
    const oldest = this.pendingAuth.values().next().value!;
    this.authTimer = setTimeout(this.expireAuth, Math.max(0, oldest.authDeadline - Date.now()));
    this.authTimer.unref();
  }

  private readonly expireAuth = (): void => {
    this.authTimer = null;
    const now = Date.now();
    for (const conn of this.pendingAuth) {
      if (conn.authDeadline > now) break;
      this.pendingAuth.delete(conn);
      this.ctx.metrics.clientErrors.inc({ code: ErrorCode.UNAUTHORIZED });
      conn.authTimedOut();
    }
    this.armAuthTimer();
  };

  /** One pass over every connection: expired tokens, silent peers, pings. */
  private sweep(): void {
    const nowSeconds = Date.now() / 1000;
    for (const conn of this.connections) conn.sweep(nowSeconds);
  }

  private stopTimers(): void {
    this.heartbeat.stop();
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = null;
  }
}
