/**
 * Real Chromium for the browser suites: Debian's chromium driven by
 * playwright-core, pages bundled with rolldown and served from a local server.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium } from 'playwright-core';
import { rolldown } from 'rolldown';
import { requireService, type ServiceGate } from './ci.js';

export const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Gate a browser suite on Chromium (see `requireService`): skips outside CI when it is not installed. */
export function requireChromium(): ServiceGate {
  const problem = existsSync(CHROMIUM) ? null : `${CHROMIUM} not found (apt-get install -y chromium)`;
  return requireService('Chromium', problem);
}

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/** Bundle a page's entry for the browser, resolving the workspace packages to their sources. */
export async function bundle(entry: string): Promise<string> {
  const build = await rolldown({
    input: entry,
    resolve: {
      alias: {
        '@headway/protocol/codes': src('../../protocol/src/codes.ts'),
        '@headway/client': src('../../client/src/index.ts'),
        '@headway/react': src('../../react/src/index.ts'),
      },
    },
    // Development React: StrictMode double-invokes effects only there.
    transform: { jsx: 'react-jsx', define: { 'process.env.NODE_ENV': '"development"' } },
    logLevel: 'silent',
  });
  try {
    const { output } = await build.generate({ format: 'esm' });
    return output[0].code;
  } finally {
    await build.close();
  }
}

export interface PageServer {
  url: string;
  close(): Promise<void>;
}

/** Serve `/` (an HTML page loading the bundle) and `/app.js`. */
export async function servePage(code: string): Promise<PageServer> {
  const html =
    '<!doctype html><meta charset="utf-8"><title>Headway test</title><div id="root"></div>' +
    '<script type="module" src="/app.js"></script>';
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith('/app.js')) {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(code);
    } else if (req.url === '/favicon.ico') {
      res.writeHead(204).end();
    } else {
      res.writeHead(200, { 'content-type': 'text/html' }).end(html);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Chromium with a fresh profile (removed on close). */
export async function launch(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'headway-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ARGS,
      headless: true,
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  return {
    context,
    async close() {
      try {
        await context.close();
      } finally {
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}
