/**
 * A real hub on port 0 with a fresh data directory, a test secret and one API
 * key; tokens minted by it, and plain HTTP requests to it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CreateServerOptions, createServer, type HeadwayServer } from '@headway/server';

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
