import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  type ClientMessage,
  CloseCode,
  type ControlMessage,
  ErrorCode,
  type GetStateMessage,
  type ServerMessage,
  type SubscribeJobMessage,
  type SubscribeScopeMessage,
  validateClientMessage,
} from '@headway/protocol';
import type { Logger } from 'pino';
import type { RawData, WebSocket, WebSocketServer } from 'ws';
import type { Principal } from '../auth.js';
import type { ServerContext } from '../context.js';
import type { Delivery } from '../delivery.js';
import { HeadwayError, notFound } from '../errors.js';
import { asHeadwayError, type Subscriber, type Topic, topicKey } from '../hub.js';
import { Outbox, type OutboxConfig } from '../outbox.js';
import { canControl, canSee, canWatchAll, limitedUser, scopeUser } from '../policy.js';
import { sessionToken } from './credentials.js';
import { Heartbeat, pingSocket, tokenExpired } from './heartbeat.js';
import { MessageRate, WindowCount } from './rate-limit.js';
import { scopeSnapshot } from './scope-snapshot.js';
import { attachSocket, frameText, shutDownSockets, socketServer } from './sockets.js';
import { admitUpgrade, upgradeUrl } from './upgrade.js';
import { welcomeMessage } from './welcome.js';

/** Path of the native protocol's endpoint (the query string is ignored). */
export const WS_PATH = '/v1/ws';

/**
 * Subprotocol of the native protocol. Browsers cannot set an Authorization
 * header on a WebSocket, so besides `?token=` and the `auth` message a client may
 * offer its credential as a second subprotocol: `new WebSocket(url, ['headway',
 * token])`. JWTs and API keys consist of characters valid in a subprotocol name.
 * The server selects `headway` and never echoes the token back.
 */
export const SUBPROTOCOL = 'headway';

/** Close reasons are limited to 123 bytes by the protocol; these stay short. */
const REASON = {
  slowReader: 'too far behind: reconnect and resume',
  shutdown: 'server going away, reconnect',
  authTimeout: 'no auth message in time',
  tokenExpired: 'token expired',
  tokenInvalid: 'invalid credentials',
  tooManyConnections: 'too many connections for this user',
  invalidMessages: 'too many invalid messages',
  flood: 'message flood',
} as const;

type ConnectionState = 'unauthenticated' | 'authenticating' | 'open' | 'closed';

/**
 * The native WebSocket transport: authentication, the per-connection protocol
 * state machine, subscriptions and the shared heartbeat. Deliveries reach clients
 * through each connection's `Outbox`.
 *
 * There are no per-connection timers: one heartbeat interval serves every
 * connection (pings, silent peers, expired tokens) and one timer, armed for the
 * oldest unauthenticated connection, enforces the authentication timeout.
 */
export class WsTransport {
  /** @internal */
  readonly ctx: ServerContext;
  /** @internal */
  readonly logger: Logger;
  /** @internal */
  readonly outboxConfig: OutboxConfig;
  private readonly wss: WebSocketServer;
  private readonly connections = new Set<Connection>();
  /** Connections not yet authenticated, oldest first: their deadlines are in the same order. */
  private readonly pendingAuth = new Set<Connection>();
  private authTimer: NodeJS.Timeout | null = null;
  private readonly heartbeat: Heartbeat;
  private closing: Promise<void> | null = null;
  private peakOutbox = 0;

