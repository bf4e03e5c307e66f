/**
 * Server-Sent Events: `GET /v1/stream`, for clients that cannot keep a
 * WebSocket open (proxies that strip `Upgrade`, firewalls).
 *
 * A stream carries the native protocol's server messages, one JSON message per
 * SSE event in `data`, unnamed, so `EventSource.onmessage` sees them all: a
 * `welcome`, one `subscribed` with the states and the missed events, then an
 * `event` message per event. Two named events complete it: `ping` (the heartbeat)
 * and `close` (`{code, reason}` with a close code of the native protocol, sent
 * before the hub ends the stream).
 *
 * Resume: every `event` and `subscribed` carries an SSE `id` that encodes the seq
 * reached per job, `<jobId>:<seq>` entries joined by commas (job ids contain
 * neither `,` nor whitespace; the seq follows the last `:`). A single-job stream's
 * id is `video-1:42`; a multi-job or scope stream's lists every requested job and
 * each unfinished job of the scope. `EventSource` sends the last id back in
 * `Last-Event-ID` when it reconnects; a client that opens a new stream passes the
 * same format in `?since=`.
 *
 * Deliveries reach the stream through an `Outbox` per connection, like WebSocket
 * frames: bounded, batched per tick, collapsed for slow readers. A single-job
 * stream writes bytes encoded once for all its subscribers; a multi-job stream
 * prepends its own id line to the shared JSON.
 */
import type { ServerResponse } from 'node:http';
import {
  CloseCode,
  ErrorCode,
  type JobEvent,
  type JobState,
  type ServerMessage,
  TERMINAL_STATUSES,
} from '@headway/protocol';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Principal } from '../auth.js';
import { BoundedMap } from '../bounded-map.js';
import type { ServerContext } from '../context.js';
import type { Delivery } from '../delivery.js';
import { HeadwayError } from '../errors.js';
import type { Subscriber, Topic } from '../hub.js';
import { Outbox, type OutboxConfig, type OutboxSocket } from '../outbox.js';
import { canSee, canWatchAll, limitedUser, scopeUser } from '../policy.js';
import { SnapshotHold } from '../snapshot-hold.js';
import { Heartbeat, tokenExpired } from './heartbeat.js';
import { scopeSnapshot } from './scope-snapshot.js';
import { formatStreamId, parseRequest, type StreamRequest, streamPrincipal } from './stream-request.js';
import { atTokenExpiry, type TokenExpiry } from './token-expiry.js';
import { welcomeMessage } from './welcome.js';

export { formatStreamId, parseStreamId, type StreamRequest, TOKEN_COOKIE } from './stream-request.js';

/** Path of the SSE endpoint. */
export const SSE_PATH = '/v1/stream';

/** Deliveries held while a stream's snapshot is read; past it the stream is closed as a slow reader. */
const MAX_HELD_DELIVERIES = 10_000;
/** Longest SSE id, bytes: unfinished scope jobs beyond it are left out (they resume from their state). */
const MAX_ID_BYTES = 4096; // 4 KiB
/** Jobs whose last delivered seq a stream remembers for de-duplication. */
const MAX_SEEN_JOBS = 1024;
const NL2 = Buffer.from('\n\n');
/**
 * The heartbeat: a comment line keeps proxies from timing out an idle stream;
 * the `ping` event lets `EventSource` clients, which never see comments, notice
 * a stream that went silent.
 */
const HEARTBEAT = Buffer.from(': heartbeat\nevent: ping\ndata:\n\n');

/**
 * The SSE transport: parses and authorizes stream requests, keeps one
 * `SseConnection` per open stream and one heartbeat timer for all of them.
 */
export class SseTransport {
  /** @internal */
  readonly ctx: ServerContext;
  /** @internal */
  readonly logger: Logger;
  /** @internal */
  readonly outboxConfig: OutboxConfig;
  private readonly connections = new Set<SseConnection>();
  private readonly heartbeat: Heartbeat;
  private closing = false;

  constructor(ctx: ServerContext) {
    this.ctx = ctx;
    this.logger = ctx.logger.child({ component: 'sse' });
    this.outboxConfig = {
      softBytes: ctx.options.limits.outboxSoftBytes,
      hardBytes: ctx.options.limits.outboxHardBytes,
      metrics: ctx.metrics,
      transport: 'sse',
    };
    this.heartbeat = new Heartbeat(ctx.options.limits.heartbeatMs, () => this.sweep());
  }

