/**
 * What every WebSocket connection shares, whatever protocol it speaks (the
 * native one in `ws.ts`, a seed's in `dialects/`): the message rate and the
 * count of invalid messages, handling messages one after another, the hub
 * topics it listens on, the deliveries held while a snapshot is read, the
 * connection limits it counts against, its outbox, the heartbeat's checks, and
 * closing. A protocol subclass only reads its messages and writes its own.
 */
import type { Duplex } from 'node:stream';
import { ErrorCode } from '@headway/protocol';
import { type RawData, WebSocket } from 'ws';
import type { Principal } from '../auth.js';
import type { ConnectionLimiter, ServerContext } from '../context.js';
import type { Delivery } from '../delivery.js';
import { type Subscriber, type Topic, topicKey } from '../hub.js';
import { Outbox } from '../outbox.js';
import { SmallMap } from '../small-map.js';
import { SnapshotHold, type SnapshotSeqs } from '../snapshot-hold.js';
import { CLOSE_REASONS, type CloseCodes, type CloseSituation } from './close-situations.js';
import { pingSocket, tokenExpired } from './heartbeat.js';
import { MessageRate, WindowCount } from './rate-limit.js';
import type { SocketServer, Upgrade } from './socket-server.js';
import { type Expiring, expirySecond, tokenExpiries } from './token-expiry.js';

/** What a connection sends first and the seqs it covers: live deliveries at or below them are dropped. */
export interface Snapshot {
  frames: unknown[];
  seen: SnapshotSeqs;
}

/** Deliveries held back while a snapshot is read; more means the connection cannot keep up. */
const MAX_HELD = 1_000;
/** Longest wait for a last message to leave before a closing connection is closed anyway, ms. */
const CLOSE_FLUSH_MS = 5_000; // 5 seconds
const CLOSE_FLUSH_POLL_MS = 20;

/**
 * One WebSocket connection. Subclasses start in `start` (authenticate,
 * subscribe, send the first messages), read frames in `onText`/`onMessage`, and
 * filter or follow up deliveries in `accepts` and `delivered`. The connection is
 * the hub subscriber for all of its topics, so the hub hands it each delivery
 * once even when several of its topics cover the job.
 */
export abstract class SocketConnection implements Subscriber, Expiring {
  private who: Principal | null = null;
  /** The socket while its handshake answer is held back (`begin`). */
  private handshake: Duplex | null = null;
  /** The second its token expires in, when the connection is scheduled to close then. */
  private expiresIn: number | null = null;

  /** Who the client is; null until authenticated, and for anonymous clients. */
  get principal(): Principal | null {
    return this.who;
  }
  /** Setting a browser token's principal schedules the connection to close at its `exp` (`token-expiry.ts`). */
  set principal(principal: Principal | null) {
    this.who = principal;
    this.cancelExpiry();
    const second = this.detached ? null : expirySecond(principal);
    if (second !== null) tokenExpiries.add(second, this);
    this.expiresIn = second;
  }
  /** Heartbeat sweeps since the last pong or message. */
  idleSweeps = 0;
  /** When the connection is closed unless it authenticated, ms since epoch (see `SocketServer.awaitAuth`). */
  authDeadline = 0;
  /** When the upgrade was accepted, ms since epoch. */
  readonly openedAt = Date.now();
  readonly outbox: Outbox;
  protected readonly ctx: ServerContext;

  private state: 'open' | 'closing' | 'closed' = 'open';
  private detached = false;
  /** Topic key → the topic and how many of the connection's subscriptions listen on it. */
  private topics: SmallMap<string, { topic: Topic; count: number }> | null = null;
  private counts: { counter: ConnectionLimiter; key: string }[] | null = null;
  /** Deliveries held while a snapshot is read; null when not reading one. */
  private held: SnapshotHold<Delivery> | null = null;
  /** Messages are handled one after another, so that answers keep the order of requests; null when none is pending. */
  private chain: Promise<void> | null = null;
  private closeTimer: NodeJS.Timeout | null = null;
  private readonly rate: MessageRate;
  /** Messages the connection could not use, in the current window; null until the first. */
  private invalid: WindowCount | null = null;

  constructor(
    readonly server: SocketServer,
    readonly ws: WebSocket,
    readonly upgrade: Upgrade,
    /** Label of the connection in metrics and logs. */
    readonly transport: string,
    private readonly closeCodes: CloseCodes,
    /** The bytes of a delivery in this protocol, or null to skip it; default the native `event`. */
    encode?: (delivery: Delivery) => Buffer | null,
  ) {
    this.ctx = server.ctx;
    this.rate = new MessageRate(this.ctx.options.limits.messagesPerSecond);
    this.outbox = new Outbox(ws, server.outboxConfig(transport, encode), this);
  }