  constructor(ctx: ServerContext) {
    this.ctx = ctx;
    this.logger = ctx.logger.child({ component: 'ws' });
    const limits = ctx.options.limits;
    this.outboxConfig = {
      softBytes: limits.outboxSoftBytes,
      hardBytes: limits.outboxHardBytes,
      metrics: ctx.metrics,
      transport: 'ws',
    };
    this.wss = socketServer(limits, (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false));
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

  /**
   * Take an HTTP upgrade request. Returns false when the path is not this
   * transport's, so that the server can offer the request to another one.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = upgradeUrl(req);
    if (url?.pathname !== WS_PATH) return false;
    if (!admitUpgrade(this.ctx, req, socket, this.closing !== null)) return true;
    // The session cookie comes last: a credential the client offers itself wins. The
    // Origin check above keeps other sites from riding the cookie.
    const credential =
      url.searchParams.get('token') ||
      protocolCredential(req.headers['sec-websocket-protocol']) ||
      sessionToken(req.headers.cookie);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, credential));
    return true;
  }

  /**
   * Close every connection with "server going away, reconnect", wait briefly
   * for the close handshakes, then cut off whoever did not answer.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopTimers();
      await shutDownSockets(this.wss, [...this.connections], CloseCode.SHUTDOWN, REASON.shutdown);
    })();
    return this.closing;
  }

  // -------------------------------------------------------------------------

  private accept(ws: WebSocket, credential: string | null): void {
    const conn = new Connection(this, ws);
    this.connections.add(conn);
    this.ctx.metrics.connections.inc({ transport: 'ws' });
    attachSocket(ws, conn, this.logger, () => this.remove(conn));
    conn.authDeadline = Date.now() + this.ctx.options.limits.authTimeoutMs;
    this.pendingAuth.add(conn);
    this.armAuthTimer();
    this.heartbeat.start();
    if (credential) conn.startAuth(credential);
  }

  /** @internal Verify a credential and open the connection, or close it with the matching code. */
  async authenticate(conn: Connection, credential: string): Promise<void> {
    let principal: Principal;
    try {
      principal = await this.ctx.auth.authenticate(credential);
    } catch (err) {
      const code = err instanceof HeadwayError ? err.code : ErrorCode.UNAUTHORIZED;
      this.ctx.metrics.clientErrors.inc({ code });
      if (code === ErrorCode.TOKEN_EXPIRED) conn.close(CloseCode.TOKEN_EXPIRED, REASON.tokenExpired);
      else conn.close(CloseCode.TOKEN_INVALID, REASON.tokenInvalid);
      return;
    }
    if (conn.state === 'closed') return;
    this.pendingAuth.delete(conn);
    const user = limitedUser(principal);
    const admitted = user === null || (await this.ctx.connections.acquire(user));
    if ((conn.state as ConnectionState) === 'closed') {
      // Closed while the count was taken (it may be shared across processes): give the slot back.
      if (admitted && user !== null) this.ctx.connections.release(user);
      return;
    }
    if (!admitted) {
      this.ctx.metrics.clientErrors.inc({ code: ErrorCode.TOO_MANY_CONNECTIONS });
      conn.close(CloseCode.TOO_MANY_CONNECTIONS, REASON.tooManyConnections);
      return;
    }
    conn.open(principal, user);
    conn.reply(welcomeMessage(this.ctx, principal));
  }

  private remove(conn: Connection): void {
    conn.detach();
    if (!this.connections.delete(conn)) return;
    this.pendingAuth.delete(conn);
    this.peakOutbox = Math.max(this.peakOutbox, conn.outbox.peakBytes);
    this.ctx.metrics.connections.dec({ transport: 'ws' });
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
      conn.close(CloseCode.AUTH_TIMEOUT, REASON.authTimeout);
    }
    this.armAuthTimer();
  };

  /** One pass over every connection: expired tokens, silent peers, pings. */
  private sweep(): void {
    const nowSeconds = Date.now() / 1000;
    for (const conn of this.connections) {
      if (conn.state === 'closed') continue;
      if (tokenExpired(conn.principal, nowSeconds)) conn.close(CloseCode.TOKEN_EXPIRED, REASON.tokenExpired);
      else pingSocket(conn);
    }
  }

  private stopTimers(): void {
    this.heartbeat.stop();
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = null;
  }
}

/**
 * One client connection: protocol state, subscriptions, limits. It is the hub
 * subscriber for all of its topics, so the hub hands it each delivery once even
 * when several of its subscriptions cover the job.
 */
class Connection implements Subscriber {
  state: ConnectionState = 'unauthenticated';
  principal: Principal | null = null;
  authDeadline = 0;
  /** Heartbeat sweeps since the last pong or message. */
  idleSweeps = 0;
  readonly outbox: Outbox;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<void>;

  /** The user counted against the per-user connection limit (null for API keys). */
  private counted: string | null = null;
  /** Subscription id → topic; allocated on the first subscription. */
  private subscriptions: Map<string, Topic> | null = null;
  /** Topic key → number of this connection's subscriptions on it. */
  private topics: Map<string, number> | null = null;
  /** Messages are handled one after another, so replies keep the order of requests. */
  private chain: Promise<void> = Promise.resolve();
  private readonly rate: MessageRate;
  /** Invalid and unauthorized messages in the current window. */
  private readonly invalid = new WindowCount();
  private detached = false;

