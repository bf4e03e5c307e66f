import type { JobEvent, JobState, ServerMessage } from '@headway/protocol';
import { CloseCode, closeAction, JOB_ID, TERMINAL_STATUSES } from '@headway/protocol/codes';
import { Emitter } from './emitter.js';
import { ClientErrorCode, HeadwayClientError } from './errors.js';
import { type Core, JobCollection, JobHandle } from './handles.js';
import { joinTabs, type SharedMessage, type Tabs } from './shared.js';
import {
  claims,
  type Env,
  type Link,
  openPoll,
  openSse,
  openWs,
  type Transport,
  type Want,
} from './transports.js';
import type {
  ClientEvents,
  ClientOptions,
  ConnectionState,
  ControlAction,
  JobEventContext,
  JobsOptions,
  NetworkTarget,
  Scope,
  TransportKind,
} from './types.js';

/** The defaults of every numeric option (ms unless named otherwise). */
export const clientDefaults = {
  minReconnectDelayMs: 500,
  maxReconnectDelayMs: 20_000, // 20 seconds
  connectTimeoutMs: 10_000, // 10 seconds
  upgradeIntervalMs: 60_000, // 1 minute
  longPollSeconds: 25,
  pollIntervalMs: 2_000, // 2 seconds
  tokenRefreshMarginMs: 30_000, // 30 seconds
} as const;

