import {
  type ClientMessage,
  CloseCode,
  type ControlMessage,
  ErrorCode,
  type GetStateMessage,
  type ServerMessage,
  type SubscribedMessage,
  type SubscribeJobMessage,
  type SubscribeScopeMessage,
  validateClientMessage,
} from '@headway/protocol';
import type { WebSocket } from 'ws';
import type { Principal } from '../auth.js';
import type { ServerContext } from '../context.js';
import type { Delivery } from '../delivery.js';
import { HeadwayError, notFound } from '../errors.js';
import { asHeadwayError, type Topic } from '../hub.js';
import { canControl, canSee, canWatchAll, limitedUser, scopeUser } from '../policy.js';
import { SmallMap } from '../small-map.js';
import type { SnapshotSeqs } from '../snapshot-hold.js';
import { stateJson } from '../state/state-json.js';
import type { CloseCodes } from './close-situations.js';
import { scopeSnapshot } from './scope-snapshot.js';
import { SocketConnection } from './socket-connection.js';
import { type SocketEndpoint, SocketServer, type Upgrade, type UrlSubscription } from './socket-server.js';
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

const CLOSE_CODES: CloseCodes = {
  slowReader: CloseCode.SLOW_READER,
  shutdown: CloseCode.SHUTDOWN,
  tokenExpired: CloseCode.TOKEN_EXPIRED,
  authTimeout: CloseCode.AUTH_TIMEOUT,
  flood: CloseCode.PROTOCOL_VIOLATION,
  invalidMessages: CloseCode.PROTOCOL_VIOLATION,
  // A failed request is answered with an error; the connection stays.
  internalError: null,
};

/** The native protocol's WebSocket endpoint, served by the hub's `SocketServer`. */
export const nativeEndpoint: SocketEndpoint = {
  transport: 'ws',
  path: WS_PATH,
  protocol: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
  // `?job=`, `?since=`, `?state=`: a first `subscribe`, made behind the `welcome`.
  subscription(query) {
    const job = query.get('job');
    return job === null ? null : { job, since: query.get('since'), state: query.get('state') };
  },
  connect: (server, ws, upgrade) => new NativeConnection(server, ws, upgrade),
};

/** The id of the subscription asked for in the upgrade URL. */
export const URL_SUBSCRIPTION = 'url';

/**
 * The native protocol alone, on a socket server of its own (the hub serves it
 * beside the dialects on one server): for embedding and for tests that read its
 * outbox statistics.
 */
export class WsTransport extends SocketServer {
  constructor(ctx: ServerContext) {
    super(ctx, [nativeEndpoint]);
  }
}

/**
 * One client connection of the native protocol: authentication (a credential
 * in the upgrade or an `auth` message, before the server's deadline), then
 * subscriptions and requests. Deliveries reach the client through the outbox.
 */
class NativeConnection extends SocketConnection {
  private phase: 'unauthenticated' | 'authenticating' | 'open' = 'unauthenticated';
  /** Subscription id → topic (marked when it asked for deltas); allocated on the first subscription. */
  private subscriptions: SmallMap<string, Topic & { delta?: true }> | null = null;
  /** Subscriptions that asked for deltas: deliveries carry patches while all of them do. */
  private deltas = 0;

  constructor(server: SocketServer, ws: WebSocket, upgrade: Upgrade) {
    super(server, ws, upgrade, 'ws', CLOSE_CODES);
  }

  /** Authenticated and not closed. */
  private get ready(): boolean {
    return this.phase === 'open' && this.isOpen;
  }

  async start(): Promise<void> {
    this.server.awaitAuth(this);
    // The session cookie comes last: a credential the client offers itself wins. The
    // Origin check every upgrade passes keeps other sites from riding the cookie.
    const { token, protocols, cookie } = this.upgrade;
    const offered = token || protocols.find((p) => p !== '' && p !== SUBPROTOCOL);
    if (!offered && !cookie) return;
    this.phase = 'authenticating';
    // The cookie carries browser tokens only: an API key there is refused like any invalid token.
    await (offered ? this.authenticate(offered) : this.authenticate(cookie!, true));
  }