  /** Open streams. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Add `GET /v1/stream` to the app (after the REST API, so that its CORS and Origin checks apply). */
  register(app: FastifyInstance): void {
    app.get(
      SSE_PATH,
      {
        schema: {
          // A stream, not a JSON answer: documented in docs/protocol.md rather than in /openapi.json.
          hide: true,
          tags: ['events'],
          operationId: 'stream',
          summary: 'Server-Sent Events: live events of jobs or of a scope, with Last-Event-ID resume.',
          description:
            'Query: `job` (repeat or comma-separate, up to the subscription limit) and/or `scope` ' +
            '(neither: a stream with only the welcome and heartbeats, for a client that subscribes later); ' +
            '`scope` is `user`, or `all` for API keys and admin tokens; `since` (or the `Last-Event-ID` header) ' +
            'as `<jobId>:<seq>,…`; the credential in `token`, in `Authorization: Bearer` or in the ' +
            '`headway_token` cookie. Each SSE event holds one native protocol message; see docs/protocol.md.',
          security: [{ bearer: [] }],
        },
      },
      async (request, reply) => {
        if (this.closing) throw new HeadwayError(ErrorCode.SHUTTING_DOWN, 'the hub is shutting down');
        const principal = await streamPrincipal(this.ctx.auth, request);
        const stream = parseRequest(request, this.ctx.options.limits.maxSubscriptions);
        if (stream.scope === 'all' && !canWatchAll(principal)) {
          throw new HeadwayError(ErrorCode.FORBIDDEN, 'the "all" scope needs an API key or an admin token');
        }
        if (stream.scope === 'user' && scopeUser(principal) === null) {
          throw new HeadwayError(ErrorCode.FORBIDDEN, 'an API key has no user: use the "all" scope');
        }
        const user = limitedUser(principal);
        if (user !== null && !(await this.ctx.connections.acquire(user))) {
          throw new HeadwayError(ErrorCode.TOO_MANY_CONNECTIONS, 'too many open connections for this user');
        }
        if (request.raw.destroyed || reply.raw.destroyed) {
          // Gone while the count was taken (it may be shared across processes): give the slot back.
          if (user !== null) this.ctx.connections.release(user);
          return;
        }
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, {
          ...(reply.getHeaders() as Record<string, string>),
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          connection: 'keep-alive',
          // nginx buffers responses unless told otherwise.
          'x-accel-buffering': 'no',
        });
        const conn = new SseConnection(this, res, principal, user, stream);
        this.connections.add(conn);
        this.ctx.metrics.connections.inc({ transport: 'sse' });
        this.heartbeat.start();
        res.once('close', () => this.remove(conn));
        conn.start().catch((err: unknown) => {
          this.logger.error({ err }, 'sse stream failed');
          conn.close(CloseCode.RECONNECT, 'internal error');
        });
      },
    );
  }

  /** End every stream with "server going away, reconnect" and refuse new ones. */
  async close(): Promise<void> {
    this.closing = true;
    this.heartbeat.stop();
    for (const conn of [...this.connections]) conn.close(CloseCode.SHUTDOWN, 'server going away, reconnect');
  }

  private remove(conn: SseConnection): void {
    conn.detach();
    if (!this.connections.delete(conn)) return;
    this.ctx.metrics.connections.dec({ transport: 'sse' });
    if (this.connections.size === 0) this.heartbeat.stop();
  }

  /** One pass over every stream: expired tokens are closed, the others get a heartbeat. */
  private sweep(): void {
    const nowSeconds = Date.now() / 1000;
    for (const conn of this.connections) {
      if (tokenExpired(conn.principal, nowSeconds)) conn.close(CloseCode.TOKEN_EXPIRED, 'token expired');
      else conn.outbox.send(HEARTBEAT);
    }
  }
}

/** The part of the response the outbox writes to, shaped like a `ws` WebSocket. */
function responseSocket(res: ServerResponse): OutboxSocket {
  return {
    get readyState() {
      return res.writableEnded || res.destroyed ? 3 : 1;
    },
    get bufferedAmount() {
      return res.writableLength;
    },
    send(data, _options, cb) {
      res.write(data, cb && ((err) => cb(err ?? undefined)));
    },
    // The outbox corks `_socket` around a batch so that it leaves in one write.
    _socket: res,
  } as OutboxSocket;
}