/** A connected (or connecting) Headway client. Create one with `createClient`. */
export interface HeadwayClient {
  readonly state: ConnectionState;
  /** The transport in use (the leader tab's, when the connection is shared); null when none. */
  readonly transport: TransportKind | null;
  /** The authenticated user (`welcome.user`); null before the first connection. */
  readonly user: string | null;
  /** Start connecting (done on its own by the first `job()` or `jobs()`). */
  connect(): void;
  /** Close the connection and stop reconnecting; `connect()` starts again. */
  close(): void;
  /** A live handle on one job. Each call returns a new handle: `close()` each. */
  job(id: string): JobHandle;
  /** A live collection of the user's jobs (or all jobs), new ones included. */
  jobs(options?: JobsOptions): JobCollection;
  /** Cancel, pause or resume a job; resolves with its state once the hub acknowledged. */
  control(id: string, action: ControlAction, reason?: string): Promise<JobState>;
  /** A page of a job's event log after `since`. */
  history(
    id: string,
    options?: { since?: number; limit?: number },
  ): Promise<{ events: JobEvent[]; next?: number }>;
  /** An authenticated REST call (`/v1/…`); rejects with a `HeadwayClientError` carrying the hub's code. */
  api<T = unknown>(path: string, init?: { method?: string; body?: unknown }): Promise<T>;
  on<K extends keyof ClientEvents>(type: K, listener: (ctx: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(type: K, listener: (ctx: ClientEvents[K]) => void): void;
}

/** Per job: what was applied, and what waits for a gap to be filled. */
interface Track {
  id: string;
  /** Seq of the last event applied; 0 before the first state. */
  seq: number;
  state: JobState | null;
  /** The newest state seen ahead of `seq`: what events without a state of their own carry. */
  target: JobState | null;
  /** Events ahead of a gap, by seq, with their state when they came with one. */
  pending: Map<number, [JobEvent, JobState | undefined]>;
  filling: boolean;
}

const TERMINAL = new Set<string>(TERMINAL_STATUSES);
/** Events held per job while a gap is filled; past it the job is reset to its newest state. */
const MAX_PENDING = 1000;
/** History pages read to fill one gap before giving up. */
const MAX_FILL_PAGES = 20;
/** Jobs whose seqs a scope subscription sends to resume from. */
const MAX_SCOPE_SINCE = 500;
/** Jobs tracked; past it the oldest without a handle are forgotten. */
const MAX_TRACKS = 10_000;
const HEARTBEAT_TIMEOUT = CloseCode.HEARTBEAT_TIMEOUT;
const factories = { ws: openWs, sse: openSse, poll: openPoll };

/**
 * Create a client. It connects on its own when the first job or collection is
 * watched, and stays connected until `close()`, whatever the network does.
 *
 * ```ts
 * const client = createClient({ url: 'https://hub.example.com', token: () => getToken() });
 * client.job('video-1').on('progress', ({ state }) => render(state.progress.percent));
 * ```
 */
export function createClient(options: ClientOptions): HeadwayClient {
  const g = globalThis as Partial<typeof globalThis>;
  const o = { ...clientDefaults, ...options };
  const source = o.token;
  if (typeof o.url !== 'string' || !/^(http|ws)s?:\/\//.test(o.url)) {
    throw new TypeError('createClient: "url" must be an http(s) or ws(s) URL');
  }
  if (typeof source !== 'function' && (typeof source !== 'string' || !source)) {
    throw new TypeError('createClient: "token" must be a non-empty string or a function');
  }
  for (const [name, value] of Object.entries(o)) {
    if (name in clientDefaults && !(typeof value === 'number' && value >= 0 && value < Infinity)) {
      throw new TypeError(`createClient: "${name}" must be a non-negative number`);
    }
  }
  if (o.minReconnectDelayMs > o.maxReconnectDelayMs) {
    throw new TypeError('createClient: "minReconnectDelayMs" is above "maxReconnectDelayMs"');
  }
  const base = o.url.replace(/^ws/, 'http').replace(/(\/v1\/ws)?\/*$/, '');
  const doFetch = o.fetch ?? (g.fetch && ((input, init) => g.fetch!(input, init)));
  const env: Env = {
    base,
    WebSocket: o.WebSocket ?? (g.WebSocket as unknown as Env['WebSocket']),
    EventSource: o.EventSource ?? (g.EventSource as unknown as Env['EventSource']),
    fetch: doFetch,
    longPollSeconds: o.longPollSeconds,
    pollIntervalMs: o.pollIntervalMs,
    timeoutMs: o.connectTimeoutMs,
  };
  const kinds = (o.transports ?? (['ws', 'sse', 'poll'] as const)).filter(
    (k) => factories[k] && (k === 'ws' ? env.WebSocket : k === 'sse' ? env.EventSource : doFetch),
  );
  if (!kinds.length)
    throw new TypeError('createClient: no transport available: pass WebSocket, EventSource or fetch');
  const random = o.random ?? Math.random;
  const doc = g.document;
  const net = o.network !== undefined ? o.network : doc ? (g as unknown as NetworkTarget) : null;
  const vis = o.visibility !== undefined ? o.visibility : (doc ?? null);
  const share = o.shared ?? !!doc;

  const events = new Emitter<ClientEvents>();
  const tracks = new Map<string, Track>();
  const handles = new Map<string, Set<JobHandle>>();
  const collections = new Set<JobCollection>();
  /** Control requests awaiting their ack on the WebSocket, by request id. */
  const requests = new Map<
    string,
    { resolve(s: JobState | Promise<JobState>): void; retry(): Promise<JobState> }
  >();
  /** What other tabs watch, when this tab leads a shared connection. */
  const remote = new Map<string, Extract<SharedMessage, { k: 'w' }>>();
  /** The lowest seq per job that another tab announced. */
  let hint = new Map<string, number>();
  let state: ConnectionState = 'idle';
  let current: Transport | null = null;
  let user: string | null = null;
  let token = typeof source === 'string' ? source : '';
  let tokenCall: Promise<string> | null = null;
  let stale = false;
  let attempts = 0;
  let sticky = 0;
  /** Bumped whenever pending connection attempts become obsolete. */
  let gen = 0;
  let awaitingPong = false;
  let syncing = false;
  let want: Map<string, Want> | null = null;
  let tabs: Tabs | null = null;
  let leader = false;
  let tabsReady = false;
  let mirrored: TransportKind | null = null;
  let nextRequest = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let upgradeTimer: ReturnType<typeof setTimeout> | undefined;
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  let heartbeatTimer: ReturnType<typeof setInterval> | undefined;

  const fail = (code: HeadwayClientError['code'], message: string) => {
    const error = new HeadwayClientError(code, message);
    events.emit('error', { error });
    return error;
  };
  const follower = () => !!tabs && !leader;

  // ---------------------------------------------------------------------------
  // Connection state machine

  function setState(next: ConnectionState, reason: string, code?: number, delayMs?: number): void {
    if (leader) tabs!.post({ k: 's', s: next, r: reason, c: code, t: current?.kind ?? null, u: user });
    if (next === state) return;
    const oldState = state;
    state = next;
    events.emit('state', { oldState, newState: next, reason, code, delayMs });
  }

  const offline = () => (net?.onLine ?? g.navigator?.onLine) === false;

  function connect(): void {
    if (state !== 'idle' && state !== 'closed') return;
    setState('connecting', 'connect');
    net?.addEventListener('online', onOnline);
    net?.addEventListener('offline', onOffline);
    vis?.addEventListener('visibilitychange', onVisible);
    cycle(0);
  }

  /** Get a token, then try the transports from `from` on. */
  async function cycle(from: number): Promise<void> {
    const my = ++gen;
    clearTimeout(retryTimer);
    if (follower()) return;
    if (offline()) {
      setState('reconnecting', 'offline');
      return;
    }
    // A token past its `exp` is refreshed before it is offered (an SSE stream cannot say why it was refused).
    stale ||= (claims(token)?.exp ?? Infinity) * 1000 <= Date.now();
    try {
      await getToken(stale);
    } catch {
      if (my === gen) retry('token-error');
      return;
    }
    if (my !== gen || state === 'closed') return;
    if (share && !tabs) {
      const id = claims(token);
      const name = `headway:${base}:${typeof share === 'string' ? share : id ? [id.sub, id.role, id.jobs] : hash(token)}`;
      tabs = joinTabs(name, { ready: onReady, lead: onLead, receive: onShared });
      if (tabs) return;
    }
    attempt(from, false);
  }

  /**
   * Open the transport `kinds[i]`. A candidate (an upgrade or a token refresh)
   * replaces the open transport once it is up, and leaves it alone if it fails.
   */
  function attempt(i: number, candidate: boolean): void {
    const my = gen;
    const kind = kinds[i]!;
    let opened = false;
    let t: Transport;
    const timer = setTimeout(() => {
      t.close();
      link.closed(1006, 'connect timeout');
    }, o.connectTimeoutMs);
    const link: Link = {
      token: () => token,
      wanted,
      since,
      seen: (job) => {
        const tr = tracks.get(job);
        return Math.max(tr?.seq ?? 0, tr?.target?.seq ?? 0);
      },
      user: () => user,
      opened(info) {
        clearTimeout(timer);
        if (opened || my !== gen || state === 'closed') return t.close();
        opened = true;
        const previous = current;
        current = t;
        previous?.close();
        settle(previous);
        user = info.user;
        attempts = 0;
        sticky = i;
        setState('connected', 'connected');
        if (previous?.kind !== kind)
          events.emit('transport', { transport: kind, previous: previous?.kind ?? null });
        t.sync();
        heartbeat(info.heartbeatMs);
        upgradeLater();
      },
      message(m) {
        if (t === current) handle(m);
      },
      closed(code) {
        clearTimeout(timer);
        if (t === current) return lost(code);
        if (opened || my !== gen || state === 'closed') return;
        if (candidate) return i + 1 < sticky ? attempt(i + 1, true) : upgradeLater();
        const action = closeAction(code);
        if (action === 'stop') stop(code);
        else if (action === 'refresh-token') refreshOrStop(code);
        // Refused before it opened (a proxy without Upgrade, a firewall): the next transport.
        else if (code < CloseCode.RECONNECT && i + 1 < kinds.length) attempt(i + 1, false);
        else {
          sticky = 0;
          retry('connect-failed', code);
        }
      },
    };
    t = factories[kind](link, env);
  }

  /** The open transport closed: reconnect with backoff, refresh the token first, or stop. */
  function lost(code: number): void {
    const previous = current;
    current = null;
    settle(previous);
    const action = closeAction(code);
    if (action === 'stop') stop(code);
    else if (action === 'refresh-token') refreshOrStop(code);
    else retry(code === HEARTBEAT_TIMEOUT ? 'heartbeat-timeout' : 'lost', code);
  }

  function refreshOrStop(code: number): void {
    if (typeof source === 'string') {
      stop(code);
    } else {
      stale = true;
      retry('lost', code);
    }
  }

  function retry(reason: string, code?: number): void {
    stopTimers();
    const delay = random() * Math.min(o.maxReconnectDelayMs, o.minReconnectDelayMs * 2 ** attempts++);
    setState('reconnecting', reason, code, delay);
    retryTimer = setTimeout(() => cycle(sticky), delay);
  }

  function stop(code: number): void {
    shutdown();
    setState('closed', 'stop', code);
    fail(ClientErrorCode.STOPPED, `the hub closed the connection with code ${code}`);
  }

  function stopTimers(): void {
    clearTimeout(retryTimer);
    clearTimeout(upgradeTimer);
    clearInterval(heartbeatTimer);
  }

  function shutdown(): void {
    gen++;
    stopTimers();
    clearTimeout(refreshTimer);
    const previous = current;
    current = null;
    previous?.close();
    settle(previous);
    tabs?.leave();
    tabs = null;
    leader = tabsReady = false;
    remote.clear();
    hint = new Map();
    net?.removeEventListener('online', onOnline);
    net?.removeEventListener('offline', onOffline);
    vis?.removeEventListener('visibilitychange', onVisible);
  }

  function close(): void {
    if (state === 'closed') return;
    shutdown();
    setState('closed', 'close');
  }

  /** While on a fallback transport, try WebSocket again from time to time. */
  function upgradeLater(): void {
    clearTimeout(upgradeTimer);
    if (sticky > 0 && state === 'connected') upgradeTimer = setTimeout(attempt, o.upgradeIntervalMs, 0, true);
  }

  /**
   * The hub pings at the WebSocket level, which browsers do not expose: ping at
   * the protocol level instead, and take a ping unanswered by the next one as a
   * dead connection.
   */
  function heartbeat(ms: number): void {
    clearInterval(heartbeatTimer);
    awaitingPong = false;
    if (!ms || current?.kind !== 'ws') return;
    heartbeatTimer = setInterval(() => {
      const t = current!;
      if (!awaitingPong) {
        awaitingPong = true;
        t.send({ type: 'ping', ts: Date.now() });
        return;
      }
      t.close();
      lost(HEARTBEAT_TIMEOUT);
    }, ms);
  }

  function onOffline(): void {
    if (state === 'closed' || state === 'idle' || follower()) return;
    shutdownTransport();
    setState('reconnecting', 'offline');
  }

  function onOnline(): void {
    if (state === 'reconnecting' && !follower()) {
      attempts = 0;
      cycle(sticky);
    }
  }

  function onVisible(): void {
    if (vis?.visibilityState === 'visible' && state === 'reconnecting' && !offline()) cycle(sticky);
  }

  function shutdownTransport(): void {
    gen++;
    stopTimers();
    const previous = current;
    current = null;
    previous?.close();
    settle(previous);
  }

  // ---------------------------------------------------------------------------
  // Tokens

  function getToken(force: boolean): Promise<string> {
    if (typeof source === 'string' || (token && !force)) return Promise.resolve(token);
    tokenCall ??= (async () => {
      try {
        const value = await source();
        if (typeof value !== 'string' || !value) throw 0;
        token = value;
        stale = false;
        refreshLater();
        return value;
      } catch {
        throw fail(ClientErrorCode.TOKEN, 'the token function failed');
      } finally {
        tokenCall = null;
      }
    })();
    return tokenCall;
  }

  /** Shortly before the token expires, get a new one and move the connection over to it. */
  function refreshLater(): void {
    clearTimeout(refreshTimer);
    const exp = claims(token)?.exp;
    if (typeof exp !== 'number') return;
    const left = exp * 1000 - Date.now();
    refreshTimer = setTimeout(
      async () => {
        try {
          await getToken(true);
        } catch {
          // The hub will close with a refresh-token code; the next connection tries again.
          return;
        }
        if (state === 'connected' && current && !follower()) attempt(sticky, true);
      },
      Math.max(0, left - Math.min(o.tokenRefreshMarginMs, left / 2)),
    );
  }

  // ---------------------------------------------------------------------------
  // Subscriptions

  function wanted(): Map<string, Want> {
    if (want) return want;
    const w = (want = new Map());
    const addJob = (job: string) => w.set(`j:${job}`, { key: `j:${job}`, job });
    const addScope = (scope: Scope) => w.set(`s:${scope}`, { key: `s:${scope}`, scope });
    for (const job of handles.keys()) addJob(job);
    for (const c of collections) addScope(c.scope);
    for (const r of remote.values()) {
      r.jobs.forEach(addJob);
      r.scopes.forEach(addScope);
    }
    return w;
  }

  const inScope = (s: JobState, scope: Scope | undefined) =>
    scope === 'all' || (scope === 'user' && s.owner === user);

  function since(w: Want): number | Record<string, number> | undefined {
    if (w.job) return tracks.get(w.job)?.seq || hint.get(w.job) || undefined;
    const map: Record<string, number> = {};
    let n = 0;
    for (const t of tracks.values()) {
      if (n < MAX_SCOPE_SINCE && t.state && !TERMINAL.has(t.state.status) && inScope(t.state, w.scope)) {
        map[t.id] = t.seq;
        n++;
      }
    }
    for (const [job, seq] of hint) if (!(job in map) && n++ < MAX_SCOPE_SINCE) map[job] = seq;
    return n ? map : undefined;
  }

  function relevant(id: string, s: JobState | null | undefined): boolean {
    const w = wanted();
    return w.has(`j:${id}`) || (!!s && (w.has('s:all') || (w.has('s:user') && s.owner === user)));
  }

  /** The subscriptions changed: tell the transport (once per tick) and forget unwatched jobs. */
  function changed(): void {
    want = null;
    if (state === 'idle') connect();
    if (syncing) return;
    syncing = true;
    queueMicrotask(() => {
      syncing = false;
      if (follower()) announce();
      else current?.sync();
      for (const [id, t] of tracks) if (!relevant(id, t.state)) tracks.delete(id);
    });
  }

  // ---------------------------------------------------------------------------
  // Applying what the hub sends: once, in seq order

  function track(id: string, s?: JobState | null): Track | undefined {
    let t = tracks.get(id);
    if (!t && relevant(id, s)) {
      tracks.set(id, (t = { id, seq: 0, state: null, target: null, pending: new Map(), filling: false }));
      if (tracks.size > MAX_TRACKS) {
        for (const old of tracks.keys()) {
          if (!handles.has(old)) {
            tracks.delete(old);
            break;
          }
        }
      }
    }
    return t;
  }

  function notify(t: Track, ev: JobEventContext | null, reset = false): void {
    const s = t.state!;
    for (const h of handles.get(t.id) ?? []) h.put(s, ev, reset);
    for (const c of collections) if (inScope(s, c.scope) || c.get(t.id)) c.put(s, ev, reset);
  }

  function apply(t: Track, e: JobEvent, s: JobState | undefined): void {
    t.seq = e.seq;
    t.pending.delete(e.seq);
    // An event without a state of its own takes the nearest later state known.
    if (!s) {
      s = t.target ?? t.state!;
      for (const [, p] of t.pending.values()) if (p && p.seq < s.seq) s = p;
    }
    t.state = s;
    if (t.target && t.target.seq <= e.seq) t.target = null;
    notify(t, { event: e, state: s });
  }

  function drain(t: Track): void {
    for (let p = t.pending.get(t.seq + 1); p; p = t.pending.get(t.seq + 1)) apply(t, p[0], p[1]);
  }

  function ingest(e: JobEvent, s?: JobState): void {
    const t = track(e.job, s);
    if (!t || e.seq <= t.seq) return;
    if (!t.state) {
      // First sight of the job, through an event: start from its state.
      if (s) apply(t, e, s);
      return;
    }
    if (s && s.seq > (t.target?.seq ?? 0)) t.target = s;
    if (e.seq === t.seq + 1 && !t.filling) {
      apply(t, e, s);
      drain(t);
    } else {
      t.pending.set(e.seq, [e, s]);
      if (t.pending.size > MAX_PENDING) reset(t, t.target ?? s!);
      else fill(t);
    }
  }

  /** A state with the events that lead to it (a `subscribed` message). */
  function absorb(s: JobState, evs: JobEvent[], recovered: boolean): void {
    const t = track(s.id, s);
    if (!t) return;
    if (!t.state) {
      t.seq = s.seq;
      t.state = s;
      notify(t, null);
      return;
    }
    if (s.seq <= t.seq) return;
    if (s.seq > (t.target?.seq ?? 0)) t.target = s;
    for (const e of evs) ingest(e);
    if (t.seq < s.seq) {
      if (recovered) fill(t);
      else reset(t, s);
    }
  }

  function reset(t: Track, s: JobState): void {
    t.seq = s.seq;
    t.state = s;
    t.target = null;
    for (const seq of t.pending.keys()) if (seq <= s.seq) t.pending.delete(seq);
    notify(t, null, true);
    drain(t);
  }

  /** Fill a gap from the history endpoint; if that fails, reset to the newest state. */
  async function fill(t: Track): Promise<void> {
    if (t.filling) return;
    t.filling = true;
    const gap = () => t.pending.size > 0 || (t.target?.seq ?? 0) > t.seq;
    try {
      for (let page = 0; page < MAX_FILL_PAGES && gap(); page++) {
        const before = t.seq;
        const { events: log } = await history(t.id, { since: t.seq, limit: 1000 });
        // Events past the newest state known come later with their own state.
        const upTo = Math.max(t.target?.seq ?? 0, ...t.pending.keys());
        for (const e of log) if (e.seq === t.seq + 1 && e.seq <= upTo) apply(t, e, t.pending.get(e.seq)?.[1]);
        drain(t);
        if (t.seq === before) break;
      }
    } catch {
      // Unreachable history: the reset below still converges on the newest state.
    }
    t.filling = false;
    if (gap() && t.target) reset(t, t.target);
  }

  function handle(m: ServerMessage): void {
    // Relayed only while other tabs follow: a tab that joins later gets a snapshot when it announces itself.
    if (
      leader &&
      remote.size > 0 &&
      (m.type === 'event' || m.type === 'subscribed' || (m.type === 'error' && m.id?.[1] === ':'))
    ) {
      tabs!.post({ k: 'm', m });
    }
    switch (m.type) {
      case 'event': {
        const { type: _type, state: s, ...e } = m;
        ingest(e as JobEvent, s);
        return;
      }
      case 'subscribed': {
        const byJob = new Map<string, JobEvent[]>();
        for (const e of m.events) byJob.set(e.job, [...(byJob.get(e.job) ?? []), e]);
        for (const s of m.jobs) absorb(s, byJob.get(s.id) ?? [], m.recovered);
        return;
      }
      case 'error': {
        const error = new HeadwayClientError(m.code, m.message);
        const id = m.id ?? '';
        const request = requests.get(id);
        if (request) {
          requests.delete(id);
          request.resolve(Promise.reject(error));
          return;
        }
        if (id.startsWith('j:')) for (const h of handles.get(id.slice(2)) ?? []) h.fail(error);
        else if (id.startsWith('s:'))
          for (const c of collections)
            if (`s:${c.scope}` === id) c.fail(error);
            else events.emit('error', { error });
        return;
      }
      case 'ack': {
        const request = requests.get(m.id);
        requests.delete(m.id);
        request?.resolve(m.job!);
        return;
      }
      case 'pong':
        awaitingPong = false;
    }
  }

  /** Requests sent on a transport that is gone are sent again over REST. */
  function settle(t: Transport | null): void {
    if (t?.kind !== 'ws') return;
    for (const [id, r] of requests) {
      requests.delete(id);
      r.resolve(r.retry());
    }
  }

  // ---------------------------------------------------------------------------
  // Shared connection between tabs

  function onReady(): void {
    tabsReady = true;
    announce();
  }

  function onLead(): void {
    leader = true;
    tabs!.post({ k: 'l' });
    mirrored = null;
    want = null;
    attempt(sticky, false);
  }

  function announce(): void {
    if (!follower() || !tabsReady) return;
    const seqs: Record<string, number> = {};
    for (const t of tracks.values()) if (t.seq) seqs[t.id] = t.seq;
    const scopes = [...new Set([...collections].map((c) => c.scope))];
    tabs!.post({ k: 'w', tab: tabs!.tab, jobs: [...handles.keys()], scopes, since: seqs });
  }

  function onShared(msg: SharedMessage): void {
    if (msg.k === 'w' && leader) {
      if (!remote.has(msg.tab)) {
        tabs!.watch(msg.tab, () => {
          if (remote.delete(msg.tab)) changed();
        });
      }
      remote.set(msg.tab, msg);
      hint = new Map();
      for (const r of remote.values()) {
        for (const [job, seq] of Object.entries(r.since)) hint.set(job, Math.min(hint.get(job) ?? seq, seq));
      }
      changed();
      // The state first (it names the user, which scopes need), then what this tab
      // already knows: the new one gets it at once and fills any gap itself.
      setState(state, 'shared');
      const jobs = [...tracks.values()]
        .map((t) => t.state!)
        .filter((s) => s && (msg.jobs.includes(s.id) || msg.scopes.some((scope) => inScope(s, scope))));
      tabs!.post({
        k: 'm',
        to: msg.tab,
        m: { type: 'subscribed', id: '', jobs, events: [], recovered: true },
      });
    } else if (!leader) {
      if (msg.k === 'm' && (!msg.to || msg.to === tabs?.tab)) handle(msg.m);
      else if (msg.k === 's') {
        user = msg.u;
        mirrored = msg.t;
        setState(msg.s, msg.r, msg.c);
      } else if (msg.k === 'l') announce();
    }
  }

  // ---------------------------------------------------------------------------
  // REST

  async function api<T>(
    path: string,
    init: { method?: string; body?: unknown } = {},
    again = false,
  ): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${await getToken(stale)}` };
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    let body: { error?: { code: HeadwayClientError['code']; message: string } } | null;
    try {
      res = await doFetch!(base + path, {
        method: init.method ?? 'GET',
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
      });
      body = await res.json();
    } catch {
      throw new HeadwayClientError(ClientErrorCode.NETWORK, `no answer from ${base}`);
    }
    if (res.ok) return body as T;
    if (res.status === 401 && !again && typeof source === 'function') {
      stale = true;
      return api(path, init, true);
    }
    throw new HeadwayClientError(
      body?.error?.code ?? ClientErrorCode.NETWORK,
      body?.error?.message ?? `HTTP ${res.status}`,
      res.status,
    );
  }

  function history(id: string, opts: { since?: number; limit?: number } = {}) {
    return api<{ events: JobEvent[]; next?: number }>(
      `/v1/jobs/${encodeURIComponent(id)}/events?since=${opts.since ?? 0}&limit=${opts.limit ?? 100}`,
    );
  }

  function control(id: string, action: ControlAction, reason?: string): Promise<JobState> {
    const rest = () =>
      api<JobState>(`/v1/jobs/${encodeURIComponent(id)}/${action}`, {
        method: 'POST',
        body: reason === undefined ? undefined : { reason },
      });
    const rid = `c${++nextRequest}`;
    if (state === 'connected' && current?.send({ type: action, id: rid, job: id, reason })) {
      return new Promise((resolve) => requests.set(rid, { resolve, retry: rest }));
    }
    return rest();
  }

  // ---------------------------------------------------------------------------
  // Public API

  const core: Core = {
    state: (id) => tracks.get(id)?.state ?? null,
    control,
    release(target) {
      if (target instanceof JobHandle) {
        const set = handles.get(target.id);
        if (!set?.delete(target)) return;
        if (!set.size) handles.delete(target.id);
      } else if (!collections.delete(target)) return;
      changed();
    },
  };

  return {
    get state() {
      return state;
    },
    get transport() {
      return follower() ? mirrored : (current?.kind ?? null);
    },
    get user() {
      return user;
    },
    connect,
    close,
    job(id) {
      if (typeof id !== 'string' || !JOB_ID.test(id)) {
        throw new TypeError('client.job: the id must be 1–128 letters, digits or ._:-');
      }
      const h = new JobHandle(id, core);
      let set = handles.get(id);
      if (!set) handles.set(id, (set = new Set()));
      set.add(h);
      changed();
      return h;
    },
    jobs({ scope = 'user', limit = 1000 } = {}) {
      if (scope !== 'user' && scope !== 'all')
        throw new TypeError('client.jobs: scope must be "user" or "all"');
      if (!Number.isInteger(limit) || limit < 1)
        throw new TypeError('client.jobs: limit must be a positive integer');
      const c = new JobCollection(scope, limit, core);
      collections.add(c);
      // Jobs of the scope that are already known join at once.
      for (const t of tracks.values()) if (t.state && inScope(t.state, scope)) c.put(t.state, null, false);
      changed();
      return c;
    },
    control,
    history,
    api,
    on: (type, listener) => events.on(type, listener),
    off: (type, listener) => events.off(type, listener),
  };
}

/** A short, stable digest of a credential that is not a JWT, to name its tab group. */
function hash(text: string): string {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return (h >>> 0).toString(36);
}
