/** The native protocol over a WebSocket, the token offered as a subprotocol (browsers cannot set headers). */
import type { ClientMessage, ServerMessage } from '@headway/protocol';
import type { Env, Link, Transport } from './transport.js';

/** `readyState` of an open WebSocket. */
const OPEN = 1;

/** Open the native protocol on a WebSocket; `link.opened` once the hub's `welcome` arrived. */
export function openWebSocket(link: Link, env: Env): Transport {
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
    if (ws.readyState !== OPEN) return false;
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
  ws.onerror = () => {};
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
        // Always deltas: the client folds each patch into the state it holds.
        send({
          type: 'subscribe',
          id,
          ...(w.job ? { job: w.job } : { scope: w.scope! }),
          since: link.since(w),
          state: 'delta',
        } as ClientMessage);
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
