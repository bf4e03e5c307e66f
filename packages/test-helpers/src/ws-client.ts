/**
 * A WebSocket client for the hub's native protocol that collects what it
 * receives and waits for the messages a test expects.
 */
import type { ServerMessage } from '@headway/protocol';
import WebSocket from 'ws';

export interface ConnectOptions {
  protocols?: string | string[];
  headers?: Record<string, string>;
  /** Answer protocol pings (default true); false simulates a peer that stopped responding. */
  autoPong?: boolean;
  /** Ms to wait for the connection to open. Default 5000. */
  timeoutMs?: number;
}

type MessageOf<T extends ServerMessage['type']> = Extract<ServerMessage, { type: T }>;

export interface TestClient {
  ws: WebSocket;
  /** Every message received, in order. */
  readonly received: ServerMessage[];
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  send(message: unknown): void;
  /** Send a raw frame (text or binary). */
  sendRaw(data: string | Buffer, binary?: boolean): void;
  /**
   * The first message not yet taken by `next` that has this type (and matches
   * the predicate), waiting up to `timeoutMs` (default 5000) for it.
   */
  next<T extends ServerMessage['type']>(
    type: T,
    predicate?: (message: MessageOf<T>) => boolean,
    timeoutMs?: number,
  ): Promise<MessageOf<T>>;
  /** Messages of this type received so far and not taken by `next`. */
  pending<T extends ServerMessage['type']>(type: T): MessageOf<T>[];
  /** Close (if open) and wait for the close to complete. */
  close(): Promise<void>;
}

/** Open a WebSocket and collect what it receives. Rejects with `status` set when the upgrade is refused. */
export function connect(url: string, options: ConnectOptions = {}): Promise<TestClient> {
  const ws = new WebSocket(url, options.protocols ?? [], {
    headers: options.headers,
    autoPong: options.autoPong ?? true,
  });
  // Errors after the connection opened end in a close, which the tests observe.
  ws.on('error', () => {});
  const received: ServerMessage[] = [];
  const taken = new Set<ServerMessage>();
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      wake();
    });
  });
  ws.on('message', (data) => {
    received.push(JSON.parse(data.toString()) as ServerMessage);
    wake();
  });

  const find = <T extends ServerMessage['type']>(type: T, predicate?: (m: MessageOf<T>) => boolean) =>
    received.find(
      (m): m is MessageOf<T> =>
        m.type === type && !taken.has(m) && (!predicate || predicate(m as MessageOf<T>)),
    );

  const client: TestClient = {
    ws,
    received,
    closed,
    send(message) {
      ws.send(JSON.stringify(message));
    },
    sendRaw(data, binary = false) {
      ws.send(data, { binary });
    },
    next(type, predicate, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = find(type, predicate);
          if (found) {
            taken.add(found);
            done();
            resolve(found);
          } else if (ws.readyState === WebSocket.CLOSED) {
            done();
            reject(new Error(`connection closed while waiting for "${type}"`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no "${type}" message within ${timeoutMs} ms`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    pending(type) {
      return received.filter((m) => m.type === type && !taken.has(m)) as MessageOf<typeof type>[];
    },
    async close() {
      if (ws.readyState === WebSocket.CLOSED) return;
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close();
      await closed;
    },
  };

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no connection within ${options.timeoutMs ?? 5000} ms`));
    }, options.timeoutMs ?? 5000);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve(client);
    });
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      res.resume();
      ws.terminate();
      reject(
        Object.assign(new Error(`upgrade refused with HTTP ${res.statusCode}`), { status: res.statusCode }),
      );
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
