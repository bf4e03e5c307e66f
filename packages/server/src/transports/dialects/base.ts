/**
 * The plumbing every dialect's WebSocket endpoint shares: path matching, the
 * Origin check, one `ws` server, one heartbeat for every connection, and a
 * connection base class that holds subscriptions in the hub and writes through an
 * `Outbox` whose deliveries are encoded once per dialect (`Delivery.encode`).
 *
 * A dialect connection only translates: it subscribes to hub topics, turns job
 * states and events into the seed's messages, and answers the seed's requests.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCode, type JobState } from '@headway/protocol';
import type { Logger } from 'pino';
import type { RawData, WebSocket, WebSocketServer } from 'ws';
import type { Principal } from '../../auth.js';
import { ConnectionCounter, type ConnectionLimiter, type ServerContext } from '../../context.js';
import type { Delivery } from '../../delivery.js';
import { HeadwayError } from '../../errors.js';
import { type Subscriber, type Topic, topicKey } from '../../hub.js';
import type { DialectName } from '../../options.js';
import { Outbox, type OutboxConfig } from '../../outbox.js';
import { sessionToken } from '../credentials.js';
import { Heartbeat, pingSocket, tokenExpired } from '../heartbeat.js';
import { MessageRate, WindowCount } from '../rate-limit.js';
import { attachSocket, frameText, shutDownSockets, socketServer } from '../sockets.js';
import { admitUpgrade, refuse, upgradeUrl } from '../upgrade.js';

/**
 * Close codes of the dialect endpoints. The seeds' clients know only the
 * standard codes (one of them reconnects on anything but 1000), so the dialects
 * use nothing else.
 */
export const DialectClose = {
  /** The conversation is over: the job ended (job-stream) or does not exist. */
  NORMAL: 1000,
  /** The hub is shutting down; reconnect. */
  GOING_AWAY: 1001,
  /** Missing, invalid or expired credentials, or abuse. */
  POLICY_VIOLATION: 1008,
  /** An unexpected server error; reconnect. */
  INTERNAL_ERROR: 1011,
  /** Too many connections, or too far behind: reconnect later. */
  TRY_AGAIN_LATER: 1013,
} as const;

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
}

/** One WebSocket endpoint of a dialect. */
export interface WsEndpoint {
  dialect: DialectName;
  /** Path template without the prefix; `:name` matches one non-empty segment, e.g. `/ws/:user_id`. */
  path: string;
  /** Checked before the upgrade: an HTTP status to refuse it with (429), or null. */
  admit?(upgrade: Upgrade): number | null;
  connect(server: DialectServer, ws: WebSocket, upgrade: Upgrade): DialectConnection;
}

/** What a connection sends first and the seqs it covers: live deliveries at or below them are dropped. */
export interface Snapshot {
  frames: unknown[];
  seen: Iterable<readonly [string, number]>;
}

/** Most jobs a user-wide connection starts with: the active ones. */
const SNAPSHOT_JOBS = 100;
/** Recently updated jobs looked at for ones that changed while a connection was set up. */
const SNAPSHOT_RECENT_JOBS = 20;
/** Clock difference between hub processes allowed for in "changed since the socket opened", ms. */
const SNAPSHOT_SLACK_MS = 1_000; // 1 second
/** Deliveries held back while a snapshot is read; more means the connection cannot keep up. */
const MAX_HELD = 1_000;
/** Longest wait for a last message to leave before a closing connection is closed anyway, ms. */
const CLOSE_FLUSH_MS = 5_000; // 5 seconds
const CLOSE_FLUSH_POLL_MS = 20;

type Matcher = (pathname: string) => Record<string, string> | null;