  constructor(
    private readonly transport: WsTransport,
    readonly ws: WebSocket,
  ) {
    this.rate = new MessageRate(transport.ctx.options.limits.messagesPerSecond);
    this.outbox = new Outbox(ws, transport.outboxConfig, () =>
      this.close(CloseCode.SLOW_READER, REASON.slowReader),
    );
    this.closed = new Promise((resolve) => ws.once('close', () => resolve()));
  }

  private get ctx(): ServerContext {
    return this.transport.ctx;
  }

  // -------------------------------------------------------------------------
  // Lifecycle

  startAuth(credential: string): void {
    this.state = 'authenticating';
    this.enqueue(() => this.transport.authenticate(this, credential));
  }

  open(principal: Principal, user: string | null): void {
    this.principal = principal;
    this.counted = user;
    this.state = 'open';
  }

  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    // Hand what is queued (the errors that led here, say) to the socket ahead of
    // the close frame, as far as the socket takes it; the rest is dropped.
    this.outbox.flush();
    this.detach();
    this.ws.close(code, reason);
  }

  /** Leave the hub and release everything the connection holds. Idempotent. */
  detach(): void {
    this.state = 'closed';
    if (this.detached) return;
    this.detached = true;
    if (this.subscriptions) {
      this.ctx.metrics.subscriptions.dec(this.subscriptions.size);
      this.subscriptions = null;
    }
    if (this.topics) {
      for (const key of this.topics.keys()) this.ctx.hub.unsubscribe(topicOf(key), this);
      this.topics = null;
    }
    this.outbox.dispose();
    if (this.counted !== null) this.ctx.connections.release(this.counted);
    this.counted = null;
  }

  /** Hub callback: a committed event on one of this connection's topics. */
  deliver(delivery: Delivery): void {
    if (this.state !== 'open') return;
    // A job subscription was checked when it was made; deliveries that come
    // through a scope are checked one by one (a token limited to some jobs).
    // The cheap check first: it passes for almost every delivery.
    if (!canSee(this.principal!, delivery.state) && !this.topics?.has(`j:${delivery.job}`)) return;
    this.outbox.push(delivery);
  }

  // -------------------------------------------------------------------------
  // Inbound

  receive(data: RawData, isBinary: boolean): void {
    if (this.state === 'closed') return;
    this.idleSweeps = 0;
    const now = Date.now();
    if (!this.takeToken(now)) return;
    if (isBinary) {
      this.reject(ErrorCode.BAD_JSON, 'messages must be JSON text frames');
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(frameText(data));
    } catch {
      this.reject(ErrorCode.BAD_JSON, 'malformed JSON');
      return;
    }
    const id = idOf(value);
    const result = validateClientMessage(value);
    if (!result.ok) {
      this.reject(ErrorCode[result.code], result.message, id);
      return;
    }
    const message = result.value;
    if (message.type === 'auth') {
      if (this.state !== 'unauthenticated') {
        this.reject(ErrorCode.ALREADY_AUTHENTICATED, 'this connection is already authenticated');
        return;
      }
      this.startAuth(message.token);
      return;
    }
    if (this.state === 'unauthenticated') {
      this.reject(ErrorCode.UNAUTHORIZED, 'authenticate first with an auth message', id);
      return;
    }
    // While a credential is being verified, requests wait for it in the chain.
    this.enqueue(() => this.handle(message));
  }

  private enqueue(task: () => Promise<void>): void {
    this.chain = this.chain.then(task).catch((err: unknown) => {
      this.transport.logger.error({ err }, 'websocket message handling failed');
    });
  }

  /** Token bucket of `messagesPerSecond` (burst of the same size); a sustained flood closes. */
  private takeToken(now: number): boolean {
    const verdict = this.rate.take(now);
    if (verdict === 'take') return true;
    if (verdict === 'flood') {
      this.ctx.metrics.clientErrors.inc({ code: ErrorCode.RATE_LIMITED });
      this.close(CloseCode.PROTOCOL_VIOLATION, REASON.flood);
      return false;
    }
    const rate = this.ctx.options.limits.messagesPerSecond;
    this.error(ErrorCode.RATE_LIMITED, `more than ${rate} messages per second; message dropped`);
    return false;
  }

  /** Answer a malformed or unauthorized message; too many of them close the connection. */
  private reject(code: ErrorCode, message: string, id?: string): void {
    if (this.invalid.add(Date.now()) > this.ctx.options.limits.maxInvalidMessages) {
      this.ctx.metrics.clientErrors.inc({ code });
      this.close(CloseCode.PROTOCOL_VIOLATION, REASON.invalidMessages);
      return;
    }
    this.error(code, message, id);
  }

  // -------------------------------------------------------------------------
  // Requests

  private async handle(message: Exclude<ClientMessage, { type: 'auth' }>): Promise<void> {
    if (this.state !== 'open') return;
    const id = 'id' in message ? message.id : undefined;
    try {
      switch (message.type) {
        case 'subscribe':
          if ('job' in message) await this.subscribeJob(message);
          else await this.subscribeScope(message);
          return;
        case 'unsubscribe':
          this.unsubscribe(message.id);
          return;
        case 'get_state':
          await this.getState(message);
          return;
        case 'ping':
          this.reply(message.ts === undefined ? { type: 'pong' } : { type: 'pong', ts: message.ts });
          return;
        case 'cancel':
        case 'pause':
        case 'resume':
          await this.control(message);
          return;
      }
    } catch (err) {
      this.fail(err, id);
    }
  }

  private async subscribeJob(message: SubscribeJobMessage): Promise<void> {
    const { id, job, since } = message;
    if (!this.canAddSubscription(id)) return;
    const state = await this.ctx.hub.getJob(job);
    if (this.state !== 'open') return;
    if (!state || !canSee(this.principal!, state)) {
      this.error(ErrorCode.NOT_FOUND, notFound(job).message, id);
      return;
    }
    // Listen first, then read: an event committed meanwhile is either in the
    // replay or queued behind the hold, never lost. The outbox drops the overlap.
    this.addSubscription(id, { job });
    const hold = this.outbox.hold();
    let reply: Buffer;
    let seen: [string, number][] | undefined;
    try {
      const result = await this.ctx.hub.resume(job, since);
      if (result) {
        reply = encode({
          type: 'subscribed',
          id,
          jobs: [result.state],
          events: result.events,
          recovered: result.recovered,
        });
        seen = [[job, result.state.seq]];
      } else {
        // Deleted between the two reads.
        this.removeSubscription(id);
        reply = this.errorBytes(ErrorCode.NOT_FOUND, notFound(job).message, id);
      }
    } catch (err) {
      this.removeSubscription(id);
      reply = this.failureBytes(err, id);
    }
    this.outbox.release(hold, reply, seen);
  }

  private async subscribeScope(message: SubscribeScopeMessage): Promise<void> {
    const { id, scope, since } = message;
    if (!this.canAddSubscription(id)) return;
    const p = this.principal!;
    let topic: Topic;
    let owner: string | undefined;
    if (scope === 'all') {
      if (!canWatchAll(p)) {
        this.error(ErrorCode.FORBIDDEN, 'the "all" scope needs an API key or an admin token', id);
        return;
      }
      topic = { all: true };
    } else {
      const user = scopeUser(p);
      if (user === null) {
        this.error(ErrorCode.FORBIDDEN, 'an API key has no user: use the "all" scope', id);
        return;
      }
      topic = { user };
      owner = user;
    }
    this.addSubscription(id, topic);
    const hold = this.outbox.hold();
    let reply: Buffer;
    let seen: [string, number][] | undefined;
    try {
      const snapshot = await scopeSnapshot(this.ctx.hub, p, owner, since ? Object.entries(since) : []);
      if (this.state !== 'open') return;
      reply = encode({ type: 'subscribed', id, ...snapshot });
      seen = snapshot.jobs.map((s) => [s.id, s.seq]);
    } catch (err) {
      this.removeSubscription(id);
      reply = this.failureBytes(err, id);
    }
    this.outbox.release(hold, reply, seen);
  }

  private unsubscribe(id: string): void {
    if (!this.subscriptions?.has(id)) {
      this.error(ErrorCode.UNKNOWN_SUBSCRIPTION, `no subscription "${id}"`, id);
      return;
    }
    this.removeSubscription(id);
    this.reply({ type: 'ack', id });
  }

  private async getState(message: GetStateMessage): Promise<void> {
    const state = await this.ctx.hub.getJob(message.job);
    if (this.state !== 'open') return;
    if (!state || !canSee(this.principal!, state)) {
      this.error(ErrorCode.NOT_FOUND, notFound(message.job).message, message.id);
      return;
    }
    this.reply({ type: 'state', id: message.id, job: state });
  }

  private async control(message: ControlMessage): Promise<void> {
    const p = this.principal!;
    const state = await this.ctx.hub.getJob(message.job);
    if (this.state !== 'open') return;
    if (!state || !canControl(p, state)) {
      this.error(ErrorCode.NOT_FOUND, notFound(message.job).message, message.id);
      return;
    }
    const by = p.kind === 'user' ? p.user : p.id;
    const after = await this.ctx.hub.control(message.job, message.type, message.reason, by);
    this.reply({ type: 'ack', id: message.id, job: after });
  }

  // -------------------------------------------------------------------------
  // Subscriptions

  private canAddSubscription(id: string): boolean {
    if (this.subscriptions?.has(id)) {
      this.error(ErrorCode.DUPLICATE_SUBSCRIPTION, `subscription id "${id}" is in use`, id);
      return false;
    }
    const max = this.ctx.options.limits.maxSubscriptions;
    if ((this.subscriptions?.size ?? 0) >= max) {
      this.error(ErrorCode.TOO_MANY_SUBSCRIPTIONS, `at most ${max} subscriptions per connection`, id);
      return false;
    }
    return true;
  }

  private addSubscription(id: string, topic: Topic): void {
    (this.subscriptions ??= new Map()).set(id, topic);
    const topics = (this.topics ??= new Map());
    const key = topicKey(topic);
    const count = topics.get(key) ?? 0;
    if (count === 0) this.ctx.hub.subscribe(topic, this);
    topics.set(key, count + 1);
    this.ctx.metrics.subscriptions.inc();
  }

  private removeSubscription(id: string): void {
    const topic = this.subscriptions?.get(id);
    if (!topic || !this.topics) return;
    this.subscriptions!.delete(id);
    const key = topicKey(topic);
    const count = this.topics.get(key) ?? 0;
    if (count <= 1) {
      this.topics.delete(key);
      this.ctx.hub.unsubscribe(topic, this);
    } else {
      this.topics.set(key, count - 1);
    }
    this.ctx.metrics.subscriptions.dec();
  }

  // -------------------------------------------------------------------------
  // Outbound

  /** Queue a reply, in order with the deliveries. */
  reply(message: ServerMessage): void {
    this.outbox.send(encode(message));
  }

  private error(code: ErrorCode, message: string, id?: string): void {
    this.outbox.send(this.errorBytes(code, message, id));
  }

  private errorBytes(code: ErrorCode, message: string, id?: string): Buffer {
    this.ctx.metrics.clientErrors.inc({ code });
    return encode(id === undefined ? { type: 'error', code, message } : { type: 'error', id, code, message });
  }

  private fail(err: unknown, id: string | undefined): void {
    this.outbox.send(this.failureBytes(err, id));
  }

  /** The error reply for a failed request; unexpected failures are logged and answered INTERNAL. */
  private failureBytes(err: unknown, id: string | undefined): Buffer {
    const e = asHeadwayError(err);
    if (e.code === ErrorCode.INTERNAL) this.transport.logger.error({ err }, 'websocket request failed');
    return this.errorBytes(e.code, e.message, id);
  }
}

function encode(message: ServerMessage): Buffer {
  return Buffer.from(JSON.stringify(message));
}

function topicOf(key: string): Topic {
  if (key.startsWith('j:')) return { job: key.slice(2) };
  if (key.startsWith('u:')) return { user: key.slice(2) };
  return { all: true };
}

/** The `id` of a message that failed validation, echoed in the error when it is a plausible one. */
function idOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const id = (value as { id?: unknown }).id;
  return typeof id === 'string' && id.length > 0 && id.length <= 64 ? id : undefined;
}

/** The credential offered as a subprotocol next to `headway`, if any. */
function protocolCredential(header: string | undefined): string | null {
  if (!header) return null;
  for (const entry of header.split(',')) {
    const value = entry.trim();
    if (value !== '' && value !== SUBPROTOCOL) return value;
  }
  return null;
}
