/**
 * Helpers of the worker suites: a recording fake `fetch` for the fake-timer
 * tests, a TCP proxy that can cut every connection, an HTTP proxy that drops a
 * connection after the hub answered.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer, Socket } from 'node:net';
import type { Control } from '@headway/protocol';

export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
}

export interface FakeAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * A `fetch` that records requests and answers like the hub: `POST /v1/events`
 * gets a result per job with a growing seq and the job's `control` (settable),
 * unless `next` holds scripted answers. `error` makes calls fail like a dead network.
 */
export class FakeHub {
  readonly requests: RecordedRequest[] = [];
  readonly control = new Map<string, Control>();
  /** Scripted answers for the next calls, in order; then the default answer. */
  readonly next: (FakeAnswer | 'network-error' | 'hang')[] = [];
  private readonly seqs = new Map<string, number>();
  private readonly hanging: (() => void)[] = [];

  readonly fetch = (async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    const body = typeof init?.body === 'string' ? JSON.parse(init.body) : undefined;
    this.requests.push({ method: init?.method ?? 'GET', path: url.pathname, body });
    const scripted = this.next.shift();
    if (scripted === 'network-error') throw new TypeError('fetch failed');
    if (scripted === 'hang') {
      await new Promise<void>((resolve, reject) => {
        this.hanging.push(resolve);
        init?.signal?.addEventListener('abort', () => reject(init.signal?.reason), { once: true });
      });
      throw new TypeError('fetch failed');
    }
    const answer = scripted ?? this.answer(url.pathname, body);
    return new Response(answer.body === undefined ? null : JSON.stringify(answer.body), {
      status: answer.status,
      headers: { 'content-type': 'application/json', ...answer.headers },
    });
  }) as typeof fetch;

  /** Requests of `POST /v1/events`, as their event lists. */
  batches(): { job: string; kind: string; key: string; [k: string]: unknown }[][] {
    return this.requests
      .filter((r) => r.method === 'POST' && r.path === '/v1/events')
      .map((r) => (r.body as { events: { job: string; kind: string; key: string }[] }).events);
  }

  /** Every event sent, in order (a retried batch counts again). */
  events(): { job: string; kind: string; key: string; [k: string]: unknown }[] {
    return this.batches().flat();
  }

  /** Let every hanging call fail. */
  release(): void {
    for (const r of this.hanging.splice(0)) r();
  }

  private answer(path: string, body: unknown): FakeAnswer {
    if (path === '/v1/events') {
      const events = (body as { events: { job: string }[] }).events;
      const order: string[] = [];
      for (const e of events) {
        if (!order.includes(e.job)) order.push(e.job);
        this.seqs.set(e.job, (this.seqs.get(e.job) ?? 1) + 1);
      }
      return {
        status: 200,
        body: {
          results: order.map((job) => ({
            job,
            seq: this.seqs.get(job),
            control: this.control.get(job) ?? { cancelRequested: false, paused: false },
          })),
        },
      };
    }
    return { status: 404, body: { error: { code: 'HW_ERR_NOT_FOUND', message: 'not found' } } };
  }
}

/** A TCP proxy in front of `target` (host:port) that can cut every open connection. */
export interface TcpProxy {
  url: string;
  /** Destroy every open connection, both sides. */
  cut(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    const upstream = new Socket();
    upstream.connect(Number(target.port), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    const done = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    cut() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * An HTTP proxy in front of the hub. `dropAfterAnswer(path, n)` makes the next
 * `n` requests to `path` go through to the hub, and then destroys the client's
 * connection instead of passing the hub's answer on: the hub committed, the
 * client saw a network error.
 */
export interface DropProxy {
  url: string;
  /** Requests seen, as "METHOD /path". */
  readonly seen: string[];
  dropAfterAnswer(path: string, count?: number): void;
  close(): Promise<void>;
}

export async function startDropProxy(targetUrl: string): Promise<DropProxy> {
  const seen: string[] = [];
  const drops = new Map<string, number>();
  const server: Server = createHttpServer(async (req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const path = (req.url ?? '/').split('?')[0]!;
    seen.push(`${req.method} ${path}`);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === 'string' && !['host', 'connection', 'content-length'].includes(k)) headers[k] = v;
    }
    const upstream = await fetch(`${targetUrl}${req.url}`, {
      method: req.method,
      headers,
      body: chunks.length > 0 ? Buffer.concat(chunks) : undefined,
    });
    const text = await upstream.text();
    const pending = drops.get(path) ?? 0;
    if (pending > 0) {
      drops.set(path, pending - 1);
      req.socket.destroy();
      return;
    }
    const out: Record<string, string> = {};
    upstream.headers.forEach((v, k) => {
      if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection') out[k] = v;
    });
    res.writeHead(upstream.status, out);
    res.end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    seen,
    dropAfterAnswer(path, count = 1) {
      drops.set(path, (drops.get(path) ?? 0) + count);
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
