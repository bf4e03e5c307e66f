/**
 * Half-open requests and connection floods: a request whose headers or body
 * never finish is ended by the hub, and past the connection cap the anonymous
 * sockets are shed first, so that health checks and workers stay served.
 */
import http from 'node:http';
import { type Socket, connect as tcpConnect } from 'node:net';
import { startHub, type TestHub, waitFor } from '@headway/test-helpers';
import { afterEach, describe, expect, it } from 'vitest';

let hub: TestHub | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await hub?.close();
  hub = undefined;
});

/** A raw socket that sends `text` and records what comes back and whether it closed. */
async function rawSocket(url: string, text: string) {
  const { hostname, port } = new URL(url);
  const socket = tcpConnect(Number(port), hostname);
  sockets.push(socket);
  const state = { data: '', closed: false };
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (state.data += chunk));
  socket.on('close', () => (state.closed = true));
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(text);
  return state;
}

const HALF_BODY = (host: string) =>
  `POST /v1/session HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`;
const HALF_HEADERS = (host: string) => `GET /healthz HTTP/1.1\r\nHost: ${host}\r\nX-Slow: `;

/** One GET through `agent`: its status and whether it reused a socket. */
function get(url: string, agent: http.Agent, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
    const req = http.get(url, { agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
    });
    req.on('error', reject);
  });
}

describe('half-open requests', () => {
  it('a body that never finishes and headers that never finish are timed out (408)', async () => {
    hub = await startHub({ limits: { headersTimeoutMs: 200, requestTimeoutMs: 400 } });
    const host = new URL(hub.url).host;
    const body = await rawSocket(hub.url, HALF_BODY(host));
    const headers = await rawSocket(hub.url, HALF_HEADERS(host));
    for (const s of [body, headers]) {
      await waitFor(() => s.closed, 'the hub to close the socket', 15_000);
      expect(s.data).toMatch(/^HTTP\/1\.1 408 /);
    }
  });
});

describe('the connection cap', () => {
  it('sheds anonymous sockets first: /healthz and an authenticated worker stay served', async () => {
    hub = await startHub({ limits: { maxConnections: 20 } });
    const host = new URL(hub.url).host;
    const worker = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const auth = { authorization: `Bearer ${hub.apiKey}` };
    try {
      expect((await get(`${hub.url}/v1/jobs`, worker, auth)).status).toBe(200);
      const crowd: { data: string; closed: boolean }[] = [];
      for (let i = 0; i < 60; i++) crowd.push(await rawSocket(hub.url, HALF_BODY(host)));
      // The worker's socket (trusted by its authenticated request) was kept.
      const again = await get(`${hub.url}/v1/jobs`, worker, auth);
      expect(again).toEqual({ status: 200, reused: true });
      // A fresh health check gets in, displacing an anonymous socket.
      const health = new http.Agent({ keepAlive: false });
      expect((await get(`${hub.url}/healthz`, health)).status).toBe(200);
      health.destroy();
      await waitFor(() => crowd.filter((s) => s.closed).length >= 40, 'the crowd to be shed', 15_000);
      expect(crowd.filter((s) => !s.closed).length).toBeLessThanOrEqual(20);
    } finally {
      worker.destroy();
    }
  });
});
