/**
 * A tiny HTTP proxy in front of a hub, for the network trouble real deployments
 * meet: it can refuse WebSocket upgrades (a proxy that strips `Upgrade`), refuse
 * SSE streams (a proxy that buffers them), or drop every connection at once.
 */
import { createServer, request, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';

export interface TestProxy {
  url: string;
  /** Answer WebSocket upgrades with HTTP 403. */
  refuseUpgrades: boolean;
  /** Answer `GET /v1/stream` with HTTP 502. */
  refuseStreams: boolean;
  /** Upgrades that reached the hub through the proxy. */
  upgrades: number;
  /** Cut every open connection. */
  drop(): void;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<TestProxy> {
  const hub = new URL(target);
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server: Server = createServer((req, res) => {
    if (proxy.refuseStreams && req.url?.startsWith('/v1/stream')) {
      res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway');
      return;
    }
    const upstream = request(
      { host: hub.hostname, port: hub.port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on('connection', track);
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    if (proxy.refuseUpgrades) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    proxy.upgrades++;
    const upstream = connect(Number(hub.port), hub.hostname, () => {
      let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2)
        text += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      upstream.write(`${text}\r\n`);
      upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    track(upstream);
    socket.once('close', () => upstream.destroy());
    upstream.once('close', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy: TestProxy = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    refuseUpgrades: false,
    refuseStreams: false,
    upgrades: 0,
    drop() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      proxy.drop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