/** One open stream: a hub subscriber for its jobs and scope, writing through its outbox. */
class SseConnection implements Subscriber {
  readonly outbox: Outbox;
  /** Requested jobs, always listed in the id. */
  private readonly explicit: Set<string>;
  /** Seq reached per job, for the id: the requested jobs and the unfinished jobs of the scope. */
  private readonly ids = new Map<string, number>();
  /** Last seq delivered per job (least recently updated first), to drop duplicates. */
  private readonly seen = new BoundedMap<string, number>(MAX_SEEN_JOBS);
  /** The id line of each delivery of a multi-job stream (a stream position, not the delivery's). */
  private readonly frameIds = new WeakMap<Delivery, string>();
  /** Frames of multi-job streams, each with its own id line. */
  private readonly frames = new WeakMap<Delivery, Buffer>();
  private readonly topics: Topic[] = [];
  private readonly single: boolean;
  /** Deliveries that arrive while the snapshot is read. */
  private readonly held = new SnapshotHold<Delivery>(MAX_HELD_DELIVERIES);
  private closed = false;
  private detached = false;
  /** Ends the stream at the token's `exp`, not at the next heartbeat. */
  private readonly expiry: TokenExpiry;

  constructor(
    private readonly transport: SseTransport,
    private readonly res: ServerResponse,
    readonly principal: Principal,
    /** Counted against the per-user connection limit; null for API keys. */
    private readonly user: string | null,
    private readonly stream: StreamRequest,
  ) {
    this.explicit = new Set(stream.jobs);
    this.single = stream.jobs.length === 1 && stream.scope === null;
    this.outbox = new Outbox(
      responseSocket(res),
      {
        ...transport.outboxConfig,
        encode: (d) => this.frame(d, false),
        encodeDelta: (d) => this.frame(d, true),
      },
      { overflowed: () => this.close(CloseCode.SLOW_READER, 'too far behind: reconnect and resume') },
    );
    this.expiry = atTokenExpiry(principal, () => this.close(CloseCode.TOKEN_EXPIRED, 'token expired'));
    this.outbox.setDelta(stream.delta);
  }

  private get ctx(): ServerContext {
    return this.transport.ctx;
  }

  /** Welcome, subscribe, send the snapshot, then the deliveries that raced it. */
  async start(): Promise<void> {
    const { ctx, principal, stream } = this;
    this.write(welcomeMessage(ctx, principal));
    // Listen first, then read: an event committed meanwhile is either in the
    // snapshot or held, never lost; the overlap is dropped by seq.
    this.held.start();
    for (const job of stream.jobs) this.listen({ job });
    let owner: string | undefined;
    if (stream.scope === 'all') this.listen({ all: true });
    else if (stream.scope === 'user') this.listen({ user: (owner = scopeUser(principal)!) });
    this.ctx.metrics.subscriptions.inc(this.topics.length);

    const jobs = new Map<string, JobState>();
    const events: JobEvent[] = [];
    let recovered = true;
    for (const job of stream.jobs) {
      const state = await ctx.hub.getJob(job);
      const result =
        state && canSee(principal, state) ? await ctx.hub.resume(job, stream.since.get(job)) : null;
      if (this.closed) return;
      if (!result) {
        // Missing or not the caller's: the same answer, and nothing of it is delivered.
        this.explicit.delete(job);
        this.unlisten({ job });
        this.write({ type: 'error', id: job, code: ErrorCode.NOT_FOUND, message: `job "${job}" not found` });
        continue;
      }
      jobs.set(job, result.state);
      events.push(...result.events);
      recovered &&= result.recovered;
    }
    if (stream.scope !== null) {
      // The requested jobs were resumed above, each from its own seq.
      const since = [...this.stream.since].filter(([job]) => !jobs.has(job) && !this.explicit.has(job));
      const scoped = await scopeSnapshot(ctx.hub, principal, owner, since);
      if (this.closed) return;
      for (const s of scoped.jobs) if (!jobs.has(s.id)) jobs.set(s.id, s);
      events.push(...scoped.events);
      recovered &&= scoped.recovered;
    }
    for (const state of jobs.values()) {
      this.noteSeen(state.id, state.seq);
      if (this.explicit.has(state.id) || !TERMINAL_STATUSES.includes(state.status))
        this.ids.set(state.id, state.seq);
    }
    const only = this.single ? jobs.get(stream.jobs[0]!) : undefined;
    const id = this.single ? (only ? `${only.id}:${only.seq}` : undefined) : this.idText();
    this.write({ type: 'subscribed', id: 'stream', jobs: [...jobs.values()], events, recovered }, id);
    for (const d of this.held.release()) this.deliver(d);
  }