/** A matcher for `prefix + template`; `:name` segments capture one decoded, non-empty segment. */
export function compilePath(prefix: string, template: string): Matcher {
  const parts = `${prefix}${template}`.split('/');
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

/**
 * The WebSocket side of the enabled dialects: one `ws` server in `noServer`
 * mode, the Origin check and one heartbeat interval for all their connections.
 */
export class DialectServer {
  readonly ctx: ServerContext;
  readonly logger: Logger;
  /** Connections without credentials (public jobs), counted per client IP. */
  readonly anonymous: ConnectionCounter;
  private readonly outboxConfig: OutboxConfig;
  private readonly routes: { endpoint: WsEndpoint; match: Matcher }[];
  private readonly wss: WebSocketServer;
  private readonly connections = new Set<DialectConnection>();
  private readonly heartbeat: Heartbeat;
  private closing: Promise<void> | null = null;

  constructor(ctx: ServerContext, prefix: string, endpoints: readonly WsEndpoint[]) {
    this.ctx = ctx;
    this.logger = ctx.logger.child({ component: 'dialects' });
    const limits = ctx.options.limits;
    this.anonymous = new ConnectionCounter(limits.connectionsPerUser);
    this.outboxConfig = {
      softBytes: limits.outboxSoftBytes,
      hardBytes: limits.outboxHardBytes,
      metrics: ctx.metrics,
    };
    this.routes = endpoints.map((endpoint) => ({ endpoint, match: compilePath(prefix, endpoint.path) }));
    this.wss = socketServer(limits);
    this.heartbeat = new Heartbeat(limits.heartbeatMs, () => this.sweep());
  }

  /** Open dialect connections. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** @internal The outbox settings of a dialect's connections. */
  outboxFor(dialect: DialectName, encode: (delivery: Delivery) => Buffer | null): OutboxConfig {
    return { ...this.outboxConfig, transport: dialect, encode };
  }

  /**
   * Take an HTTP upgrade whose path belongs to an enabled dialect; false for any
   * other path, so that the server can offer it elsewhere.
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
      };
      const status = endpoint.admit?.(upgrade) ?? null;
      if (status !== null) {
        this.ctx.metrics.clientErrors.inc({ code: ErrorCode.RATE_LIMITED });
        refuse(socket, status, status === 429 ? 'Too Many Requests' : 'Forbidden');
        return true;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(endpoint, ws, upgrade));
      return true;
    }
    return false;
  }

  /** Close every connection with "going away", then cut off whoever does not answer. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.heartbeat.stop();
      const connections = [...this.connections];
      await shutDownSockets(this.wss, connections, DialectClose.GOING_AWAY, 'server going away, reconnect');
    })();
    return this.closing;
  }

  private accept(endpoint: WsEndpoint, ws: WebSocket, upgrade: Upgrade): void {
    const conn = endpoint.connect(this, ws, upgrade);
    this.connections.add(conn);
    this.ctx.metrics.connections.inc({ transport: endpoint.dialect });
    attachSocket(ws, conn, this.logger, () => {
      conn.detach();
      if (!this.connections.delete(conn)) return;
      this.ctx.metrics.connections.dec({ transport: endpoint.dialect });
      if (this.connections.size === 0) this.heartbeat.stop();
    });
    this.heartbeat.start();
    conn.run(() => conn.start());
  }

  /** One pass over every connection: expired tokens, silent peers, pings, the dialects' own heartbeats. */
  private sweep(): void {
    const nowSeconds = Date.now() / 1000;
    for (const conn of this.connections) {
      if (!conn.isOpen) continue;
      if (tokenExpired(conn.principal, nowSeconds)) {
        conn.close(DialectClose.POLICY_VIOLATION, 'token expired');
      } else if (pingSocket(conn)) {
        conn.onHeartbeat();
      }
    }
  }
}

/**
 * One client connection of a dialect. Subclasses authenticate in `start`,
 * subscribe to hub topics, answer the seed's messages in `onMessage`, and filter
 * or follow up deliveries in `accepts` and `delivered`; the encoder given to the
 * constructor turns a delivery into the dialect's message (null: nothing to send).
 */
export abstract class DialectConnection implements Subscriber {
  /** Who the client is; null until authenticated, and for anonymous clients. */
  principal: Principal | null = null;
  /** Heartbeat sweeps since the last pong or message. */
  idleSweeps = 0;
  /** When the upgrade was accepted, ms since epoch. */
  readonly openedAt = Date.now();
  readonly outbox: Outbox;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;
  protected readonly ctx: ServerContext;

  private state: 'open' | 'closing' | 'closed' = 'open';
  private detached = false;
  private topics: Map<string, Topic> | null = null;
  private counts: { counter: ConnectionLimiter; key: string }[] = [];
  /** Deliveries held back while a snapshot is read; null otherwise. */
  private held: Delivery[] | null = null;
  /** Messages are handled one after another, so that answers keep the order of requests. */
  private chain: Promise<void> = Promise.resolve();
  private closeTimer: NodeJS.Timeout | null = null;
  private readonly rate: MessageRate;
  /** Messages the dialect could not use, in the current window. */
  private readonly invalid = new WindowCount();

  constructor(
    readonly server: DialectServer,
    readonly ws: WebSocket,
    readonly upgrade: Upgrade,
    readonly dialect: DialectName,
    encoder: (delivery: Delivery) => string | null,
  ) {
    this.ctx = server.ctx;
    this.rate = new MessageRate(this.ctx.options.limits.messagesPerSecond);
    this.outbox = new Outbox(
      ws,
      server.outboxFor(dialect, (d) => d.encode(dialect, encoder)),
      () => this.close(DialectClose.TRY_AGAIN_LATER, 'too far behind: reconnect'),
    );
    this.closed = new Promise((resolve) => ws.once('close', () => resolve()));
  }

  /** Neither closed nor closing. */
  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Runs once, right after the upgrade: authenticate, subscribe, send the first messages. */
  abstract start(): Promise<void>;

  /** A text message from the client. Ignored unless overridden. */
  protected onMessage(_text: string): void | Promise<void> {}

  /** Called on every heartbeat sweep, after the protocol-level ping. */
  onHeartbeat(): void {}

  /** Whether a delivery of one of the connection's topics goes to the client. Default: all. */
  protected accepts(_delivery: Delivery): boolean {
    return true;
  }

  /** Called after a delivery was queued for the client. */
  protected delivered(_delivery: Delivery): void {}

  /** Released when the connection ends: timers of the subclass. */
  protected onDetach(): void {}

  // -------------------------------------------------------------------------
  // Hub

  deliver(delivery: Delivery): void {
    if (this.state !== 'open') return;
    if (this.held !== null) {
      if (this.held.length >= MAX_HELD) this.close(DialectClose.TRY_AGAIN_LATER, 'too far behind: reconnect');
      else this.held.push(delivery);
      return;
    }
    this.forward(delivery);
  }

  private forward(delivery: Delivery): void {
    if (!this.accepts(delivery)) return;
    if (this.outbox.push(delivery)) this.delivered(delivery);
  }

  protected subscribe(topic: Topic): void {
    const key = topicKey(topic);
    const topics = (this.topics ??= new Map());
    if (topics.has(key) || this.detached) return;
    topics.set(key, topic);
    this.ctx.hub.subscribe(topic, this);
    this.ctx.metrics.subscriptions.inc();
  }

  protected unsubscribe(topic: Topic): void {
    const key = topicKey(topic);
    if (!this.topics?.delete(key)) return;
    this.ctx.hub.unsubscribe(topic, this);
    this.ctx.metrics.subscriptions.dec();
  }

  protected isSubscribed(topic: Topic): boolean {
    return this.topics?.has(topicKey(topic)) ?? false;
  }

  protected get subscriptionCount(): number {
    return this.topics?.size ?? 0;
  }

  /**
   * Subscribe, then read what to send first: listening before reading means an
   * event committed meanwhile is either in the snapshot or held and sent after
   * it, never lost; held deliveries the snapshot already covers are dropped. When
   * `read` returns null (nothing to watch), the subscription is undone.
   */
  protected async subscribeWithSnapshot(
    topic: Topic,
    read: () => Promise<Snapshot | null>,
  ): Promise<Snapshot | null> {
    this.held ??= [];
    this.subscribe(topic);
    let snapshot: Snapshot | null = null;
    try {
      snapshot = await read();
    } finally {
      const held = this.held ?? [];
      this.held = null;
      if (snapshot === null) this.unsubscribe(topic);
      if (this.state === 'open') {
        if (snapshot !== null) for (const frame of snapshot.frames) this.sendJson(frame);
        const seen = new Map(snapshot?.seen ?? []);
        for (const d of held) {
          const upTo = seen.get(d.job);
          if ((upTo === undefined || d.seq > upTo) && this.covers(d)) this.forward(d);
        }
      }
    }
    return snapshot;
  }

  /**
   * What a client watching all of a user's jobs starts from: the active ones, and
   * those that changed since the socket opened, so that a job that ended while
   * the connection was being set up is not missed. Most recently updated first.
   */
  protected async userJobs(owner: string): Promise<JobState[]> {
    const hub = this.ctx.hub;
    const [active, recent] = await Promise.all([
      hub.listJobs({ owner, status: ['queued', 'running', 'paused'], limit: SNAPSHOT_JOBS }),
      hub.listJobs({ owner, limit: SNAPSHOT_RECENT_JOBS }),
    ]);
    const since = this.openedAt - SNAPSHOT_SLACK_MS;
    const jobs = new Map<string, JobState>();
    for (const s of recent.jobs) if (Date.parse(s.updatedAt) >= since) jobs.set(s.id, s);
    for (const s of active.jobs) if (jobs.size < SNAPSHOT_JOBS) jobs.set(s.id, s);
    return [...jobs.values()];
  }

  /**
   * Subscribe to all of a user's jobs, starting from `userJobs`: one `frame` for
   * each of them that `keep` accepts.
   */
  protected async subscribeUser(
    user: string,
    keep: (state: JobState) => boolean,
    frame: (state: JobState) => unknown,
  ): Promise<void> {
    await this.subscribeWithSnapshot({ user }, async (): Promise<Snapshot> => {
      const jobs = (await this.userJobs(user)).filter(keep);
      return { frames: jobs.map((s) => frame(s)), seen: jobs.map((s) => [s.id, s.seq] as const) };
    });
  }

  /** Whether one of the connection's current topics covers the delivery. */
  private covers(d: Delivery): boolean {
    const topics = this.topics;
    if (!topics) return false;
    return (
      topics.has(topicKey({ job: d.job })) ||
      topics.has(topicKey({ user: d.state.owner })) ||
      topics.has(topicKey({ all: true }))
    );
  }

  // -------------------------------------------------------------------------
  // Credentials and limits

  /**
   * Verify a credential: a browser token or API key, or (from the cookie) a
   * browser token only.
   * @throws HeadwayError UNAUTHORIZED or TOKEN_EXPIRED.
   */
  protected async verify(credential: string, fromCookie: boolean): Promise<Principal> {
    try {
      return fromCookie
        ? await this.ctx.auth.verifyToken(credential)
        : await this.ctx.auth.authenticate(credential);
    } catch (err) {
      const code = err instanceof HeadwayError ? err.code : ErrorCode.UNAUTHORIZED;
      this.ctx.metrics.clientErrors.inc({ code });
      throw err instanceof HeadwayError ? err : new HeadwayError(code, 'invalid credentials');
    }
  }

  /** The `?token=` credential, else the session cookie's; null when there is neither. */
  protected async upgradePrincipal(): Promise<Principal | null> {
    if (this.upgrade.token !== null) return this.verify(this.upgrade.token, false);
    if (this.upgrade.cookie !== null) return this.verify(this.upgrade.cookie, true);
    return null;
  }

  /** `upgradePrincipal`, with a credential that does not verify taken as none. */
  protected async upgradePrincipalOrNull(): Promise<Principal | null> {
    try {
      return await this.upgradePrincipal();
    } catch (err) {
      if (!(err instanceof HeadwayError)) throw err;
      return null;
    }
  }

  /** Count the connection against the user's limit (all transports); false at the limit. */
  protected admitUser(p: Principal): Promise<boolean> {
    return this.admit(this.ctx.connections, p.kind === 'user' ? p.user : p.id);
  }

  /** Count an anonymous connection against its IP address's limit; false at the limit. */
  protected admitAnonymous(): Promise<boolean> {
    return this.admit(this.server.anonymous, this.upgrade.ip);
  }

  /** Count the connection under `key`; released when it ends. False at the limit. */
  protected async admit(counter: ConnectionLimiter, key: string): Promise<boolean> {
    // The user's count may be shared across processes (Redis), so it is awaited.
    const admitted = !this.detached && (await counter.acquire(key));
    if (admitted && this.detached) {
      counter.release(key);
      return false;
    }
    if (!admitted) {
      if (!this.detached) this.ctx.metrics.clientErrors.inc({ code: ErrorCode.TOO_MANY_CONNECTIONS });
      return false;
    }
    this.counts.push({ counter, key });
    return true;
  }

  // -------------------------------------------------------------------------
  // Outbound

  /** Queue a message, in order with the deliveries. */
  sendJson(message: unknown): void {
    this.sendBytes(Buffer.from(JSON.stringify(message)));
  }

  sendBytes(bytes: Buffer): void {
    if (this.state === 'closed') return;
    this.outbox.send(bytes);
  }

  /** Write what is queued, as far as the socket takes it, and close. */
  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.outbox.flush();
    this.detach();
    this.ws.close(code, reason);
  }

  /**
   * Stop listening and close once everything queued has reached the socket (a
   * final message must not be cut off by the close), or after a few seconds.
   */
  closeAfterFlush(code: number, reason: string): void {
    if (this.state !== 'open') return;
    this.state = 'closing';
    this.leaveHub();
    const deadline = Date.now() + CLOSE_FLUSH_MS;
    const attempt = (): void => {
      this.closeTimer = null;
      if (this.detached) return;
      this.outbox.flush();
      if (this.outbox.queuedBytes === 0 || this.outbox.isClosed || Date.now() >= deadline) {
        this.close(code, reason);
        return;
      }
      this.closeTimer = setTimeout(attempt, CLOSE_FLUSH_POLL_MS);
      this.closeTimer.unref();
    };
    attempt();
  }

  /** Leave the hub and release everything the connection holds. Idempotent. */
  detach(): void {
    if (this.state !== 'closed') this.state = 'closed';
    if (this.detached) return;
    this.detached = true;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.held = null;
    this.leaveHub();
    this.outbox.dispose();
    for (const { counter, key } of this.counts) counter.release(key);
    this.counts = [];
    this.onDetach();
  }

  private leaveHub(): void {
    if (!this.topics) return;
    for (const topic of this.topics.values()) {
      this.ctx.hub.unsubscribe(topic, this);
      this.ctx.metrics.subscriptions.dec();
    }
    this.topics = null;
  }

  // -------------------------------------------------------------------------
  // Inbound

  /** @internal Run a task after the ones before it; a failure closes the connection. */
  run(task: () => void | Promise<void>): void {
    this.chain = this.chain
      .then(async () => {
        if (this.state === 'open') await task();
      })
      .catch((err: unknown) => {
        this.server.logger.error({ err, dialect: this.dialect }, 'dialect connection failed');
        this.close(DialectClose.INTERNAL_ERROR, 'internal error');
      });
  }

  /** @internal A frame from the client. */
  receive(data: RawData, isBinary: boolean): void {
    if (this.state !== 'open') return;
    this.idleSweeps = 0;
    if (!this.takeToken(Date.now())) return;
    if (isBinary) {
      this.countInvalid();
      return;
    }
    const text = frameText(data);
    this.run(() => this.onMessage(text));
  }

  /**
   * Count a message the dialect could not use; too many in a short time close
   * the connection (1008). Returns false when it closed.
   */
  protected countInvalid(): boolean {
    if (this.invalid.add(Date.now()) > this.ctx.options.limits.maxInvalidMessages) {
      this.ctx.metrics.clientErrors.inc({ code: ErrorCode.INVALID_MESSAGE });
      this.close(DialectClose.POLICY_VIOLATION, 'too many invalid messages');
      return false;
    }
    return true;
  }

  /** Token bucket of `messagesPerSecond`; excess messages are dropped, a sustained flood closes. */
  private takeToken(now: number): boolean {
    const verdict = this.rate.take(now);
    if (verdict === 'flood') {
      this.ctx.metrics.clientErrors.inc({ code: ErrorCode.RATE_LIMITED });
      this.close(DialectClose.POLICY_VIOLATION, 'message flood');
    }
    return verdict === 'take';
  }
}
