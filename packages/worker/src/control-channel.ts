import { backoffDelay, type JobState, type ServerMessage } from '@headway/protocol';
import { CloseCode, closeAction, ErrorCode } from '@headway/protocol/codes';
import WebSocket from 'ws';
import type { HubClient } from './hub-client.js';
import type { HeadwayWorkerOptions } from './options.js';

/** What the channel reports to its worker. */
export interface ControlHost {
  /** A job's full state, from the subscription or a poll. */
  applyState(state: JobState): void;
  /** The job is gone (deleted after it was seen). */
  gone(job: string, code: string, message: string): void;
  /** Seq of the newest state or report answer of the job, 0 if none. */
  seqOf(job: string): number;
}

/** Delay before trying the socket again after a close that says "do not reconnect", ms. */
const STOP_RETRY_MS = 60_000; // 1 minute
/** Time the hub has to answer the closing handshake when the worker closes, ms. */
const CLOSE_HANDSHAKE_MS = 1_000; // 1 second
/** Time the socket stays open without any job to watch, ms. */
const IDLE_CLOSE_MS = 30_000; // 30 seconds
/** Time to wait for `subscribed` before the subscription is tried again, ms. */
const SUBSCRIBE_TIMEOUT_MS = 5_000; // 5 seconds
/** Silence, in heartbeat intervals, after which the socket is taken for dead. */
const SILENT_HEARTBEATS = 2.5;
/** Poll rounds per `pollIntervalMs`. */
const POLL_TICKS = 5;
/** Polls in flight at once. */
const POLL_CONCURRENCY = 8;

type SocketState = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';

interface Watched {
  /** Id of its subscription on the current socket, or null. */
  sub: string | null;
  /** The hub confirmed the subscription: the socket carries this job's control. */
  subscribed: boolean;
  /** When the subscription was sent (for the timeout). */
  subscribedAt: number;
  /** Last time its control state was learned (subscription event, poll, report answer). */
  seenAt: number;
  polling: boolean;
}

/**
 * How a worker learns of cancel and pause requests while it is not reporting.
 *
 * One WebSocket per worker (to `/v1/ws`, authenticated with the API key) holds a
 * subscription to each job the worker has open, so a request reaches it as soon
 * as the hub has stored it. After a disconnect it reconnects with backoff and
 * subscribes again with the newest seq of each job. While the socket is down,
 * and for jobs beyond the hub's subscription limit, each job that has not
 * reported for `pollIntervalMs` is read with `GET /v1/jobs/:id` instead.
 *
 * The socket does not keep the process alive by itself: a worker with nothing
 * else to do may exit.
 */
