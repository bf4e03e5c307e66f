/** Native messages as Server-Sent Events from `GET /v1/stream`; resumes with `?since=`. */

import type { ServerMessage } from '@headway/protocol';
import * as closeCodes from './close-codes.js';
import { ABNORMAL_CLOSURE, cannotSend, type Env, type Link, type Transport } from './transport.js';
import type { Scope } from './types.js';

/** Open a Server-Sent Events stream of the wanted subscriptions; reopened when they change. */
export function openEventStream(link: Link, env: Env): Transport {
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
      timer = setTimeout(end, 2 * heartbeatMs + 1000, closeCodes.HEARTBEAT_TIMEOUT, 'no heartbeat');
  };
  function open() {
    stop();
    const q = new URLSearchParams({ token: link.token(), state: 'delta' });
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
    source.onerror = mine(() => end(ABNORMAL_CLOSURE, 'stream failed'));
    return source;
  }
  es = open();
  return {
    kind: 'sse',
    send: cannotSend,
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