  /** Resolves when the socket has closed. */
  get closed(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => this.ws.once('close', () => resolve()));
  }

  /** @internal The outbox passed its hard limit. */
  overflowed(): void {
    this.closeFor('slowReader');
  }

  /** @internal The token expired (see `token-expiry.ts`). */
  expire(): void {
    this.expiresIn = null;
    this.closeFor('tokenExpired');
  }

  /** Neither closed nor closing. */
  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Runs once, right after the upgrade. */
  abstract start(): Promise<void>;

  /** A text frame. Default: `onMessage`, after the messages before it. */
  protected onText(text: string): void {
    this.run(() => this.onMessage(text));
  }

  /** A text message, handled after the ones before it. Ignored unless overridden. */
  protected onMessage(_text: string): void | Promise<void> {}

  /** A binary frame. Default: counted as invalid. */
  protected onBinary(): void {
    this.countInvalid();
  }

  /** A message dropped for the rate limit. Default: nothing is said. */
  protected onDropped(): void {}

  /** Called on every heartbeat sweep, after the protocol-level ping. */
  protected onHeartbeat(): void {}

  /** Whether a delivery of one of the connection's topics goes to the client. Default: all. */
  protected accepts(_delivery: Delivery): boolean {
    return true;
  }

  /** Called after a delivery was queued for the client. */
  protected delivered(_delivery: Delivery): void {}

  /** Released when the connection ends: timers of the subclass. */
  protected onDetach(): void {}

  /** @internal The authentication deadline passed (see `SocketServer.awaitAuth`). */
  authTimedOut(): void {
    this.closeFor('authTimeout');
  }

  /** @internal The server shuts down. */
  shutDown(): void {
    this.closeFor('shutdown');
  }

  /** @internal A heartbeat sweep: an expired token closes; otherwise a ping (or termination of a silent peer). */
  sweep(nowSeconds: number): void {
    if (!this.isOpen) return;
    if (tokenExpired(this.principal, nowSeconds)) this.closeFor('tokenExpired');
    else if (pingSocket(this)) this.onHeartbeat();
  }

  // -------------------------------------------------------------------------
  // Hub

  /** Hub callback: a committed event on one of this connection's topics. */
  deliver(delivery: Delivery): void {
    if (!this.isOpen) return;
    const verdict = this.held === null ? 'open' : this.held.offer(delivery);
    if (verdict === 'open') this.forward(delivery);
    else if (verdict === 'full') this.closeFor('slowReader');
  }

  private forward(delivery: Delivery): void {
    if (!this.accepts(delivery)) return;
    if (this.outbox.push(delivery)) this.delivered(delivery);
  }

  /** Listen on a topic, once more: the hub is told on the first. */
  protected listen(topic: Topic): void {
    if (this.detached) return;
    const topics = (this.topics ??= new SmallMap());
    const key = topicKey(topic);
    const entry = topics.get(key);
    if (entry) entry.count++;
    else {
      topics.set(key, { topic, count: 1 });
      this.ctx.hub.subscribe(topic, this);
    }
    this.ctx.metrics.subscriptions.inc();
  }

  /** Undo one `listen`: the hub is told on the last. */
  protected unlisten(topic: Topic): void {
    const key = topicKey(topic);
    const entry = this.topics?.get(key);
    if (!entry) return;
    if (--entry.count === 0) {
      this.topics!.delete(key);
      this.ctx.hub.unsubscribe(topic, this);
    }
    this.ctx.metrics.subscriptions.dec();
  }

  protected isListening(topic: Topic): boolean {
    return this.topics?.has(topicKey(topic)) ?? false;
  }

  /** Topics listened on. */
  protected get topicCount(): number {
    return this.topics?.size ?? 0;
  }

  /**
   * Listen, then read what to send first: listening before reading means an
   * event committed meanwhile is either in the snapshot or held and sent after
   * it, never lost; held deliveries the snapshot already covers are dropped, and
   * so are later ones it covers. When `read` returns null (nothing to watch),
   * the listening is undone.
   */
  protected async subscribeWithSnapshot(
    topic: Topic,
    read: () => Promise<Snapshot | null>,
  ): Promise<Snapshot | null> {
    const hold = (this.held ??= new SnapshotHold<Delivery>(MAX_HELD));
    hold.start();
    this.listen(topic);
    let snapshot: Snapshot | null = null;
    try {
      snapshot = await read();
    } finally {
      const seen = [...(snapshot?.seen ?? [])];
      // Snapshots read at once share the hold: the first release ends it for all.
      const held = hold.release(seen);
      if (this.held === hold) this.held = null;
      if (snapshot === null) this.unlisten(topic);
      if (this.isOpen) {
        if (snapshot !== null) for (const frame of snapshot.frames) this.sendJson(frame);
        this.outbox.cover(seen);
        for (const d of held) if (this.covers(d)) this.forward(d);
      }
    }
    return snapshot;
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

  /** Count the connection under `key`; released when it ends. False at the limit. */
  protected async admit(counter: ConnectionLimiter, key: string): Promise<boolean> {
    // The user's count may be shared across processes (Redis), so it is awaited.
    const admitted = !this.detached && (await counter.acquire(key));
    if (admitted && this.detached) {
      // Closed while the count was taken: give the slot back.
      counter.release(key);
      return false;
    }
    if (!admitted) {
      if (!this.detached) this.ctx.metrics.clientErrors.inc({ code: ErrorCode.TOO_MANY_CONNECTIONS });
      return false;
    }
    (this.counts ??= []).push({ counter, key });
    return true;
  }

  // -------------------------------------------------------------------------
  // Inbound

  /**
   * @internal Start the connection on `socket`, whose handshake answer is held
   * back (corked): it leaves in one write with what `start` queues (a welcome, a
   * close frame), which the next write tick writes. The socket is let go after
   * that tick whatever `start` did, or at once when the connection closes first.
   */
  begin(socket: Duplex): void {
    this.handshake = socket;
    void this.run(() => this.start()).then(() => setImmediate(() => this.releaseHandshake()));
  }

  /** Let the handshake's answer go, with whatever was written after it. */
  private releaseHandshake(): void {
    this.handshake?.uncork();
    this.handshake = null;
  }

  /**
   * @internal Run a task after the ones before it, while the connection is open.
   * Resolves once it has run (or was skipped), never rejects.
   */
  run(task: () => void | Promise<void>): Promise<void> {
    const next: Promise<void> = (this.chain ?? Promise.resolve())
      .then(async () => {
        if (this.isOpen) await task();
      })
      .catch((err: unknown) => {
        this.server.logger.error({ err, transport: this.transport }, 'websocket connection failed');
        this.closeFor('internalError');
      })
      .then(() => {
        if (this.chain === next) this.chain = null;
      });
    this.chain = next;
    return next;
  }

  /** @internal A frame from the client. */
  receive(data: RawData, isBinary: boolean): void {
    if (!this.isOpen) return;
    this.idleSweeps = 0;
    if (!this.takeToken(Date.now())) return;
    if (isBinary) this.onBinary();
    else this.onText(frameText(data));
  }

  /**
   * Count a message the connection could not use; too many in a short time
   * close the connection. Returns false when it closed.
   */
  protected countInvalid(code: ErrorCode = ErrorCode.INVALID_MESSAGE): boolean {
    if ((this.invalid ??= new WindowCount()).add(Date.now()) > this.ctx.options.limits.maxInvalidMessages) {
      this.ctx.metrics.clientErrors.inc({ code });
      this.closeFor('invalidMessages');
      return false;
    }
    return true;
  }

  /** Token bucket of `messagesPerSecond` (burst of the same size); a sustained flood closes. */
  private takeToken(now: number): boolean {
    const verdict = this.rate.take(now);
    if (verdict === 'flood') {
      this.ctx.metrics.clientErrors.inc({ code: ErrorCode.RATE_LIMITED });
      this.closeFor('flood');
    } else if (verdict === 'drop') {
      this.onDropped();
    }
    return verdict === 'take';
  }

  // -------------------------------------------------------------------------
  // Outbound and closing

  /** Queue a message, in order with the deliveries. */
  sendJson(message: unknown): void {
    this.sendBytes(Buffer.from(JSON.stringify(message)));
  }

  sendBytes(bytes: Buffer): void {
    if (this.state === 'closed') return;
    this.outbox.send(bytes);
  }

  /** Hand what is queued to the socket, as far as it takes it (the rest is dropped), and close. */
  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.outbox.flush();
    this.detach();
    this.ws.close(code, reason);
    this.releaseHandshake();
  }

  /** Close with the protocol's code for the situation, if it closes in it. */
  protected closeFor(situation: CloseSituation): void {
    const code = this.closeCodes[situation];
    if (code !== null) this.close(code, CLOSE_REASONS[situation]);
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
    this.state = 'closed';
    if (this.detached) return;
    this.detached = true;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.cancelExpiry();
    this.held = null;
    this.leaveHub();
    this.outbox.dispose();
    for (const { counter, key } of this.counts ?? []) counter.release(key);
    this.counts = null;
    this.onDetach();
  }

  private cancelExpiry(): void {
    if (this.expiresIn !== null) tokenExpiries.delete(this.expiresIn, this);
    this.expiresIn = null;
  }

  private leaveHub(): void {
    if (!this.topics) return;
    for (const { topic, count } of this.topics.values()) {
      this.ctx.hub.unsubscribe(topic, this);
      this.ctx.metrics.subscriptions.dec(count);
    }
    this.topics = null;
  }
}

/** The UTF-8 text of a frame, however `ws` delivered its bytes. */
function frameText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
