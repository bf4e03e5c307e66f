/**
 * Helpers of the dialect suites: a worker that reports over REST, and the front
 * ends of the seeds whose clients are browser code, served to real Chromium.
 */
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JobState } from '@headway/protocol';
import type { TestHub } from '@headway/test-helpers';
import { type Browser, launch } from '@headway/test-helpers/browser';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';

/** A job id no other test uses. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${randomUUID()}`;
}

/** The hub's base URL with the WebSocket scheme. */
export function wsBase(hub: TestHub): string {
  return hub.url.replace(/^http/, 'ws');
}

/** The hub's port, to restart it where its clients reconnect. */
export function portOf(hub: TestHub): number {
  return Number(new URL(hub.url).port);
}

/** Create a job with the API key, as the application's back end would. */
export async function createJob(hub: TestHub, body: Record<string, unknown>): Promise<JobState> {
  const res = await hub.post<JobState>('/v1/jobs', body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

/** Report events for a job with the API key, as a worker would; resolves once they are stored. */
export async function report(hub: TestHub, job: string, ...events: Record<string, unknown>[]): Promise<void> {
  let res: Awaited<ReturnType<TestHub['post']>>;
  try {
    res = await hub.post(`/v1/jobs/${job}/events`, { events });
  } catch (err) {
    // After a restart on the same port, fetch may first pick a pooled connection
    // that the old server closed; the request never reached a server, so send it again.
    if ((err as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw err;
    res = await hub.post(`/v1/jobs/${job}/events`, { events });
  }
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

export interface AppServer {
  /** The front end's URL, e.g. `http://127.0.0.1:41234/`. */
  url: string;
  close(): Promise<void>;
}

/**
 * Serve a front end: `html` at `/`, and (with `proxyTo`) every other path
 * forwarded to the hub, as the seeds' development servers proxy `/api` to their
 * back ends, so that the page's relative `fetch` calls reach the hub. The page is
 * served over a real socket: Chromium treats a page it did not fetch from an
 * address as public, and would keep it from reaching a loopback hub.
 */
export async function serveApp(html: string, proxyTo?: string): Promise<AppServer> {
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (path === '/' || path.startsWith('/?') || proxyTo === undefined) {
      res.writeHead(path === '/' || path.startsWith('/?') ? 200 : 404, { 'content-type': 'text/html' });
      res.end(path === '/' || path.startsWith('/?') ? html : '');
      return;
    }
    const upstream = httpRequest(
      new URL(path, proxyTo),
      { method: req.method, headers: req.headers, agent: false },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A page document that defines `CONFIG` and runs `script` (plain browser JavaScript). */
export function appHtml(config: Record<string, unknown>, script: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>app</title></head><body>
<script>window.CONFIG = ${JSON.stringify(config)};</script>
<script>${script}</script>
</body></html>`;
}

export interface BrowserSuite {
  /**
   * Serve `html` as the front end (see `serveApp`; `proxyTo` is the hub the
   * page's relative requests go to) and open it in a new page.
   */
  open(html: string, proxyTo?: string): Promise<Page>;
}

/**
 * Register the hooks of a suite that runs a seed's client in Chromium: one
 * browser for the whole suite, and after each test the test's pages closed (each
 * after `beforeClose`), the browser's cookies cleared, then the front end's
 * server and the hub that `hub()` returns closed.
 */
export function browserSuite(
  hub: () => TestHub | undefined,
  beforeClose?: (page: Page) => Promise<void>,
): BrowserSuite {
  let browser: Browser | undefined;
  let app: AppServer | undefined;
  beforeAll(async () => {
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    if (browser !== undefined) {
      for (const page of browser.context.pages()) {
        await beforeClose?.(page);
        await page.close();
      }
      await browser.context.clearCookies();
    }
    await app?.close();
    app = undefined;
    await hub()?.close();
  });
  return {
    async open(html, proxyTo) {
      if (browser === undefined) throw new Error('Chromium did not start');
      app = await serveApp(html, proxyTo);
      const page = await browser.context.newPage();
      await page.goto(app.url);
      return page;
    },
  };
}
