/** REST long-polls per job and a periodic list per scope, for networks that allow nothing else. */
import type { JobState } from '@headway/protocol';
import type { ErrorCode } from '@headway/protocol/codes';
import * as closeCodes from './close-codes.js';
import { claims } from './token.js';
import { ABNORMAL_CLOSURE, cannotSend, type Env, type Link, type Transport, type Want } from './transport.js';

const enc = encodeURIComponent;

/** Watch the wanted subscriptions with REST calls; open once an authenticated request goes through. */
export function openLongPoll(link: Link, env: Env): Transport {
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
      const body: T & { error?: { code?: ErrorCode } } = await res.json();
      if (res.ok) return body;
      const code = body?.error?.code;
      // The close code a WebSocket would have been closed with.
      const close =
        res.status === 401
          ? code === 'HW_ERR_TOKEN_EXPIRED'
            ? closeCodes.TOKEN_EXPIRED
            : closeCodes.TOKEN_INVALID
          : res.status === 403
            ? closeCodes.FORBIDDEN
            : closeCodes.RECONNECT;
      throw [close, code ?? `HTTP ${res.status}`];
    } catch (err) {
      throw Array.isArray(err) ? err : [ABNORMAL_CLOSURE, 'request failed'];
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
    /** The state of the last answer: while it is the newest seen, the hub answers only what changed since. */
    let state = null as JobState | null;
    while (wanted(w)) {
      const seq = link.seen(job);
      const wait = seq && hanging < 3 ? env.longPollSeconds : 0;
      hanging += +!!wait;
      try {
        // A whole state, or `{id, since, seq, patch}` to fold into the last one.
        const answer: (JobState & { patch?: Partial<JobState> }) | null = await get(
          `/v1/jobs/${enc(job)}${seq ? `?since=${seq}&wait=${wait}${state?.seq === seq ? '&state=delta' : ''}` : ''}`,
          wait,
        );
        state = answer?.patch ? { ...state!, ...answer.patch } : answer;
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
    send: cannotSend,
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
    if (!page) return end(ABNORMAL_CLOSURE, 'not a Headway hub');
    opened = true;
    link.opened({ user: claims(link.token())?.sub ?? '', heartbeatMs: 0 });
  }, fail);
  return t;
}
