/**
 * A real hub on port 0 for the REST suites: fresh temp data directory, one API
 * key, a 32+ byte secret, silent logs; `close()` stops it and removes the directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CreateServerOptions, createServer, type HeadwayServer } from '../src/server.js';

export const TEST_JWT_SECRET = 'headway-test-secret-0123456789abcdef-0123456789';
export const TEST_API_KEY = 'hw_test_key_0123456789abcdef';

export interface TokenOptions {
  jobs?: string[];
  admin?: boolean;
  /** Lifetime in seconds; default one hour. */
  ttl?: number;
}

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by assertions, not by types.
type Loose = any;

export interface TestResponse<T = Loose> {
  status: number;
  headers: Headers;
  /** Parsed JSON, the text for other content types, or undefined when empty. */
  body: T;
}

export interface TestHub {
  server: HeadwayServer;
  url: string;
  apiKey: string;
  dataDir: string;
  /** Mint a browser token with the hub's own secret. */
  token(user: string, options?: TokenOptions): Promise<string>;
  /**
   * One HTTP request. `credential` defaults to the API key; `null` sends no
   * Authorization header. A string `body` is sent as-is with a JSON content type.
   */
  request<T = Loose>(
    method: string,
    path: string,
    body?: unknown,
    credential?: string | null,
    headers?: Record<string, string>,
  ): Promise<TestResponse<T>>;
  close(): Promise<void>;
}

export interface StartHubOptions extends CreateServerOptions {
  /** Use this data directory and leave it in place on close (for restart tests). */
  dataDir?: string;
}

export async function startHub(options: StartHubOptions = {}): Promise<TestHub> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'headway-http-'));
  let server: HeadwayServer;
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
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const url = await server.listen();

  return {
    server,
    url,
    apiKey: TEST_API_KEY,
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
    async request(method, path, body, credential = TEST_API_KEY, headers = {}) {
      const init: RequestInit = { method, headers: { ...headers } };
      const h = init.headers as Record<string, string>;
      if (credential !== null) h.authorization = `Bearer ${credential}`;
      if (body !== undefined) {
        h['content-type'] ??= 'application/json';
        init.body = typeof body === 'string' ? body : JSON.stringify(body);
      }
      const res = await fetch(url + path, init);
      const text = await res.text();
      const type = res.headers.get('content-type') ?? '';
      const parsed = text === '' ? undefined : type.includes('json') ? JSON.parse(text) : text;
      return { status: res.status, headers: res.headers, body: parsed };
    },
    async close() {
      try {
        await server.close();
      } finally {
        if (ownDir) rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}
