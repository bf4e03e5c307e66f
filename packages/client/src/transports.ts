/**
 * The three ways to reach the hub. Each turns what it receives into native
 * protocol server messages, so the client handles one message shape:
 *
 * - `ws`: the native protocol itself;
 * - `sse`: `GET /v1/stream`, whose events carry native messages; a change of
 *   subscriptions reopens the stream with the seqs reached (`?since=`);
 * - `poll`: REST long-polls (`GET /v1/jobs/:id?since&wait`) for jobs and a
 *   periodic list for scopes, answered as `subscribed` messages that carry
 *   only states; the client fills the events in between from the history endpoint.
 *
 * Subscription errors are reported with the subscription's key (`j:<job>` or
 * `s:<scope>`) as their `id`.
 */
import type { ClientMessage, JobState, ServerMessage } from '@headway/protocol';
import { CloseCode } from '@headway/protocol/codes';
import type { EventSourceConstructor, Scope, TransportKind, WebSocketConstructor } from './types.js';

/** One subscription the client wants: a job or a scope. */
export interface Want {
  key: string;
  job?: string;
  scope?: Scope;
}

/** What a transport gets from the client. */
export interface Link {
  token(): string;
  /** The subscriptions wanted now, by key. */
  wanted(): Map<string, Want>;
  /** Where a subscription resumes: the last seq of a job, or seqs by job for a scope. */
  since(want: Want): number | Record<string, number> | undefined;
  /** Newest seq known of a job (0: none). */
  seen(job: string): number;
  user(): string | null;
  /** The transport is up: authenticated and ready for subscriptions. */
  opened(info: { user: string; heartbeatMs: number }): void;
  message(m: ServerMessage): void;
  /** The transport is gone (never called after `Transport.close()`). */
  closed(code: number, reason: string): void;
}

export interface Transport {
  kind: TransportKind;
  /** Bring the transport's subscriptions in line with `link.wanted()`. */
  sync(): void;
  /** Send a native message; false when this transport cannot. */
  send(m: ClientMessage): boolean;
  /** Close without calling `link.closed`. */
  close(): void;
}

export interface Env {
  base: string;
  WebSocket?: WebSocketConstructor;
  EventSource?: EventSourceConstructor;
  fetch?: typeof fetch;
  longPollSeconds: number;
  pollIntervalMs: number;
  timeoutMs: number;
}

