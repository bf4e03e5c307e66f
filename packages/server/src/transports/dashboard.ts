/**
 * The dashboard (`apps/dashboard`), served at `/` from its Vite build.
 *
 * - Hashed assets under `/assets/` are cached for a year (`immutable`): a new
 *   build gives them new names. Everything else is revalidated (`no-cache`).
 * - Client routes (`/jobs/video-1`, `/system`) get `index.html` when a browser
 *   navigates to them: a GET that accepts HTML, for a path without a file
 *   extension, outside `/v1`. Other unknown paths keep the API's JSON 404.
 * - When the dashboard has not been built, `/` answers a short page saying how
 *   to build it; the hub itself works without it.
 *
 * The build is looked up on each request, so building it while the hub runs
 * is enough. The login token travels in the URL fragment, which browsers never
 * send: no request to these routes carries a credential.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** `apps/dashboard/dist` of the repository, from `packages/server/{src,dist}/transports/`. */
export const DEFAULT_DASHBOARD_DIR = fileURLToPath(
  new URL('../../../../apps/dashboard/dist/', import.meta.url),
);

/** Lifetime of hashed assets in caches, seconds (one year). */
export const ASSET_MAX_AGE_SECONDS = 365 * 24 * 3600;

/**
 * The page is same-origin only: scripts, styles and connections (REST,
 * WebSocket, SSE) to the hub that served it; no framing.
 */
const PAGE_HEADERS = {
  'cache-control': 'no-cache',
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
};

const NOT_BUILT = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Headway</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}
code{background:#8882;padding:.1em .3em;border-radius:4px}</style>
<h1>Headway is running</h1>
<p>The dashboard has not been built. From the repository, run</p>
<p><code>npm run build</code> (or <code>npm run build -w @headway/dashboard</code>)</p>
<p>and reload this page. The API is served under <code>/v1</code>; see <a href="/openapi.json">/openapi.json</a>.</p>
</html>
`;

export interface DashboardOptions {
  /** Directory of the dashboard's build. Default `apps/dashboard/dist` of the repository. */
  dir?: string;
  /** Serve the build's source maps (`*.map`): in development only, they show the source to anyone. Default false. */
  sourceMaps?: boolean;
}

/**
 * Whether a request path may name a file of the build: no `.` or `..` segment, no
 * backslash or NUL, once percent-decoded. Anything else answers the JSON 404, not
 * the 500 a refused traversal would otherwise become.
 */
function isPlainPath(path: string): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return false;
  }
  if (/[\\\0]/.test(decoded)) return false;
  return decoded.split('/').every((segment) => segment !== '.' && segment !== '..');
}

/** Serve the dashboard at `/`. Call after the API's routes and its not-found handler are set. */
export async function registerDashboard(app: FastifyInstance, options: DashboardOptions = {}): Promise<void> {
  const dir = options.dir ?? DEFAULT_DASHBOARD_DIR;
  const index = join(dir, 'index.html');

  await app.register(async function dashboard(scope) {
    // Decorates `reply.sendFile` inside this plugin only; the directory may not exist yet.
    await scope.register(fastifyStatic, {
      root: dir,
      serve: false,
      index: false,
      dotfiles: 'ignore',
      suppressWarning: true,
    });

    function sendPage(reply: FastifyReply) {
      if (!existsSync(index)) return reply.code(404).type('text/html; charset=utf-8').send(NOT_BUILT);
      return reply.headers(PAGE_HEADERS).sendFile('index.html', dir, { cacheControl: false });
    }

    scope.get('/', { schema: { hide: true } }, function serveIndex(_request, reply) {
      return sendPage(reply);
    });

    scope.get('/*', { schema: { hide: true } }, function serveDashboard(request, reply) {
      const path = (request.url.split('?')[0] ?? '/').replace(/\/{2,}/g, '/');
      if (path === '/v1' || path.startsWith('/v1/')) return reply.callNotFound();
      if (!isPlainPath(path)) return reply.callNotFound();
      const last = path.slice(path.lastIndexOf('/') + 1);
      if (last.endsWith('.map') && !options.sourceMaps) return reply.callNotFound();
      if (last.includes('.')) {
        if (path.startsWith('/assets/')) {
          return reply.sendFile(path.slice(1), dir, {
            maxAge: ASSET_MAX_AGE_SECONDS * 1000,
            immutable: true,
          });
        }
        reply.header('cache-control', 'no-cache');
        return reply.sendFile(path.slice(1), dir, { cacheControl: false });
      }
      if (!(request.headers.accept ?? '').includes('text/html')) return reply.callNotFound();
      return sendPage(reply);
    });
  });
}