  /** Verify a credential (a browser token only when `tokenOnly`) and open the connection, or close it with the matching code. */
  private async authenticate(credential: string, tokenOnly = false): Promise<void> {
    let principal: Principal;
    try {
      principal = tokenOnly
        ? await this.ctx.auth.verifyToken(credential)
        : await this.ctx.auth.authenticate(credential);
    } catch (err) {
      const code = err instanceof HeadwayError ? err.code : ErrorCode.UNAUTHORIZED;
      this.ctx.metrics.clientErrors.inc({ code });
      if (code === ErrorCode.TOKEN_EXPIRED) this.closeFor('tokenExpired');
      else this.close(CloseCode.TOKEN_INVALID, 'invalid credentials');
      return;
    }
    if (!this.isOpen) return;
    this.server.authenticated(this);
    const user = limitedUser(principal);
    if (user !== null && !(await this.admit(this.ctx.connections, user))) {
      if (this.isOpen) this.close(CloseCode.TOO_MANY_CONNECTIONS, 'too many connections for this user');
      return;
    }
    if (!this.isOpen) return;
    this.principal = principal;
    this.phase = 'open';
    this.reply(welcomeMessage(this.ctx, principal));
    const fromUrl = this.upgrade.subscribe;
    if (fromUrl !== null) {
      this.upgrade.subscribe = null;
      await this.subscribeFromUrl(fromUrl);
    }
  }

  /**
   * The subscription of the upgrade URL (`?job=`, `?since=`, `?state=`), made as
   * a `subscribe` message with id `url` sent first would make it: its reply
   * follows the `welcome`, and a client saves a round trip.
   */
  private async subscribeFromUrl(query: UrlSubscription): Promise<void> {
    const message: Record<string, unknown> = { type: 'subscribe', id: URL_SUBSCRIPTION, job: query.job };
    if (query.since !== null)
      message.since = /^\d{1,15}$/.test(query.since) ? Number(query.since) : query.since;
    if (query.state !== null) message.state = query.state;
    const result = validateClientMessage(message);
    if (!result.ok) {
      this.reject(ErrorCode[result.code], `URL subscription: ${result.message}`, URL_SUBSCRIPTION);
      return;
    }
    await this.handle(result.value as Exclude<ClientMessage, { type: 'auth' }>);
  }

  /** A job subscription was checked when it was made; deliveries through a scope are checked one by one. */
  protected override accepts(delivery: Delivery): boolean {
    // The cheap check first: it passes for almost every delivery.
    return canSee(this.principal!, delivery.state) || this.isListening({ job: delivery.job });
  }

  // -------------------------------------------------------------------------
  // Inbound

  protected override onBinary(): void {
    this.reject(ErrorCode.BAD_JSON, 'messages must be JSON text frames');
  }

  protected override onDropped(): void {
    const rate = this.ctx.options.limits.messagesPerSecond;
    this.error(ErrorCode.RATE_LIMITED, `more than ${rate} messages per second; message dropped`);
  }

