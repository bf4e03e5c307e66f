/**
 * Shared test helpers: a real hub on port 0 with a fresh data directory, and a
 * WebSocket client that collects messages and waits for the ones a test expects.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerMessage } from '@headway/protocol';
import WebSocket from 'ws';
import { type CreateServerOptions, createServer, type HeadwayServer } from '../src/server.js';

export const TEST_JWT_SECRET = 'test-secret-test-secret-test-secret-0123456789';
export const TEST_API_KEY = 'hw_test_key_0123456789abcdef0123456789abcdef';

export interface TokenOptions {
  jobs?: string[];
  admin?: boolean;
  /** Lifetime in seconds; negative for an already expired token. Default 3600. */
  ttl?: number;
}

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by assertions, not by types.
type Loose = any;

export interface HttpResponse<T = Loose> {
  status: number;
  headers: Headers;
  /** Parsed JSON, else the text; undefined when the body is empty. */
  body: T;
}

export interface TestHub {
  server: HeadwayServer;
  /** Base URL, e.g. `http://127.0.0.1:54321`. */
  url: string;
  /** The native WebSocket endpoint, e.g. `ws://127.0.0.1:54321/v1/ws`. */
  wsUrl: string;
  apiKey: string;
  dataDir: string;
  /** Mint a browser token. */
  token(user: string, options?: TokenOptions): Promise<string>;
  /**
   * One HTTP request. `credential` (default: the API key) goes in
   * `Authorization: Bearer`; `null` sends none. An object `body` is sent as JSON,
   * a string one as it is, both with a JSON content type unless `headers` name
   * another.
   */
  request<T = Loose>(
    method: string,
    path: string,
    body?: unknown,
    credential?: string | null,
    headers?: Record<string, string>,
  ): Promise<HttpResponse<T>>;
  get<T = Loose>(path: string, credential?: string | null): Promise<HttpResponse<T>>;
  post<T = Loose>(path: string, body: unknown, credential?: string | null): Promise<HttpResponse<T>>;
  /** Close the server and start a new one on the same data directory (a new port). */
  restart(options?: CreateServerOptions): Promise<TestHub>;
  /**
   * Close the server and remove the data directory, unless the caller gave it
   * in `options.dataDir`. Safe to call twice.
   */
  close(): Promise<void>;
}

/**
 * Start a hub on a free port with a fresh temporary data directory (removed by
 * `close`), silent logs, a test secret and one API key. `options` are spread
 * over these defaults; a `dataDir` given there is used and left in place.
 */
export async function startHub(options: CreateServerOptions = {}): Promise<TestHub> {
  if (options.dataDir !== undefined) return open(options.dataDir, false, options);
  return open(mkdtempSync(join(tmpdir(), 'headway-test-')), true, options);
}

async function open(dataDir: string, ownDir: boolean, options: CreateServerOptions): Promise<TestHub> {
  const removeDir = () => {
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
  };
  let server: HeadwayServer;
  let url: string;
  try {
    server = await createServer({
      port: 0,
      host: '127.0.0.1',
      logLevel: 'silent',
      jwtSecret: TEST_JWT_SECRET,
      apiKeys: [TEST_API_KEY],
      ...options,
      dataDir,
    });
  } catch (err) {
    removeDir();
    throw err;
  }
  try {
    url = await server.listen();
  } catch (err) {
    await server.close().finally(removeDir);
    throw err;
  }
  const apiKey = server.options.apiKeys[0] ?? TEST_API_KEY;
  let closed: Promise<void> | null = null;

  const request = async (
    method: string,
    path: string,
    body?: unknown,
    credential?: string | null,
    extraHeaders: Record<string, string> = {},
  ) => {
    const headers: Record<string, string> = { ...extraHeaders };
    const cred = credential === undefined ? apiKey : credential;
    if (cred !== null) headers.authorization = `Bearer ${cred}`;
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const res = await fetch(`${url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text === '' ? undefined : text;
    try {
      if (text !== '') parsed = JSON.parse(text);
    } catch {
      // Not JSON: keep the text.
    }
    return { status: res.status, headers: res.headers, body: parsed as Loose };
  };

  const hub: TestHub = {
    server,
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}/v1/ws`,
    apiKey,
    dataDir,
    async token(user, opts = {}) {
      const { token } = await server.auth.mint({
        user,
        jobs: opts.jobs,
        admin: opts.admin,
        ttl: opts.ttl ?? 3600,
      });
      return token;
    },
    request,
    get: (path, credential) => request('GET', path, undefined, credential),
    post: (path, body, credential) => request('POST', path, body, credential),
    async restart(more = {}) {
      await server.close();
      closed = Promise.resolve();
      return open(dataDir, ownDir, { ...options, ...more });
    },
    close() {
      closed ??= server.close().finally(removeDir);
      return closed;
    },
  };
  return hub;
}

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

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
