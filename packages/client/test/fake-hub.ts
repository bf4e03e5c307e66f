/**
 * A small local stand-in for the hub, for tests that need exact control: it
 * speaks just enough of the native protocol (and serves the history endpoint)
 * for the test to script welcomes, snapshots, events, silences and close codes.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ClientMessage, JobEvent, JobState, ServerMessage } from '@headway/protocol';
import { runningJob } from '@headway/test-helpers';
import { WebSocketServer, type WebSocket as WsSocket } from 'ws';

export interface FakeConnection {
  /** The credential offered next to the `headway` subprotocol. */
  token: string;
  /** Time the upgrade arrived, ms since epoch. */
  at: number;
  received: ClientMessage[];
  closed: boolean;
  send(message: ServerMessage): void;
  welcome(heartbeatMs?: number, user?: string): void;
  /** The next message of this type not yet taken, waiting up to `ms`. */
  next<T extends ClientMessage['type']>(type: T, ms?: number): Promise<ClientMessage & { type: T }>;
  close(code: number, reason?: string): void;
  /** Drop the TCP connection without a close frame. */
  terminate(): void;
}

export interface FakeHub {
  url: string;
  connections: FakeConnection[];
  /** The next connection not yet taken, waiting up to `ms`. */
  next(ms?: number): Promise<FakeConnection>;
  /** Events served by `GET /v1/jobs/:id/events`, by job. */
  history: Map<string, JobEvent[]>;
  /** Requests to the history endpoint, as `job:since`. */
  historyRequests: string[];
  close(): Promise<void>;
}

export interface FakeHubOptions {
  /** Send `welcome` as soon as a connection opens (default true). */
  autoWelcome?: boolean;
  heartbeatMs?: number;
  /** Answer pings with pongs (default true). */
  autoPong?: boolean;
  /** Answer upgrades with HTTP 403 (a proxy that refuses WebSocket). */
  refuseUpgrades?: boolean;
}

export async function startFakeHub(options: FakeHubOptions = {}): Promise<FakeHub> {
  const connections: FakeConnection[] = [];
  const sockets = new Set<WsSocket>();
  const history = new Map<string, JobEvent[]>();
  const historyRequests: string[] = [];
  let taken = 0;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };

  const http: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const match = /^\/v1\/jobs\/([^/]+)\/events$/.exec(url.pathname);
    if (!match) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'HW_ERR_NOT_FOUND', message: 'no route' } }));
      return;
    }
    const job = decodeURIComponent(match[1]!);
    const since = Number(url.searchParams.get('since') ?? 0);
    const limit = Number(url.searchParams.get('limit') ?? 100);
    historyRequests.push(`${job}:${since}`);
    const events = (history.get(job) ?? []).filter((e) => e.seq > since).slice(0, limit);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ events }));
  });
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => (protocols.has('headway') ? 'headway' : false),
  });
  http.on('upgrade', (req, socket, head) => {
    if (options.refuseUpgrades) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim());
    const at = Date.now();
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      const received: ClientMessage[] = [];
      const took = new Set<ClientMessage>();
      const msgWaiters = new Set<() => void>();
      const conn: FakeConnection = {
        token: offered.find((p) => p !== 'headway') ?? '',
        at,
        received,
        closed: false,
        send: (m) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(m)),
        welcome(heartbeatMs = options.heartbeatMs ?? 30_000, user = 'alice') {
          conn.send({
            type: 'welcome',
            version: 1,
            heartbeatMs,
            limits: {
              maxMessageBytes: 65536,
              maxSubscriptions: 100,
              messagesPerSecond: 50,
              replayLimit: 1000,
            },
            user,
          });
        },
        next(type, ms = 5000) {
          return new Promise((resolve, reject) => {
            const check = () => {
              const found = received.find((m) => m.type === type && !took.has(m));
              if (found) {
                took.add(found);
                done();
                resolve(found as never);
              }
            };
            const timer = setTimeout(() => {
              done();
              reject(new Error(`no "${type}" within ${ms} ms`));
            }, ms);
            const done = () => {
              clearTimeout(timer);
              msgWaiters.delete(check);
            };
            msgWaiters.add(check);
            check();
          });
        },
        close: (code, reason = '') => ws.close(code, reason),
        terminate: () => ws.terminate(),
      };
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as ClientMessage;
        received.push(m);
        if (m.type === 'ping' && options.autoPong !== false) conn.send({ type: 'pong', ts: m.ts });
        for (const w of [...msgWaiters]) w();
      });
      ws.on('close', () => {
        conn.closed = true;
        sockets.delete(ws);
      });
      ws.on('error', () => {});
      connections.push(conn);
      if (options.autoWelcome !== false) conn.welcome();
      wake();
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    connections,
    history,
    historyRequests,
    next(ms = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (connections.length > taken) {
            done();
            resolve(connections[taken++]!);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no connection within ${ms} ms`));
        }, ms);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async close() {
      for (const ws of sockets) ws.terminate();
      wss.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** A job state for scripted messages. */
export function jobState(id: string, seq: number, patch: Partial<JobState> = {}): JobState {
  const at = new Date(1_700_000_000_000 + seq * 1000).toISOString();
  return runningJob(id, seq, {
    progress: { percent: Math.min(100, seq) },
    createdAt: new Date(1_700_000_000_000).toISOString(),
    updatedAt: at,
    startedAt: at,
    ...patch,
  });
}

/** A progress event with its seq. */
export function progressEvent(job: string, seq: number): JobEvent {
  return {
    job,
    seq,
    kind: 'progress',
    data: { percent: Math.min(100, seq) },
    at: new Date(1_700_000_000_000 + seq * 1000).toISOString(),
  };
}

/** The native `event` message for a progress event. */
export function eventMessage(job: string, seq: number): ServerMessage {
  return { type: 'event', ...progressEvent(job, seq), state: jobState(job, seq) } as ServerMessage;
}