/** The claims of a JWT, or null for anything else (an API key). */
export function claims(token: string): { sub?: string; exp?: number; role?: string; jobs?: string[] } | null {
  try {
    const bytes = atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bytes, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

const enc = encodeURIComponent;
const no = () => false;

export function openWs(link: Link, env: Env): Transport {
  const ws = new env.WebSocket!(`${env.base.replace(/^http/, 'ws')}/v1/ws`, ['headway', link.token()]);
  /** Subscription id → key, and key → subscription id. */
  const keys = new Map<string, string>();
  const ids = new Map<string, string>();
  const failed = new Set<string>();
  let n = 0;
  let welcomed = false;
  let done = false;
  const end = (code: number, reason: string) => {
    if (!done) {
      done = true;
      link.closed(code, reason);
    }
  };
  const send = (m: ClientMessage) => {
    if (ws.readyState !== 1) return false;
    ws.send(JSON.stringify(m));
    return true;
  };
  ws.onmessage = ({ data }) => {
    let m: ServerMessage;
    try {
      m = JSON.parse(String(data));
    } catch {
      return;
    }
    if (done) return;
    if (m.type === 'welcome') {
      if (!welcomed) link.opened(m);
      welcomed = true;
      return;
    }
    const key = 'id' in m && m.id ? keys.get(m.id) : undefined;
    if (key) {
      if (m.type === 'error') failed.add(key);
      m = { ...m, id: key } as ServerMessage;
    }
    link.message(m);
  };
  ws.onclose = ({ code, reason }) => end(code, reason);
  // Errors end in a close; the `ws` package throws on an 'error' without a listener.
  ws.onerror = no;
  return {
    kind: 'ws',
    send,
    sync() {
      const want = link.wanted();
      for (const [key, id] of ids) {
        if (want.has(key)) continue;
        ids.delete(key);
        keys.delete(id);
        if (!failed.delete(key)) send({ type: 'unsubscribe', id });
      }
      for (const w of want.values()) {
        if (ids.has(w.key)) continue;
        const id = `s${++n}`;
        ids.set(w.key, id);
        keys.set(id, w.key);
        const since = link.since(w);
        send(
          w.job
            ? { type: 'subscribe', id, job: w.job, since: since as number | undefined }
            : { type: 'subscribe', id, scope: w.scope!, since: since as Record<string, number> | undefined },
        );
      }
    },
    close() {
      done = true;
      try {
        ws.close();
      } catch {
        // Already closed.
      }
    },
  };
}

export function openSse(link: Link, env: Env): Transport {
  let es: ReturnType<typeof open> | null = null;
  let signature = '';
  let welcomed = false;
  let done = false;
  let heartbeatMs = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stop = () => {
    clearTimeout(timer);
    es?.close();
    es = null;
  };
  const end = (code: number, reason: string) => {
    if (!done) {
      done = true;
      stop();
      link.closed(code, reason);
    }
  };
  // EventSource hides the hub's comment heartbeats; its `ping` events prove the stream alive.
  const alive = () => {
    clearTimeout(timer);
    if (heartbeatMs)
      timer = setTimeout(end, 2 * heartbeatMs + 1000, CloseCode.HEARTBEAT_TIMEOUT, 'no heartbeat');
  };
  function open() {
    stop();
    const q = new URLSearchParams({ token: link.token() });
    const since: string[] = [];
    let scope: Scope | undefined;
    const wanted = [...link.wanted().values()];
    for (const w of wanted) {
      if (w.job) {
        q.append('job', w.job);
        const seq = link.since(w);
        if (seq) since.push(`${w.job}:${seq}`);
      } else if (scope !== 'all') scope = w.scope;
    }
    signature = wanted
      .map((w) => w.key)
      .sort()
      .join();
    if (scope) {
      q.set('scope', scope);
      for (const [job, seq] of Object.entries(link.since({ key: '', scope }) ?? {}))
        since.push(`${job}:${seq}`);
    }
    if (since.length) q.set('since', since.join());
    const source = new env.EventSource!(`${env.base}/v1/stream?${q}`);
    const mine = (f: () => void) => () => source === es && f();
    source.onmessage = ({ data }) => {
      if (source !== es) return;
      alive();
      const m = JSON.parse(data) as ServerMessage;
      if (m.type === 'welcome') {
        heartbeatMs = m.heartbeatMs;
        alive();
        if (!welcomed) link.opened(m);
        welcomed = true;
      } else {
        link.message(m.type === 'error' && m.id ? { ...m, id: `j:${m.id}` } : m);
      }
    };
    source.addEventListener('ping', mine(alive));
    source.addEventListener('close', ({ data }) => {
      const { code, reason } = JSON.parse(data);
      if (source === es) end(code, reason);
    });
    source.onerror = mine(() => end(1006, 'stream failed'));
    return source;
  }
  es = open();
  return {
    kind: 'sse',
    send: no,
    sync() {
      const next = [...link.wanted().keys()].sort().join();
      if (next !== signature && !done) es = open();
    },
    close() {
      done = true;
      stop();
    },
  };
}

export function openPoll(link: Link, env: Env): Transport {
  const running = new Set<string>();
  const timers = new Set<() => void>();
  let done = false;
  let opened = false;
  /** Requests waiting on the hub now: few, so that the browser's connections per host stay free. */
  let hanging = 0;
  const end = (code: number, reason: string) => {
    if (done) return;
    done = true;
    for (const cancel of timers) cancel();
    link.closed(code, reason);
  };
  /** Resolves after `ms`, or at once when the transport closes. */
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const cancel = () => {
        clearTimeout(t);
        timers.delete(cancel);
        resolve();
      };
      const t = setTimeout(cancel, ms);
      timers.add(cancel);
    });
  /** A GET: the JSON body, null for 404, or a thrown [closeCode, reason]. */
  async function get<T>(path: string, waitSeconds = 0): Promise<T | null> {
    const ctl = new AbortController();
    const abort = () => ctl.abort();
    const t = setTimeout(abort, waitSeconds * 1000 + env.timeoutMs);
    timers.add(abort);
    let res: Response;
    try {
      res = await env.fetch!(env.base + path, {
        headers: { authorization: `Bearer ${link.token()}` },
        signal: ctl.signal,
      });
      if (res.status === 404) return null;
      const body = await res.json();
      if (res.ok) return body;
      const code = body?.error?.code;
      const close =
        res.status === 401
          ? code === 'HW_ERR_TOKEN_EXPIRED'
            ? CloseCode.TOKEN_EXPIRED
            : CloseCode.TOKEN_INVALID
          : res.status === 403
            ? CloseCode.FORBIDDEN
            : CloseCode.RECONNECT;
      throw [close, code ?? `HTTP ${res.status}`];
    } catch (err) {
      throw Array.isArray(err) ? err : [1006, 'request failed'];
    } finally {
      clearTimeout(t);
      timers.delete(abort);
    }
  }
  const fail = (err: unknown) => {
    const [code, reason] = err as [number, string];
    end(code, reason);
  };
  const wanted = (w: Want) => !done && link.wanted().has(w.key);

  async function watchJob(w: Want) {
    const job = w.job!;
    while (wanted(w)) {
      const seq = link.seen(job);
      const wait = seq && hanging < 3 ? env.longPollSeconds : 0;
      hanging += +!!wait;
      let state: JobState | null;
      try {
        state = await get<JobState>(`/v1/jobs/${enc(job)}${seq ? `?since=${seq}&wait=${wait}` : ''}`, wait);
      } finally {
        hanging -= +!!wait;
      }
      if (!wanted(w)) break;
      if (!state) {
        link.message({
          type: 'error',
          id: w.key,
          code: 'HW_ERR_NOT_FOUND',
          message: `job "${job}" not found`,
        });
        // Tried again on the next connection, like a WebSocket subscription.
        return;
      }
      if (state.seq > seq)
        link.message({ type: 'subscribed', id: w.key, jobs: [state], events: [], recovered: true });
      if (seq && !wait) await sleep(env.pollIntervalMs);
    }
    running.delete(w.key);
  }

  async function watchScope(w: Want) {
    while (wanted(w)) {
      const user = link.user();
      const page = await get<{ jobs: JobState[] }>(
        `/v1/jobs?limit=100${w.scope === 'user' && user ? `&owner=${enc(user)}` : ''}`,
      );
      const jobs = page?.jobs.filter((s) => s.seq > link.seen(s.id)) ?? [];
      if (jobs.length && wanted(w))
        link.message({ type: 'subscribed', id: w.key, jobs, events: [], recovered: true });
      await sleep(env.pollIntervalMs);
    }
    running.delete(w.key);
  }

  const t: Transport = {
    kind: 'poll',
    send: no,
    sync() {
      if (!opened) return;
      for (const w of link.wanted().values()) {
        if (running.has(w.key)) continue;
        running.add(w.key);
        (w.job ? watchJob : watchScope)(w).catch(fail);
      }
    },
    close() {
      done = true;
      for (const cancel of timers) cancel();
    },
  };
  // Connected once an authenticated request goes through.
  get('/v1/jobs?limit=1').then((page) => {
    if (done) return;
    if (!page) return end(1006, 'not a Headway hub');
    opened = true;
    link.opened({ user: claims(link.token())?.sub ?? '', heartbeatMs: 0 });
  }, fail);
  return t;
}