  protected override onText(text: string): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
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
      if (this.phase !== 'unauthenticated') {
        this.reject(ErrorCode.ALREADY_AUTHENTICATED, 'this connection is already authenticated');
        return;
      }
      this.phase = 'authenticating';
      this.run(() => this.authenticate(message.token));
      return;
    }
    if (this.phase === 'unauthenticated') {
      this.reject(ErrorCode.UNAUTHORIZED, 'authenticate first with an auth message', id);
      return;
    }
    // While a credential is being verified, requests wait for it in the chain.
    this.run(() => this.handle(message));
  }

  /** Answer a malformed or unauthorized message; too many of them close the connection. */
  private reject(code: ErrorCode, message: string, id?: string): void {
    if (this.countInvalid(code)) this.error(code, message, id);
  }

  // -------------------------------------------------------------------------
  // Requests

  private async handle(message: Exclude<ClientMessage, { type: 'auth' }>): Promise<void> {
    if (!this.ready) return;
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
    const delta = message.state === 'delta';
    const state = await this.ctx.hub.getJob(job);
    if (!this.ready) return;
    if (!state || !canSee(this.principal!, state)) {
      this.error(ErrorCode.NOT_FOUND, notFound(job).message, id);
      return;
    }
    await this.subscribeAndReply(id, delta ? { job, delta } : { job }, async () => {
      const result = await this.ctx.hub.resume(job, since);
      // Deleted between the two reads.
      if (!result) throw notFound(job);
      const { state, events, recovered } = result;
      return {
        reply: { type: 'subscribed', id, jobs: [state], events, recovered },
        seen: [[job, state.seq]],
      };
    });
  }

  private async subscribeScope(message: SubscribeScopeMessage): Promise<void> {
    const { id, scope, since } = message;
    if (!this.canAddSubscription(id)) return;
    const p = this.principal!;
    let topic: Topic & { delta?: true };
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
    if (message.state === 'delta') topic.delta = true;
    await this.subscribeAndReply(id, topic, async () => {
      const snapshot = await scopeSnapshot(this.ctx.hub, p, owner, since ? Object.entries(since) : []);
      return {
        reply: { type: 'subscribed', id, ...snapshot },
        seen: snapshot.jobs.map((s) => [s.id, s.seq]),
      };
    });
  }

  /**
   * Listen first, then read: an event committed meanwhile is either in the
   * reply or queued behind the hold, never lost. The outbox drops the overlap.
   */
  private async subscribeAndReply(
    id: string,
    topic: Topic & { delta?: true },
    read: () => Promise<{ reply: SubscribedMessage; seen: SnapshotSeqs }>,
  ): Promise<void> {
    this.addSubscription(id, topic);
    const hold = this.outbox.hold();
    try {
      const { reply, seen } = await read();
      this.outbox.release(hold, encodeSubscribed(reply), seen);
    } catch (err) {
      this.removeSubscription(id);
      this.outbox.release(hold, this.failureBytes(err, id));
    }
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
    if (!this.ready) return;
    if (!state || !canSee(this.principal!, state)) {
      this.error(ErrorCode.NOT_FOUND, notFound(message.job).message, message.id);
      return;
    }
    this.reply({ type: 'state', id: message.id, job: state });
  }

  private async control(message: ControlMessage): Promise<void> {
    const p = this.principal!;
    const state = await this.ctx.hub.getJob(message.job);
    if (!this.ready) return;
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

  private addSubscription(id: string, topic: Topic & { delta?: true }): void {
    const subscriptions = (this.subscriptions ??= new SmallMap());
    subscriptions.set(id, topic);
    if (topic.delta) this.deltas++;
    this.outbox.setDelta(this.deltas === subscriptions.size);
    this.listen(topic);
  }

  private removeSubscription(id: string): void {
    const topic = this.subscriptions?.get(id);
    if (!topic) return;
    this.subscriptions!.delete(id);
    if (topic.delta) this.deltas--;
    if (this.subscriptions!.size > 0) this.outbox.setDelta(this.deltas === this.subscriptions!.size);
    this.unlisten(topic);
  }

  // -------------------------------------------------------------------------
  // Outbound

  /** Queue a reply, in order with the deliveries. */
  private reply(message: ServerMessage): void {
    this.sendBytes(encode(message));
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
    if (e.code === ErrorCode.INTERNAL) this.server.logger.error({ err }, 'websocket request failed');
    return this.errorBytes(e.code, e.message, id);
  }
}

function encode(message: ServerMessage): Buffer {
  return Buffer.from(JSON.stringify(message));
}

/**
 * A `subscribed` reply, each job's state written as the JSON made for it once
 * (`stateJson`, which the job's row and its full-state events share) rather
 * than serialized again for every connection that subscribes to it.
 */
function encodeSubscribed(reply: SubscribedMessage): Buffer {
  const { jobs, ...rest } = reply;
  let states = '';
  for (let i = 0; i < jobs.length; i++) states += (i === 0 ? '' : ',') + stateJson(jobs[i]!);
  return Buffer.from(`${JSON.stringify(rest).slice(0, -1)},"jobs":[${states}]}`);
}

/** The `id` of a message that failed validation, echoed in the error when it is a plausible one. */
function idOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const id = (value as { id?: unknown }).id;
  return typeof id === 'string' && id.length > 0 && id.length <= 64 ? id : undefined;
}
