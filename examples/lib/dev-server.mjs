/**
 * A tiny development server for the examples' front ends: static files from
 * `public/`, the example back end's own routes (`/app/…`), and `/api/…` and
 * `/v1/…` forwarded to the hub, as a front end's development server proxies its
 * API, so that the seeds' relative URLs (`fetch('/api/status/…')`) reach it.
 *
 * It listens on the hub's host name: a cookie is per host, not per port, so a
 * session cookie set here or by the hub reaches both.
 */
import { createReadStream, statSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { HUB_URL } from './hub.mjs';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** Answer with JSON. */
export function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/**
 * Serve `root` on `port`, with `routes` (`{'POST /app/start': (req, res, url) => …}`)
 * before the files. Resolves with the server once it listens.
 */
export function serve({ port, root, routes = {} }) {
  const host = new URL(HUB_URL).hostname;
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = routes[`${req.method} ${url.pathname}`];
    if (route) {
      try {
        await route(req, res, url);
      } catch (err) {
        sendJson(res, 502, { error: String(err?.message ?? err) });
      }
      return;
    }
    if (url.pathname.startsWith('/api/') || url.pathname.startsWith('/v1/')) {
      proxy(req, res);
      return;
    }
    serveFile(root, url.pathname, res);
  });
  return new Promise((resolve) => {
    server.listen(port, host, () => {
      console.log(`front end: http://${host}:${server.address().port}/   (hub: ${HUB_URL})`);
      resolve(server);
    });
  });
}

function proxy(req, res) {
  const upstream = request(
    new URL(req.url ?? '/', HUB_URL),
    { method: req.method, headers: { ...req.headers, host: new URL(HUB_URL).host } },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', () => sendJson(res, 502, { error: 'the hub is not reachable' }));
  req.pipe(upstream);
}

function serveFile(root, pathname, res) {
  const relative = normalize(decodeURIComponent(pathname === '/' ? '/index.html' : pathname));
  const file = join(root, relative);
  // Nothing outside the example's public directory.
  if (!file.startsWith(root + sep)) {
    res.writeHead(403).end();
    return;
  }
  try {
    if (!statSync(file).isFile()) throw new Error('not a file');
  } catch {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
  createReadStream(file).pipe(res);
}