export class ControlChannel {
  private readonly jobs = new Map<string, Watched>();
  private readonly subs = new Map<string, string>();
  private state: SocketState = 'idle';
  private ws: WebSocket | null = null;
  private attempts = 0;
  private subCounter = 0;
  private maxSubscriptions = 100;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private liveness: NodeJS.Timeout | null = null;
  private lastTraffic = 0;
  private pollTimer: NodeJS.Timeout | null = null;
  private polls = 0;
  // Outgoing messages are paced under the hub's per-connection rate limit.
  private outgoing: string[] = [];
  private tokens = 0;
  private rate = 25;
  private refilledAt = 0;
  private paceTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly options: HeadwayWorkerOptions,
    private readonly client: HubClient,
    private readonly host: ControlHost,
  ) {}

  /** Start watching a job's control state. */
  watch(job: string): void {
    if (this.state === 'closed' || this.jobs.has(job)) return;
    this.jobs.set(job, { sub: null, subscribed: false, subscribedAt: 0, seenAt: Date.now(), polling: false });
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (this.options.control === 'websocket') {
      if (this.state === 'idle') this.connect();
      else if (this.state === 'open') this.subscribe(job);
    }
    this.startPolling();
  }

  /** Stop watching a job (it ended). */
  unwatch(job: string): void {
    const w = this.jobs.get(job);
    if (!w) return;
    this.jobs.delete(job);
    if (w.sub !== null) {
      this.subs.delete(w.sub);
      if (this.state === 'open') this.queue({ type: 'unsubscribe', id: w.sub });
    }
    if (this.jobs.size === 0) {
      this.stopPolling();
      if (this.ws && !this.idleTimer) {
        this.idleTimer = setTimeout(() => this.closeSocket(), IDLE_CLOSE_MS);
        this.idleTimer.unref();
      }
    }
  }

  /** A report's answer just carried the job's control state: no need to poll it. */
  reported(job: string): void {
    const w = this.jobs.get(job);
    if (w) w.seenAt = Date.now();
  }

  /** True when the socket is open and confirmed the job's subscription. */
  covers(job: string): boolean {
    return this.state === 'open' && this.jobs.get(job)?.subscribed === true;
  }

  /** Stop watching; resolves once the socket has closed, so that none of its timers outlives the worker. */
  close(): Promise<void> {
    this.state = 'closed';
    this.clearTimers();
    this.stopPolling();
    this.jobs.clear();
    this.subs.clear();
    this.outgoing = [];
    const ws = this.ws;
    this.ws = null;
    if (!ws || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise<void>((resolve) => {
      // ws waits 30 s for the hub's answer to a close; a worker that is closing does not.
      const cut = setTimeout(() => ws.terminate(), CLOSE_HANDSHAKE_MS);
      ws.once('close', () => {
        clearTimeout(cut);
        resolve();
      });
      closeQuietly(ws, 1000);
    });
  }

  // -------------------------------------------------------------------------
  // WebSocket

  private connect(): void {
    this.state = 'connecting';
    const Ctor = this.options.WebSocket ?? WebSocket;
    const url = `${this.options.url.replace(/^http/, 'ws')}/v1/ws`;
    let ws: WebSocket;
    try {
      ws = new Ctor(url, { perMessageDeflate: false, handshakeTimeout: this.options.requestTimeoutMs });
    } catch {
      this.scheduleReconnect(CloseCode.RECONNECT);
      return;
    }
    this.ws = ws;
    ws.on('upgrade', (res) => res.socket.unref());
    ws.on('open', () => {
      this.lastTraffic = Date.now();
      // The credential goes in a message, not the URL, where proxies may log it.
      ws.send(JSON.stringify({ type: 'auth', token: this.options.apiKey }));
    });
    ws.on('message', (data) => {
      this.lastTraffic = Date.now();
      let message: ServerMessage;
      try {
        message = JSON.parse(data.toString()) as ServerMessage;
      } catch {
        return;
      }
      this.receive(message);
    });
    ws.on('ping', () => {
      this.lastTraffic = Date.now();
    });
    ws.on('error', () => {
      // A close follows, which decides what to do.
    });
    ws.on('close', (code) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.dropSubscriptions();
      if (this.state === 'closed') return;
      this.scheduleReconnect(code);
    });
  }

  private receive(message: ServerMessage): void {
    switch (message.type) {
      case 'welcome':
        this.state = 'open';
        this.attempts = 0;
        this.maxSubscriptions = message.limits.maxSubscriptions;
        // Half the hub's rate leaves room for bursts after a reconnect.
        this.rate = Math.max(1, Math.floor(message.limits.messagesPerSecond / 2));
        this.tokens = this.rate;
        this.refilledAt = Date.now();
        this.startLiveness(message.heartbeatMs);
        for (const job of this.jobs.keys()) this.subscribe(job);
        if (this.jobs.size === 0 && !this.idleTimer) {
          this.idleTimer = setTimeout(() => this.closeSocket(), IDLE_CLOSE_MS);
          this.idleTimer.unref();
        }
        return;
      case 'subscribed': {
        const job = this.subs.get(message.id);
        const w = job === undefined ? undefined : this.jobs.get(job);
        if (!w || job === undefined) return;
        w.subscribed = true;
        w.seenAt = Date.now();
        for (const state of message.jobs) if (state.id === job) this.host.applyState(state);
        return;
      }
      case 'event': {
        const w = this.jobs.get(message.job);
        if (!w) return;
        w.seenAt = Date.now();
        if (message.kind === 'deleted')
          this.host.gone(message.job, ErrorCode.JOB_DELETED, 'the job was deleted');
        else this.host.applyState(message.state);
        return;
      }
      case 'error': {
        if (message.id === undefined) return;
        const job = this.subs.get(message.id);
        if (job === undefined) return;
        this.subs.delete(message.id);
        const w = this.jobs.get(job);
        if (!w) return;
        w.sub = null;
        w.subscribed = false;
        if (message.code === ErrorCode.NOT_FOUND && this.host.seqOf(job) > 0) {
          // It existed: it was deleted.
          this.host.gone(job, ErrorCode.NOT_FOUND, message.message);
        }
        // Otherwise (not created yet, too many subscriptions): polling covers it.
        return;
      }
      default:
        return;
    }
  }

  private subscribe(job: string): void {
    const w = this.jobs.get(job);
    if (!w || w.sub !== null || this.subs.size >= this.maxSubscriptions) return;
    w.sub = `s${(++this.subCounter).toString(36)}`;
    w.subscribed = false;
    w.subscribedAt = Date.now();
    this.subs.set(w.sub, job);
    const since = this.host.seqOf(job);
    this.queue(
      since > 0 ? { type: 'subscribe', id: w.sub, job, since } : { type: 'subscribe', id: w.sub, job },
    );
  }

  private dropSubscriptions(): void {
    this.subs.clear();
    this.outgoing = [];
    if (this.paceTimer) clearTimeout(this.paceTimer);
    this.paceTimer = null;
    if (this.liveness) clearInterval(this.liveness);
    this.liveness = null;
    for (const w of this.jobs.values()) {
      w.sub = null;
      w.subscribed = false;
    }
  }

  private scheduleReconnect(code: number): void {
    this.state = 'waiting';
    if (this.jobs.size === 0) {
      this.state = 'idle';
      return;
    }
    const action = closeAction(code);
    this.attempts++;
    // A refused key or a full connection quota will not change soon; polling carries on meanwhile.
    const delay = action === 'reconnect' ? backoffDelay(this.attempts, this.options.retry) : STOP_RETRY_MS;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.state !== 'waiting') return;
      if (this.jobs.size === 0) this.state = 'idle';
      else this.connect();
    }, delay);
    this.reconnectTimer.unref();
    this.startPolling();
  }

  private closeSocket(): void {
    this.idleTimer = null;
    if (this.jobs.size > 0) return;
    const ws = this.ws;
    this.ws = null;
    this.dropSubscriptions();
    if (this.state !== 'closed') this.state = 'idle';
    if (ws) closeQuietly(ws, 1000);
  }

  private startLiveness(heartbeatMs: number): void {
    if (this.liveness) clearInterval(this.liveness);
    this.liveness = setInterval(() => {
      if (Date.now() - this.lastTraffic > SILENT_HEARTBEATS * heartbeatMs) this.ws?.terminate();
    }, heartbeatMs);
    this.liveness.unref();
  }

  /** Send under the pace: `rate` messages a second at most. */
  private queue(message: object): void {
    this.outgoing.push(JSON.stringify(message));
    this.pump();
  }

  private pump(): void {
    if (this.paceTimer) return;
    const now = Date.now();
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.refilledAt) * this.rate) / 1000);
    this.refilledAt = now;
    while (this.outgoing.length > 0 && this.tokens >= 1) {
      const frame = this.outgoing.shift()!;
      this.tokens -= 1;
      try {
        this.ws?.send(frame);
      } catch {
        // The socket is closing; its close event resets the subscriptions.
      }
    }
    if (this.outgoing.length > 0) {
      this.paceTimer = setTimeout(
        () => {
          this.paceTimer = null;
          this.pump();
        },
        Math.ceil(1000 / this.rate),
      );
      this.paceTimer.unref();
    }
  }

  // -------------------------------------------------------------------------
  // Polling

  private startPolling(): void {
    if (this.options.control === 'none' || this.pollTimer || this.jobs.size === 0) return;
    // Ticks finer than the interval, so that each job is read about `pollIntervalMs`
    // after it was last heard of, not up to twice that.
    const tick = Math.max(10, Math.floor(this.options.pollIntervalMs / POLL_TICKS));
    this.pollTimer = setInterval(() => this.pollRound(), tick);
    this.pollTimer.unref();
  }

  private stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = null;
  }

  private pollRound(): void {
    const now = Date.now();
    for (const [job, w] of this.jobs) {
      if (this.polls >= POLL_CONCURRENCY) break;
      if (this.covers(job) || w.polling) continue;
      if (
        this.state === 'open' &&
        w.sub !== null &&
        !w.subscribed &&
        now - w.subscribedAt > SUBSCRIBE_TIMEOUT_MS
      ) {
        // No answer to the subscription (dropped by the hub's rate limit?): try again.
        this.subs.delete(w.sub);
        w.sub = null;
        this.subscribe(job);
      }
      if (now - w.seenAt < this.options.pollIntervalMs) continue;
      void this.poll(job, w);
    }
  }

  private async poll(job: string, w: Watched): Promise<void> {
    w.polling = true;
    this.polls++;
    try {
      const response = await this.client.send('GET', `/v1/jobs/${encodeURIComponent(job)}`);
      if (this.jobs.get(job) !== w) return;
      w.seenAt = Date.now();
      if (response.status === 200) {
        this.host.applyState(response.body as JobState);
        if (this.state === 'open' && w.sub === null) this.subscribe(job);
      } else if (response.status === 404 && this.host.seqOf(job) > 0) {
        this.host.gone(job, ErrorCode.NOT_FOUND, 'the job is gone');
      }
    } catch {
      // No answer: the next round tries again.
    } finally {
      w.polling = false;
      this.polls--;
    }
  }

  private clearTimers(): void {
    for (const t of [this.reconnectTimer, this.idleTimer, this.paceTimer]) if (t) clearTimeout(t);
    if (this.liveness) clearInterval(this.liveness);
    this.reconnectTimer = this.idleTimer = this.paceTimer = this.liveness = null;
  }
}

function closeQuietly(ws: WebSocket, code: number): void {
  try {
    if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    else ws.close(code);
  } catch {
    // Already closed.
  }
}