  /** Hub callback: a committed event on one of this stream's topics. */
  deliver(d: Delivery): void {
    if (this.closed) return;
    const verdict = this.held.offer(d);
    if (verdict === 'full') this.close(CloseCode.SLOW_READER, 'too far behind: reconnect and resume');
    if (verdict !== 'open') return;
    // Requested jobs were checked when the stream opened; scope deliveries one by one.
    if (!this.explicit.has(d.job) && !canSee(this.principal, d.state)) return;
    if (d.seq <= (this.seen.get(d.job) ?? 0)) return;
    this.noteSeen(d.job, d.seq);
    if (!this.single) {
      if (!this.explicit.has(d.job) && d.terminal) this.ids.delete(d.job);
      else {
        // Re-inserted: the map's order is least recently updated first, for trimming.
        this.ids.delete(d.job);
        this.ids.set(d.job, d.seq);
      }
      this.frameIds.set(d, this.idText());
    }
    this.outbox.push(d);
  }

  /** A delivery's frame: shared by every single-job stream of the job, built once per delivery otherwise. */
  private frame(d: Delivery, delta: boolean): Buffer {
    if (this.single) return singleFrame(d, delta);
    let bytes = this.frames.get(d);
    if (bytes === undefined) {
      const id = this.frameIds.get(d.origin ?? d) ?? `${d.job}:${d.seq}`;
      bytes = Buffer.concat([Buffer.from(`id: ${id}\ndata: `), delta ? d.delta : d.native, NL2]);
      this.frames.set(d, bytes);
    }
    return bytes;
  }

  /** Send `close` with a native close code, then end the stream. */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.outbox.send(Buffer.from(`event: close\ndata: ${JSON.stringify({ code, reason })}\n\n`));
    // Hand what is queued to the socket as far as it takes it; the rest is dropped.
    this.outbox.flush();
    this.detach();
    this.res.end();
  }

  /** Leave the hub and release what the stream holds. Idempotent. */
  detach(): void {
    this.closed = true;
    if (this.detached) return;
    this.detached = true;
    this.expiry.cancel();
    this.held.drop();
    for (const topic of this.topics) this.ctx.hub.unsubscribe(topic, this);
    this.ctx.metrics.subscriptions.dec(this.topics.length);
    this.outbox.dispose();
    if (this.user !== null) this.ctx.connections.release(this.user);
    if (!this.res.writableEnded) this.res.end();
  }

  private listen(topic: Topic): void {
    this.topics.push(topic);
    this.ctx.hub.subscribe(topic, this);
  }

  private unlisten(topic: { job: string }): void {
    const index = this.topics.findIndex((t) => 'job' in t && t.job === topic.job);
    if (index < 0) return;
    this.topics.splice(index, 1);
    this.ctx.hub.unsubscribe(topic, this);
    this.ctx.metrics.subscriptions.dec();
  }

  private write(message: ServerMessage, id?: string): void {
    const head = id === undefined ? '' : `id: ${id}\n`;
    this.outbox.send(Buffer.from(`${head}data: ${JSON.stringify(message)}\n\n`));
  }

  /** The id of a multi-job stream, trimmed to `MAX_ID_BYTES` by dropping the least recently updated scope jobs. */
  private idText(): string {
    let text = formatStreamId(this.ids);
    while (text.length > MAX_ID_BYTES) {
      const victim = [...this.ids.keys()].find((job) => !this.explicit.has(job));
      if (victim === undefined) break;
      this.ids.delete(victim);
      text = formatStreamId(this.ids);
    }
    return text;
  }

  private noteSeen(job: string, seq: number): void {
    // Re-inserted: least recently updated first, the first forgotten.
    this.seen.delete(job);
    this.seen.set(job, seq);
  }
}

/** The frame of a single-job stream: the same bytes for every subscriber of the job. */
function singleFrame(d: Delivery, delta: boolean): Buffer {
  return delta
    ? d.encode('sse-delta', (x) => `id: ${x.job}:${x.seq}\ndata: ${x.delta.toString()}\n\n`)!
    : d.encode('sse', (x) => `id: ${x.job}:${x.seq}\ndata: ${x.native.toString()}\n\n`)!;
}
